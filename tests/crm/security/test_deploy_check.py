"""`manage.py check --deploy` is clean of security warnings in the production settings (HTTPS=1, a real secret key,
the simulator off), and is not with the development defaults: the switch is what makes the difference."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _check(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"HTTPS", "DEBUG", "SECRET_KEY", "WECOM_SIM_ENABLED"}}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"],
        cwd=ROOT, env={**base, "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(60), **env},
        capture_output=True, text=True, timeout=120,
    )


def test_production_settings_pass_the_deploy_check():
    result = _check(HTTPS="1", WECOM_SIM_ENABLED="0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_development_defaults_do_not():
    result = _check(WECOM_SIM_ENABLED="0")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr + result.stdout
