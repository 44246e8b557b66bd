import pytest
from django.core.exceptions import ImproperlyConfigured

from crm.env import celery_url, env_bool, env_int, env_list, redis_py_url


def test_typed_helpers_read_values_and_defaults(monkeypatch):
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_LIST", "a.example, b.example ,")
    monkeypatch.setenv("X_EMPTY", "")
    assert env_int("X_INT", 1) == 42
    assert env_bool("X_BOOL") is True
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    assert env_int("X_EMPTY", 7) == 7
    assert env_bool("X_UNSET_ANYWHERE", True) is True


@pytest.mark.parametrize(
    ("reader", "value"), [(lambda: env_int("X_BAD", 1), "ten"), (lambda: env_bool("X_BAD"), "maybe")]
)
def test_bad_values_name_the_variable(monkeypatch, reader, value):
    monkeypatch.setenv("X_BAD", value)
    with pytest.raises(ImproperlyConfigured, match="X_BAD"):
        reader()


def test_unix_socket_urls_are_spelled_for_each_client():
    assert celery_url("unix:///tmp/r.sock?db=0") == "redis+socket:///tmp/r.sock?db=0"
    assert redis_py_url("redis+socket:///tmp/r.sock?db=0") == "unix:///tmp/r.sock?db=0"
    assert celery_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
