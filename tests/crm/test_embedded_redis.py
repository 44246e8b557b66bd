"""With nothing at REDIS_URL, the wrapper starts a real embedded Redis and hands its URL to the command."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = (
    "import os, redis; r = redis.Redis.from_url(os.environ['REDIS_URL']); r.set('k', 'v'); "
    "print(r.get('k').decode(), r.info()['redis_version'])"
)


def test_embedded_redis_starts_when_nothing_answers(tmp_path):
    env = dict(os.environ, REDIS_URL="redis://127.0.0.1:1/0", VAR_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "crm.embedded_redis", "--", sys.executable, "-c", CHILD],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    value, version = result.stdout.split()
    assert value == "v"
    assert version.split(".")[0].isdigit()
    assert "embedded Redis" in result.stderr


def test_existing_redis_is_used_as_is():
    env = dict(os.environ)
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    code = "import os; print(os.environ['REDIS_URL'])"
    result = subprocess.run([sys.executable, "-m", "crm.embedded_redis", "--", sys.executable, "-c", code],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == env["REDIS_URL"]
