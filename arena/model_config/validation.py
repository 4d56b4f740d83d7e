"""What both config formats share: the problem list, the error that carries it, and the checker
that reads one entry's fields while collecting every problem (entry and field) instead of
stopping at the first."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
CUTOFF = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
SECRET_LOOKING = re.compile(r"^(sk-|sk_|xai-|gsk_|AIza|ghp_)|^[A-Za-z0-9_\-]{32,}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config: where (``entry``), which ``field``, and what."""

    entry: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.entry}: {self.field}" if self.field else self.entry
        return f"{where}: {self.message}"


class ConfigError(ValueError):
    """The config is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s) in model config:\n" + "\n".join(f"- {p}" for p in problems)
        )


class Checker:
    """Collects problems for one entry while reading its fields."""

    def __init__(
        self, entry: str, data: Mapping[str, Any], problems: list[Problem], prefix: str = ""
    ) -> None:
        self.entry, self.data, self.problems, self.prefix = entry, data, problems, prefix

    def bad(self, name: str, message: str) -> None:
        self.problems.append(Problem(self.entry, self.prefix + name, message))

    def unknown(self, allowed: set[str]) -> None:
        for key in self.data:
            if key == "api_key":
                self.bad(key, "never put keys in the config; name a variable with api_key_env")
            elif key not in allowed:
                self.bad(str(key), "unknown field")

    def string(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self.data.get(name)
        if value is None:
            if required:
                self.bad(name, "required")
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            self.bad(name, f"must be a non-empty string, got {value!r}")
            return default
        return value

    def number(
        self, name: str, lo: float, hi: float | None = None, *, integer: bool = False
    ) -> Any:
        value = self.data.get(name)
        if value is None:
            return None
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or value < lo or (hi is not None and value > hi):
            kind = "an integer" if integer else "a number"
            bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            self.bad(name, f"must be {kind} {bound}, got {value!r}")
            return None
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            self.bad(name, f"must be true or false, got {value!r}")
            return default
        return value

    def mapping(self, name: str, *, str_values: bool = False) -> dict[str, Any]:
        value = self.data.get(name) or {}
        if not isinstance(value, Mapping) or (
            str_values and not all(isinstance(v, str) for v in value.values())
        ):
            self.bad(name, "must be a mapping" + (" of strings" if str_values else ""))
            return {}
        return dict(value)
