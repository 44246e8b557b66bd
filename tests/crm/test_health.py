import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_is_503_without_a_live_worker(client, settings):
    # Every heartbeat counts as stale: what /healthz sees when no worker has beaten lately.
    settings.WORKER_HEARTBEAT_STALE_SECONDS = -1
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["worker"]["ok"] is False


@pytest.mark.worker
def test_healthz_is_200_with_a_real_worker(client, celery_worker):
    response = wait_for(lambda: (r := client.get("/healthz")).status_code == 200 and r, timeout=15,
                        message="/healthz to see the worker's heartbeat")
    assert response.json()["checks"]["worker"]["alive"] >= 1


def test_healthz_is_503_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    body = client.get("/healthz").json()
    assert body["ok"] is False
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["database"]["ok"] is True


@pytest.mark.worker
def test_readyz_waits_for_the_demo_seed_when_this_deployment_seeds(client, celery_worker, settings):
    from crm.services.readiness import seed_mark

    wait_for(lambda: client.get("/healthz").status_code == 200, timeout=15, message="a live worker")
    settings.DEMO_SEED = False
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["migrations"]["ok"] is True
    assert "demo_seed" not in ready.json()["checks"]

    settings.DEMO_SEED = True
    body = client.get("/readyz")
    assert body.status_code == 503 and body.json()["checks"]["demo_seed"]["state"] == "not started"
    seed_mark("seeding")
    seeding = client.get("/readyz")
    assert seeding.status_code == 503
    seed = seeding.json()["checks"]["demo_seed"]
    assert seed["ok"] is False and seed["state"] == "seeding"
    seed_mark("done")
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200  # liveness never depended on the seed

