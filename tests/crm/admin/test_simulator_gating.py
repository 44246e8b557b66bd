"""WECOM_SIM_ENABLED: the simulator's URLs and console models exist only when it is on (off by default); with it on
and the default admin key, `manage.py check --deploy` warns (crm.W001)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.contrib import admin
from django.core.checks import Tags, run_checks
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.urls import Resolver404, resolve
from crm.admin.navigation import sidebar_navigation
try:
    resolve("/wecom-sim/cgi-bin/gettoken")
    mounted = True
except Resolver404:
    mounted = False
request = RequestFactory().get("/admin/")
request.user = User(username="root", is_staff=True, is_superuser=True, is_active=True)
titles = [str(item["title"]) for group in sidebar_navigation(request) for item in group["items"]]
print(json.dumps({
    "mounted": mounted,
    "sim_models": sorted(m._meta.model_name for m in admin.site._registry if m._meta.app_label == "wecom_sim"),
    "sidebar": titles,
}))
"""


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WECOM_SIM_ENABLED", "WECOM_SIM_ADMIN_KEY")}
    env.update(DJANGO_SETTINGS_MODULE="crm.settings", VAR_DIR=str(tmp_path), **extra)
    return env


def _manage(tmp_path, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=120)


def _probe(tmp_path, **env) -> dict:
    out = _manage(tmp_path, "shell", "-c", PROBE, **env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_plain_pytest_runs_with_the_simulator_mounted(settings):
    # pyproject.toml's pytest-env sets it before the settings load, so `pytest` alone serves the simulator too.
    assert settings.WECOM_SIM_ENABLED is True
    assert resolve("/wecom-sim/cgi-bin/gettoken").url_name == "cgi-bin"
    assert any(model._meta.app_label == "wecom_sim" for model in admin.site._registry)


def test_off_by_default_nothing_of_the_simulator_is_mounted(tmp_path):
    off = _probe(tmp_path)
    assert off == {"mounted": False, "sim_models": [], "sidebar": off["sidebar"]}
    assert "Simulator" not in off["sidebar"] and "Contacts" in off["sidebar"]
    on = _probe(tmp_path, WECOM_SIM_ENABLED="1")
    assert on["mounted"] is True
    assert {"simcorp", "simshopper", "simcontactway", "simcallback"} <= set(on["sim_models"])
    assert "Simulator" in on["sidebar"]


def _deploy_warnings() -> list[str]:
    return [m.id for m in run_checks(include_deployment_checks=True, tags=[Tags.security])]


def test_deploy_check_warns_about_the_simulator_with_its_default_key(settings):
    settings.WECOM_SIM_ENABLED = True
    settings.WECOM_SIM = {**settings.WECOM_SIM, "ADMIN_KEY": "sim-admin"}
    assert "crm.W001" in _deploy_warnings()
    settings.WECOM_SIM = {**settings.WECOM_SIM, "ADMIN_KEY": "a-key-of-its-own"}
    assert "crm.W001" not in _deploy_warnings()
    settings.WECOM_SIM = {**settings.WECOM_SIM, "ADMIN_KEY": "sim-admin"}
    settings.WECOM_SIM_ENABLED = False
    assert "crm.W001" not in _deploy_warnings()


def test_manage_check_deploy_warns(tmp_path):
    warned = _manage(tmp_path, "check", "--deploy", "--tag", "security", WECOM_SIM_ENABLED="1")
    assert "crm.W001" in warned.stdout + warned.stderr
    keyed = _manage(tmp_path, "check", "--deploy", "--tag", "security", WECOM_SIM_ENABLED="1",
                    WECOM_SIM_ADMIN_KEY="s3cret-sim-key")
    assert keyed.returncode == 0 and "crm.W001" not in keyed.stdout + keyed.stderr
    off = _manage(tmp_path, "check", "--deploy", "--tag", "security")
    assert off.returncode == 0 and "crm.W001" not in off.stdout + off.stderr
