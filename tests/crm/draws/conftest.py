from tests.crm.contacts.conftest import sim, staffed  # noqa: F401  (fixtures: the simulated world)
