"""Fixtures of the claim tests: the simulator driver of the campaign tests."""

from tests.crm.campaigns.conftest import sim  # noqa: F401 (a fixture, re-exported)
