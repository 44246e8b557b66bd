"""An unreachable database or Redis stops manage.py with one line that says what to set."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, **env):
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=60)


def test_unreachable_database_is_one_clear_line():
    result = run_manage("migrate", DATABASE_URL="postgres://nobody@127.0.0.1:1/nowhere")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL" in lines[0] and "127.0.0.1:1/nowhere" in lines[0]
    assert "Traceback" not in result.stderr


def test_unreachable_redis_is_one_clear_line(tmp_path):
    result = run_manage("migrate", DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}", REDIS_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "REDIS_URL" in lines[0]


def test_bad_setting_value_is_one_clear_line(tmp_path):
    result = run_manage("migrate", DB_CONN_MAX_AGE="forever")
    assert result.returncode == 2
    assert "DB_CONN_MAX_AGE" in result.stderr
    assert "Traceback" not in result.stderr
