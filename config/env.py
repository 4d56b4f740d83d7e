"""Typed readers for environment variables.

Every helper fails loudly with ``ImproperlyConfigured`` naming the variable when a value is set
but cannot be read, so a typo in production is a start-up error and never a silent default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str = "", *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool = False, *, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {value!r}")


def env_int(
    name: str,
    default: int,
    *,
    min_value: int | None = None,
    max_value: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if min_value is not None and number < min_value:
        raise ImproperlyConfigured(f"{name} must be >= {min_value}, got {number}")
    if max_value is not None and number > max_value:
        raise ImproperlyConfigured(f"{name} must be <= {max_value}, got {number}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    min_value: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if min_value is not None and number < min_value:
        raise ImproperlyConfigured(f"{name} must be >= {min_value}, got {number}")
    return number


def env_list(
    name: str, default: list[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> list[str]:
    """A comma-separated list; empty items are dropped."""
    value = _raw(name, environ)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(
    name: str,
    *,
    schemes: tuple[str, ...],
    path_schemes: tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """A URL with one of ``schemes``, or None when unset or empty.

    Network URLs must name a host (and a valid port if any); ``path_schemes`` (``sqlite``,
    ``unix``) name a file instead: ``sqlite:///relative/path``, ``sqlite:////absolute/path``,
    ``unix:///run/redis.sock``, with nothing between ``//`` and the path.
    """
    value = _raw(name, environ)
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ImproperlyConfigured(f"{name} must start with one of {allowed}, got {parts.scheme!r}")
    if parts.scheme in path_schemes:
        if parts.netloc:
            raise ImproperlyConfigured(
                f"{name}: a {parts.scheme}:// URL names a file, not a host "
                f"({parts.scheme}:///relative/path or {parts.scheme}:////absolute/path), "
                f"got {parts.netloc!r} after //"
            )
        if parts.path in ("", "/"):
            raise ImproperlyConfigured(f"{name}: the {parts.scheme}:// URL names no file")
        return value
    if not parts.hostname:
        raise ImproperlyConfigured(f"{name} must name a host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port") from None
    return value
