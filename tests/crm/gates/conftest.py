from tests.crm.campaigns.conftest import admin_client, sim  # noqa: F401  (a superuser's console; the simulator)
