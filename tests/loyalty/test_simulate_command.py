"""`manage.py simulate` needs the bundled simulator: with it off, it says so instead of failing on a 404."""

import pytest
from django.core.management import CommandError, call_command


def test_simulate_refuses_clearly_when_the_simulator_is_off(settings):
    settings.WECOM_SIM_ENABLED = False
    with pytest.raises(CommandError, match="WECOM_SIM_ENABLED=1"):
        call_command("simulate", "--customers", "1")
