import pytest
pytestmark = pytest.mark.django_db

def test_big(staff_client, cashier_client, tiers):
    r = staff_client.get("/api/loyalty/cards/99999999999999999999999")
    print(r.status_code)
    r = cashier_client.post("/api/loyalty/redemptions", {"card": 10**25, "reward": 10**25, "idempotency_key": "k"}, format="json")
    print(r.status_code, r.content)
    r = staff_client.get("/api/loyalty/cards", {"tier": "99999999999999999999999"})
    print(r.status_code, r.content[:100])
