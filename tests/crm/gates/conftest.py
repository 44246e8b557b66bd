from tests.crm.campaigns.conftest import sim  # noqa: F401  (the simulator over HTTP, for add callbacks)
