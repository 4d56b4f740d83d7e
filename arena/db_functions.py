"""Generated-column expressions: values PostgreSQL keeps on every write so the preference
export never runs the PII regexes or the JSON escape in Python.

On other databases (SQLite) the columns are NULL, "not computed", and readers compute the value
themselves. The scrub patterns are arguments of the expressions, so a change to them is a schema
change that ``makemigrations`` sees.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from arena.pii import (
    EMAIL_MARK,
    EMAIL_PATTERN,
    PHONE_HINT,
    PHONE_MARK,
    PHONE_PATTERN,
    PY_WHITESPACE,
)


class PostgresOnlyFunc(models.Func):
    """A generated-column expression that only PostgreSQL computes: elsewhere the column is NULL,
    "not computed", and readers compute the value themselves."""

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, tuple[Any, ...]]:
        return "NULL", ()


class ScrubbedText(PostgresOnlyFunc):
    """A text column as the preference export's PII scrub leaves it, computed by the database.

    PostgreSQL: ``''`` when the scrub changes nothing (almost every text: stored in one byte),
    else the scrubbed text (``[EMAIL]`` / ``[PHONE]`` in it, so never ``''``). The patterns are
    arguments, so a change to them is a schema change that ``makemigrations`` sees. Elsewhere
    (SQLite has no regex replace): NULL, "not computed". Readers take NULL as "scrub it yourself".
    """

    output_field = models.TextField()

    def __init__(self, expression: Any, email: str, phone: str, hint: str, **extra: Any) -> None:
        super().__init__(
            expression,
            models.Value(email),
            models.Value(phone),
            models.Value(hint),
            models.Value(EMAIL_MARK),
            models.Value(PHONE_MARK),
            **extra,
        )

    def as_postgresql(
        self, compiler: Any, connection: Any, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        (x, xp), (email, ep), (phone, pp), (hint, hp), (em, emp), (ph, php) = (
            compiler.compile(e) for e in self.source_expressions
        )
        scrubbed = f"regexp_replace(regexp_replace({x}, {email}, {em}, 'g'), {phone}, {ph}, 'g')"
        params = [*xp, *ep, *emp, *pp, *php]
        # The common case (no '@', no phone hint: no pattern can match) costs two scans.
        sql = (
            f"CASE WHEN strpos({x}, '@') = 0 AND {x} !~ {hint} THEN '' "
            f"WHEN {scrubbed} = {x} THEN '' ELSE {scrubbed} END"
        )
        return sql, (*xp, *xp, *hp, *params, *xp, *params)


class ExportFunc(PostgresOnlyFunc):
    """A call of one of the export's PostgreSQL functions (created by migration 0004) on a text
    column and the scrub patterns (arguments, so that a change to them is a schema change);
    elsewhere NULL, "not computed" (readers compute it themselves)."""

    output_field = models.TextField()

    def __init__(self, expression: Any, *constants: str, **extra: Any) -> None:
        super().__init__(expression, *(models.Value(c) for c in constants), **extra)

    def as_postgresql(
        self, compiler: Any, connection: Any, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        return models.Func.as_sql(self, compiler, connection, **extra_context)  # the real call


class ExportJson(ExportFunc):
    """The JSON string escape (``json.dumps(..., ensure_ascii=False)`` without its quotes) of
    the scrubbed text; ``''`` when that is the text itself (nothing scrubbed, nothing escaped)."""

    function = "arena_export_json"


class ExportKey(ExportFunc):
    """sha256 of the scrubbed text stripped as ``str.strip()`` strips it (the export's prompt
    key: split and dedup), as bytes."""

    function = "arena_export_key"
    output_field = models.BinaryField()


def _stored(func: type[PostgresOnlyFunc], column: str, help_text: str) -> models.GeneratedField:
    """A column PostgreSQL keeps from ``column`` on every write (NULL on other databases)."""
    return models.GeneratedField(
        expression=func(models.F(column), EMAIL_PATTERN, PHONE_PATTERN, PHONE_HINT),
        output_field=models.TextField(null=True),
        db_persist=True,
        help_text=help_text,
    )


def stored_export_json(column: str) -> models.GeneratedField:
    """The stored :class:`ExportJson` of ``column``."""
    return _stored(
        ExportJson,
        column,
        f"The exports' JSON escape of the scrubbed {column}: '' when the same text.",
    )


def stored_scrubbed(column: str) -> models.GeneratedField:
    """The stored :class:`ScrubbedText` of ``column``."""
    return _stored(
        ScrubbedText,
        column,
        f"The exports' PII scrub of {column}: '' when unchanged (see ScrubbedText).",
    )


def stored_export_key(column: str) -> models.GeneratedField:
    """The stored :class:`ExportKey` of ``column`` (bytes)."""
    return models.GeneratedField(
        expression=ExportKey(
            models.F(column), EMAIL_PATTERN, PHONE_PATTERN, PHONE_HINT, PY_WHITESPACE
        ),
        output_field=models.BinaryField(null=True),
        db_persist=True,
        help_text=f"The exports' {column} key: sha256 of the scrubbed, stripped {column}.",
    )
