import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_str, env_url


def test_env_bool_reads_common_spellings():
    assert env_bool("X", environ={"X": "yes"}) is True
    assert env_bool("X", environ={"X": "0"}) is False
    assert env_bool("X", True, environ={}) is True


def test_env_bool_rejects_garbage_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_bool("DEBUG", environ={"DEBUG": "maybe"})


def test_env_int_bounds_and_type_errors_name_the_variable():
    assert env_int("N", 3, environ={"N": "7"}) == 7
    assert env_int("N", 3, environ={}) == 3
    with pytest.raises(ImproperlyConfigured, match="DB_POOL_MAX must be an integer"):
        env_int("DB_POOL_MAX", 1, environ={"DB_POOL_MAX": "ten"})
    with pytest.raises(ImproperlyConfigured, match="WORKERS must be >= 1"):
        env_int("WORKERS", 1, min_value=1, environ={"WORKERS": "0"})


def test_env_float_rejects_non_numbers():
    assert env_float("F", 1.0, environ={"F": "0.5"}) == 0.5
    with pytest.raises(ImproperlyConfigured, match="HEARTBEAT_SECONDS"):
        env_float("HEARTBEAT_SECONDS", 1.0, environ={"HEARTBEAT_SECONDS": "soon"})


def test_env_list_and_str():
    assert env_list("H", environ={"H": "a.example, b.example,,"}) == ["a.example", "b.example"]
    assert env_list("H", ["x"], environ={}) == ["x"]
    assert env_str("S", "d", environ={"S": " v "}) == "v"


def test_env_url_checks_scheme_host_and_port():
    assert env_url("R", schemes=("redis",), environ={"R": "redis://h:6379/0"}) == "redis://h:6379/0"
    assert env_url("R", schemes=("redis",), environ={}) is None
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL must start with one of redis://"):
        env_url("REDIS_URL", schemes=("redis",), environ={"REDIS_URL": "http://h"})
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL must name a host"):
        env_url("DATABASE_URL", schemes=("postgres",), environ={"DATABASE_URL": "postgres://"})
    assert env_url(
        "R", schemes=("unix",), path_schemes=("unix",), environ={"R": "unix:///run/r.sock"}
    )
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL has an invalid port"):
        env_url("REDIS_URL", schemes=("redis",), environ={"REDIS_URL": "redis://h:99999"})
