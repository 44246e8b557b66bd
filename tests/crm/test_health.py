import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_is_503_without_a_worker(client, redis_client):
    from crm.heartbeat import HEARTBEAT_PREFIX

    for key in redis_client.scan_iter(match=HEARTBEAT_PREFIX + "*"):
        redis_client.delete(key)
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["worker"]["ok"] is False


@pytest.mark.worker
def test_healthz_is_200_with_a_real_worker(client, celery_worker):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["worker"]["alive"] >= 1
