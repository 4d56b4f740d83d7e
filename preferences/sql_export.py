"""The PostgreSQL export path: PostgreSQL builds every output line, Python only routes bytes.

A row-by-row Python exporter cannot reach the export budget (fetching the rows into Python
tuples alone is slower than it), so on PostgreSQL the arena part of a release is one
``COPY (SELECT line ...) TO STDOUT``: the per-turn PII scrub (stored by the database on every
write in ``Turn.prompt_scrubbed`` / ``Response.text_scrubbed``, computed with ``regexp_replace``
and the very pattern strings of :mod:`arena.pii` where it is NULL), the per-vote grouping
of turns, the prompt-hash
split (sha256 of the stripped first user turn, as ``split_of``), the prompt dedup
(``DISTINCT ON`` the same key, first vote wins) and the compact JSON of each format
(``to_json(text)`` escapes exactly as Python's ``json`` with ``ensure_ascii=False``) all run in
SQL. Each COPY row (binary format: the bytes as they are) is the split (``0`` train, ``1``
test), the JSON line and its newline; Python appends it to the split's writer (JSONL, gzip or
Parquet via ``pyarrow.json``). A Parquet release of Chatbot Arena rows skips the JSON: the same
rows come as typed fields that :mod:`preferences.sql_arrow` turns into Arrow columns.

Without the prompt dedup, one-turn votes (almost all) come from a flat join with no window
function and no correlated subquery, so that PostgreSQL builds their lines on parallel workers
(Gather Merge), from the JSON escapes and prompt key the database stores on every write
(``Turn.prompt_json`` / ``Response.text_json``, ``Turn.prompt_key``); votes of several turns
come from the per-vote query, and Merge Append keeps the vote order. With the dedup (which
needs every vote's key before the first line) the per-vote query reads all votes.

The output is byte-identical to the Python path (``format_rows`` / ``rankings_rows`` +
``write_splits``), which stays the path for SQLite; tests/preferences/test_sql_export.py
compares the two for every format and file format. Annotation rankings (a Python source) are
appended after the arena rows by the Python formatter, with the dedup keys of the arena rows
checked in a temporary table.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any, cast

import psycopg
import pyarrow as pa
from django.db import connection
from django.db.models import Exists, OuterRef

from arena.models import Battle, Response, Turn, Vote
from arena.pii import EMAIL_PATTERN, PHONE_HINT, PHONE_PATTERN, PY_WHITESPACE
from core import pgcopy
from preferences import sql_arrow
from preferences.exports import (
    DEDUP_KEY_BYTES,
    SPLITS,
    ExportOptions,
    ParquetWriter,
    Writer,
    format_rows,
    rankings_rows,
)
from preferences.formats import get_format
from preferences.selectors import (
    ARENA_COLUMNS,
    OUTCOME_A,
    OUTCOME_B,
    SOURCE_ARENA,
    PairFilters,
    arena_turn_rows,
    iter_pairs,
    iter_rankings,
)

ARENA_KEYS = "prefs_export_arena_keys"
WORK_MEM = "64MB"
# Binary: PostgreSQL sends each line's bytes as they are (no per-character CSV/text escaping).
COPY_OPTIONS = "(FORMAT binary)"


def available() -> bool:
    return connection.vendor == "postgresql"


def split_threshold(test_fraction: float) -> int:
    """The smallest 64-bit prefix value ``v`` with ``v / 2**64 >= test_fraction``: a prompt is in
    ``test`` exactly when its hash prefix is below it (``split_of`` compares floats)."""
    lo, hi = 0, 2**64
    while lo < hi:
        mid = (lo + hi) // 2
        if mid / 2**64 >= test_fraction:
            hi = mid
        else:
            lo = mid + 1
    return lo


# --- SQL building blocks ---------------------------------------------------------------------


_NL2 = "E'\\n\\n'"


def _j(expr: str) -> str:
    """A text expression as a JSON string literal (escaped like Python's json)."""
    return f"to_json({expr})::text"


def _user(expr: str) -> str:
    return f"""'{{"role":"user","content":' || {_j(expr)} || '}}'"""


def _assistant(expr: str) -> str:
    return f"""'{{"role":"assistant","content":' || {_j(expr)} || '}}'"""


_SINGLE: contextvars.ContextVar[bool] = contextvars.ContextVar("single_turn", default=False)


def _turns(piece: Callable[[str], str], sep: str = "''", where: str = "") -> str:
    """``piece(i)`` joined over the vote's turns in order (one turn: no subquery)."""
    if _SINGLE.get():
        return "NULL" if where else piece("1")
    cond = f" WHERE {where}" if where else ""
    many = (
        f"(SELECT string_agg({piece('g.i')}, {sep} ORDER BY g.i) "
        f"FROM generate_subscripts(v.ps, 1) AS g(i){cond})"
    )
    if where:  # the single-turn case is decided by the caller
        return many
    return f"CASE WHEN v.n = 1 THEN {piece('1')} ELSE {many} END"


def _conversation(side: str) -> str:
    body = _turns(lambda i: f"{_user(f'v.ps[{i}]')} || ',' || {_assistant(f'{side}[{i}]')}", "','")
    return f"'[' || {body} || ']'"


def _hh(side: str) -> str:
    return _turns(lambda i: f"E'\\n\\nHuman: ' || v.ps[{i}] || E'\\n\\nAssistant: ' || {side}[{i}]")


def _later_turns(piece: Callable[[str], str]) -> str:
    """``piece(i)`` over turns 2..n ('' for one turn)."""
    if _SINGLE.get():
        return "''"
    return f"CASE WHEN v.n = 1 THEN '' ELSE coalesce({_turns(piece, where='g.i > 1')}, '') END"


def _json_list(expr: str, strings_only: bool) -> str:
    """A jsonb list column as compact JSON (``[]`` for null), like ``json.dumps(list)``.

    jsonb writes a list as ``["a", "b"]``; in a list of strings only, ``", "`` occurs only
    between elements (a quote inside a string is written ``\\"``), so one replace compacts it.
    Otherwise each element is written by jsonb and joined with ``,``.
    """
    if strings_only:
        return (
            f"CASE WHEN {expr} IS NULL THEN '[]' ELSE replace({expr}::text, '\", \"', '\",\"') END"
        )
    return (
        f"CASE WHEN {expr} IS NULL OR jsonb_typeof({expr}) <> 'array' OR {expr} = '[]'::jsonb "
        f"THEN '[]' ELSE (SELECT '[' || string_agg(e.value::text, ',' ORDER BY e.o) || ']' "
        f"FROM jsonb_array_elements({expr}) WITH ORDINALITY AS e(value, o)) END"
    )


def _epoch_seconds(expr: str) -> str:
    """``created.timestamp()`` as Python's repr writes it: PostgreSQL's exact epoch (6 decimals)
    without trailing zeros, one kept (the float nearest a microsecond epoch prints as that
    decimal: doubles near 1e9 are 2.4e-7 apart, finer than a microsecond). ``trim_scale`` drops
    the zeros, ``+ 0.0`` keeps one decimal (a sum has the larger scale); no regex per row."""
    return f"(trim_scale(extract(epoch FROM {expr})) + 0.0)::text"


def _arena_id() -> str:
    """``"arena:<uuid>"`` as JSON: a UUID's text has nothing to escape (no ``to_json`` call)."""
    return """'"arena:' || v.public_id::text || '"'"""


def _iso_utc(expr: str) -> str:
    """``datetime.astimezone(UTC).isoformat()``: microseconds only when not zero."""
    utc = f"({expr} AT TIME ZONE 'UTC')"
    return (
        f"""'"' || to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS') || """
        f"CASE WHEN date_part('microseconds', {utc})::bigint % 1000000 = 0 THEN '' "
        f"""ELSE to_char({utc}, '.US') END || '+00:00"'"""
    )


def _margin(options: ExportOptions) -> str:
    if not options.margin:
        return "''"
    return f"""',"margin":' || CASE WHEN v.winner IN ('{OUTCOME_A}', '{OUTCOME_B}') THEN '1.0' ELSE '0.0' END"""  # noqa: E501


# --- the formats, as SQL expressions over one vote ``v`` ------------------------------------------
# v.ps / v.xa / v.xb: prompts and both sides' answers (scrubbed), v.xc / v.xr: chosen / rejected
# answers (side b when b won, else side a first), v.n: the number of turns.


def _line_trl_standard(options: ExportOptions, lists: dict[str, bool]) -> str:
    def cont(side: str) -> str:
        later = _later_turns(
            lambda i: f"E'\\n\\nHuman: ' || v.ps[{i}] || E'\\n\\nAssistant: ' || {side}[{i}]"
        )
        return _j(f"{side}[1] || {later}")

    return (
        f"""'{{"prompt":' || {_j("v.ps[1]")} || ',"chosen":' || {cont("v.xc")} """
        f"""|| ',"rejected":' || {cont("v.xr")} || {_margin(options)} || '}}'"""
    )


def _line_trl_conversational(options: ExportOptions, lists: dict[str, bool]) -> str:
    def rest(side: str) -> str:
        later = _later_turns(
            lambda i: f"',' || {_user(f'v.ps[{i}]')} || ',' || {_assistant(f'{side}[{i}]')}"
        )
        return f"'[' || {_assistant(f'{side}[1]')} || {later} || ']'"

    return (
        f"""'{{"prompt":[' || {_user("v.ps[1]")} || '],"chosen":' || {rest("v.xc")} """
        f"""|| ',"rejected":' || {rest("v.xr")} || {_margin(options)} || '}}'"""
    )


def _line_hh(options: ExportOptions, lists: dict[str, bool]) -> str:
    return (
        f"""'{{"chosen":' || {_j(_hh("v.xc"))} || ',"rejected":' || {_j(_hh("v.xr"))} """
        f"""|| '}}'"""
    )


def _line_openai_dpo(options: ExportOptions, lists: dict[str, bool]) -> str:
    history = (
        "''"
        if _SINGLE.get()
        else (
            "CASE WHEN v.n = 1 THEN '' ELSE coalesce("
            + _turns(
                lambda i: f"{_user(f'v.ps[{i}]')} || ',' || {_assistant(f'v.xc[{i}]')} || ','",
                where="g.i < v.n",
            )
            + ", '') END"
        )
    )
    return (
        f"""'{{"input":{{"messages":[' || {history} || {_user("v.ps[v.n]")} """
        f"""|| ']}},"preferred_output":[' || {_assistant("v.xc[v.n]")} """
        f"""|| '],"non_preferred_output":[' || {_assistant("v.xr[v.n]")} || ']}}'"""
    )


def _line_arena_battles(options: ExportOptions, lists: dict[str, bool]) -> str:
    winner = (
        "CASE v.winner WHEN 'a' THEN '\"model_a\"' WHEN 'b' THEN '\"model_b\"' "
        "WHEN 'tie' THEN '\"tie\"' WHEN 'both_bad' THEN '\"tie (bothbad)\"' END"
    )
    return (
        f"""'{{"question_id":' || {_arena_id()} """
        f"""|| ',"model_a":' || {_j("v.model_a")} || ',"model_b":' || {_j("v.model_b")} """
        f"""|| ',"winner":' || {winner} || ',"judge":' || {_j("left(v.voter, 16)")} """
        f"""|| ',"conversation_a":' || {_conversation("v.xa")} """
        f"""|| ',"conversation_b":' || {_conversation("v.xb")} """
        f"""|| ',"turn":' || v.n::text || ',"anony":true,"language":' """
        f"""|| {_j("coalesce(v.lang, '')")} """
        f"""|| ',"tstamp":' || {_epoch_seconds("v.created")} """
        f"""|| ',"source":"{SOURCE_ARENA}","category_tag":' || {_json_list("v.cats", lists["cats"])} """
        f"""|| ',"flags":' || {_json_list("v.flags", lists["flags"])} || ',"weight":1.0}}'"""
    )


def _line_rankings(options: ExportOptions, lists: dict[str, bool]) -> str:
    """An arena vote as a ranking of two (``formats.ranking_from_pair`` + ``formats.rankings``)."""
    labels = (
        "CASE WHEN v.winner = 'both_bad' THEN "
        + _str(json.dumps(json.dumps({"both_bad": True})))
        + " ELSE "
        + _str(json.dumps("{}"))
        + " END"
    )
    rank_a = "CASE v.winner WHEN 'b' THEN '2' ELSE '1' END"
    rank_b = "CASE v.winner WHEN 'a' THEN '2' ELSE '1' END"

    def response(side: str, model: str, rank: str) -> str:
        return (
            f"""'{{"text":' || {_j(f"array_to_string({side}, {_NL2})")} """
            f"""|| ',"model":' || {_j(model)} || ',"rank":' || {rank} """
            f"""|| ',"labels":' || {labels} || '}}'"""
        )

    prompt = _turns(lambda i: _user(f"v.ps[{i}]"), "','")
    return (
        f"""'{{"id":' || {_arena_id()} """
        f"""|| ',"source":"{SOURCE_ARENA}","prompt":[' || {prompt} """
        f"""|| '],"responses":[' || {response("v.xa", "v.model_a", rank_a)} || ',' """
        f"""|| {response("v.xb", "v.model_b", rank_b)} """
        f"""|| '],"judge":' || {_j("left(v.voter, 16)")} || ',"trust":null,"agreement":null' """
        f"""|| ',"language":' || {_j("coalesce(v.lang, '')")} """
        f"""|| ',"category_tag":' || {_json_list("v.cats", lists["cats"])} """
        f"""|| ',"flags":' || {_json_list("v.flags", lists["flags"])} || ',"created":' || {_iso_utc("v.created")} """
        f"""|| '}}'"""
    )


LINES: dict[str, Callable[[ExportOptions, dict[str, bool]], str]] = {
    "trl_standard": _line_trl_standard,
    "trl_conversational": _line_trl_conversational,
    "hh": _line_hh,
    "openai_dpo": _line_openai_dpo,
    "arena_battles": _line_arena_battles,
    "rankings": _line_rankings,
}

_BASE_COLUMNS = (
    "vote_id, public_id, model_a, model_b, winner, voter, flags, cats, lang, created, "
    "prompt, ta, tb, idx, battle_id, sp, sa, sb"
)
_STORED = ", pj, aj, bj, pk"  # the flat base's stored JSON escapes and prompt key
_VOTE_COLUMNS = "vote_id, public_id, model_a, model_b, winner, voter, flags, cats, lang, created"


def _str(text: str) -> str:
    """A constant as an SQL string literal (standard_conforming_strings: only quotes double)."""
    return "'" + text.replace("'", "''") + "'"


def _scrubber(options: ExportOptions) -> Callable[[str, str], str]:
    """``scrub(text, stored)``: the scrubbed text from the stored scrub (``ScrubbedText``: ''
    for unchanged, else the scrubbed text) or, where it is NULL (not computed; a missing
    response), from the patterns."""
    if not options.scrub_pii:
        return lambda x, stored: x
    email, phone = _str(EMAIL_PATTERN), _str(PHONE_PATTERN)

    maybe_phone = _str(PHONE_HINT)

    # Only texts with an '@' / the phone hint can match (as in arena.pii.scrub); the full
    # patterns (lookarounds) are several times slower than these checks.
    def scrub(x: str, stored: str) -> str:
        email_step = (
            f"CASE WHEN strpos({x}, '@') > 0 THEN regexp_replace({x}, {email}, '[EMAIL]', 'g') "
            f"ELSE {x} END"
        )
        live = (
            f"CASE WHEN {x} ~ {maybe_phone} THEN regexp_replace({email_step}, {phone}, "
            f"'[PHONE]', 'g') ELSE {email_step} END"
        )
        return (
            f"CASE WHEN {stored} = '' THEN {x} WHEN {stored} IS NULL THEN {live} ELSE {stored} END"
        )

    return scrub


def _base_sql(filters: PairFilters, *, several: bool | None = None) -> str:
    """The selector's (vote, turn) query with its parameters inlined (COPY takes none).
    ``several``: only the votes of several turns (True: with the old columns, in the selector's
    order) or of one turn (False: + the stored JSON escapes and key, in no order: a subquery
    PostgreSQL can pull up); a battle of several turns has a turn of index > 0."""
    columns = [
        *ARENA_COLUMNS,
        "index",
        "battle_id",
        "prompt_scrubbed",
        "ra__text_scrubbed",
        "rb__text_scrubbed",
    ]
    rows = arena_turn_rows(filters)
    if several is not None:
        later = Exists(Turn.objects.filter(battle_id=OuterRef("battle_id"), index__gt=0))
        rows = rows.filter(later if several else ~later)
    if several is False:
        columns += ["prompt_json", "ra__text_json", "rb__text_json", "prompt_key"]
        rows = rows.order_by()
    sql, params = rows.values_list(*columns).query.sql_with_params()
    connection.ensure_connection()
    with psycopg.ClientCursor(connection.connection) as cur:
        return cur.mogrify(sql, params)


def _inner_json(options: ExportOptions, x: str, stored: str, stored_json: str) -> str:
    """The JSON string escape of a text, without quotes: from the stored escape
    (``Turn.prompt_json`` / ``Response.text_json``: '' for the text itself), else computed."""
    live = f"left(substr(to_json({_scrubber(options)(x, stored)})::text, 2), -1)"
    if not options.scrub_pii:
        return live
    return f"CASE WHEN {stored_json} = '' THEN {x} WHEN {stored_json} IS NOT NULL THEN {stored_json} ELSE {live} END"  # noqa: E501


def _flat_sql(filters: PairFilters, options: ExportOptions, split: str) -> str:
    """(line, vote id) of every one-turn vote (almost all), in vote order, from a flat join: no
    window function, no correlated subquery, so PostgreSQL builds the lines on parallel workers
    (Gather Merge). The texts come as their stored JSON escapes, the prompt key as stored
    (``Turn.prompt_key``); the fence keeps this a plan of its own under the UNION."""
    ties = "" if get_format(options.format).ties else "AND b.winner IN ('a', 'b')"
    scrub = _scrubber(options)
    p = _inner_json(options, "b.prompt", "b.sp", "b.pj")
    a = _inner_json(options, "coalesce(b.ta, '')", "b.sa", "b.aj")
    bb = _inner_json(options, "coalesce(b.tb, '')", "b.sb", "b.bj")
    key = _prompt_key(scrub("b.prompt", "b.sp"))
    if options.scrub_pii:
        key = f"coalesce(b.pk, {key})"
    return f"""SELECT {split} || {_flat_line(options)} || E'\\n', v.vote_id FROM (
    SELECT {", ".join(f"b.{c}" for c in _VOTE_COLUMNS.split(", "))},
           {p} AS pi, {a} AS ai, {bb} AS bi,
           CASE WHEN b.winner = 'b' THEN {bb} ELSE {a} END AS ci,
           CASE WHEN b.winner = 'b' THEN {a} ELSE {bb} END AS ri, {key} AS h
    FROM ({_base_sql(filters, several=False)}) AS b({_BASE_COLUMNS}{_STORED})
    WHERE TRUE {ties}
) AS v
ORDER BY v.vote_id
OFFSET 0"""


def _prompt_key(prompt: str) -> str:
    return f"sha256(convert_to(btrim({prompt}, {_str(PY_WHITESPACE)}), 'UTF8'))"


def _votes_sql(filters: PairFilters, options: ExportOptions, several: bool | None = None) -> str:
    """WITH t (the selector's turn rows, first / last turn of their vote marked), v0 (one row
    per vote: scrubbed prompts and answers as arrays), v (+ key hash, chosen side).

    A one-turn vote (the common case) takes its texts from its own row; only a vote with
    several turns reads its turns again, in index order, in a subquery: no per-vote aggregate
    over the whole stream.
    """
    scrub = _scrubber(options)
    ties = "" if get_format(options.format).ties else "WHERE b.winner IN ('a', 'b')"
    turn, response = Turn._meta.db_table, Response._meta.db_table

    def texts(side: str | None) -> str:
        """A vote's texts as an array, read again in turn order: only for several turns."""
        if side is None:
            many = (
                f"SELECT array_agg({scrub('t2.prompt', 't2.prompt_scrubbed')} ORDER BY t2.index) "
                f"FROM {turn} t2 "
                "WHERE t2.battle_id = t.battle_id"
            )
        else:
            text = "coalesce(r2.text, '')"
            many = (
                f"SELECT array_agg({scrub(text, 'r2.text_scrubbed')} ORDER BY t2.index) FROM {turn} t2 "
                f"LEFT JOIN {response} r2 ON r2.turn_id = t2.id AND r2.side = '{side}' "
                "WHERE t2.battle_id = t.battle_id"
            )
        return f"CASE WHEN t.last THEN NULL ELSE ({many}) END"

    return f"""
WITH t AS (
    SELECT b.*,
           {scrub("b.prompt", "b.sp")} AS p, {scrub("coalesce(b.ta, '')", "b.sa")} AS a,
           {scrub("coalesce(b.tb, '')", "b.sb")} AS bb,
           b.vote_id IS DISTINCT FROM lag(b.vote_id) OVER o AS first,
           b.vote_id IS DISTINCT FROM lead(b.vote_id) OVER o AS last
    FROM ({_base_sql(filters, several=several)}) AS b({_BASE_COLUMNS})
    {ties}
    WINDOW o AS (ORDER BY b.vote_id, b.idx)
    ORDER BY b.vote_id, b.idx  -- already in this order: tells the levels above
), v0 AS (
    SELECT {_VOTE_COLUMNS}, t.p AS p1, t.a AS a1, t.bb AS b1, to_json(t.p)::text AS pj1,
           CASE WHEN t.winner = 'b' THEN t.bb ELSE t.a END AS c1,
           CASE WHEN t.winner = 'b' THEN t.a ELSE t.bb END AS r1,
           {texts(None)} AS ps, {texts("a")} AS xa, {texts("b")} AS xb,
           {_prompt_key("t.p")} AS h
    FROM t WHERE t.first
    ORDER BY t.vote_id
    OFFSET 0  -- a fence: each value is computed once per vote, not once per use
), v AS (
    SELECT v0.*, coalesce(cardinality(v0.ps), 1) AS n,
           CASE WHEN v0.winner = 'b' THEN v0.xb ELSE v0.xa END AS xc,
           CASE WHEN v0.winner = 'b' THEN v0.xa ELSE v0.xb END AS xr
    FROM v0
    ORDER BY v0.vote_id
    OFFSET 0
)"""


def _string_lists() -> dict[str, bool]:
    """Whether every stored battle category list / vote flag list is a list of strings (the
    fast compaction of ``_json_list`` applies); a scan of the distinct values."""
    out = {}
    for name, table, column in [
        ("cats", Battle._meta.db_table, "categories"),
        ("flags", Vote._meta.db_table, "flags"),
    ]:
        with connection.cursor() as cur:
            cur.execute(f"SELECT DISTINCT {column} FROM {table} LIMIT 10001")
            values = [json.loads(v) if isinstance(v, str) else v for (v,) in cur.fetchall()]
        out[name] = len(values) <= 10000 and all(
            v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v))
            for v in values
        )
    return out


def _key(column: str = "h") -> str:
    return f"substring({column} FROM 1 FOR {DEDUP_KEY_BYTES})"


_SCALARS = {  # in this order: the first prompt's JSON (used twice by some formats) first
    "to_json(v.ps[1])::text": "v.pj1",
    "v.ps[1]": "v.p1",
    "v.xa[1]": "v.a1",
    "v.xb[1]": "v.b1",
    "v.xc[1]": "v.c1",
    "v.xr[1]": "v.r1",
    f"array_to_string(v.xa, {_NL2})": "v.a1",
    f"array_to_string(v.xb, {_NL2})": "v.b1",
}


def _concat(expr: str) -> str:
    """``a || b || ...`` at the top level as ``concat(a, b, ...)``: one allocation for the line
    instead of a copy of the growing prefix per piece."""
    parts, start, depth, case, i = [], 0, 0, 0, 0
    while i < len(expr):
        ch = expr[i]
        if ch == "'":  # a string literal ('' is an escaped quote: two adjacent literals)
            i = expr.index("'", i + 1) + 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and expr.startswith("CASE ", i) and (i == 0 or not expr[i - 1].isalnum()):
            case += 1
        elif depth == 0 and expr.startswith("END", i) and not expr[i + 3 : i + 4].isalnum():
            case -= 1
        elif depth == 0 and case == 0 and expr.startswith(" || ", i):
            parts.append(expr[start:i].strip())
            start = i + 4
            i += 4
            continue
        i += 1
    parts.append(expr[start:].strip())
    return f"concat({', '.join(parts)})" if len(parts) > 1 else expr


def _line(options: ExportOptions) -> str:
    """The format's line: a one-turn vote from the first turn's values (no arrays), a vote of
    several turns from its turn arrays."""
    lists = _string_lists()
    many = LINES[options.format](options, lists)
    one = _one_turn(options, lists, _SCALARS)
    return f"CASE WHEN v.n = 1 THEN {_concat(one)} ELSE {_concat(many)} END"


def _one_turn(options: ExportOptions, lists: dict[str, bool], replacements: dict[str, str]) -> str:
    """The format's line for a one-turn vote: built with ``_SINGLE`` set, the turn index fixed
    at 1, then each array expression replaced by its one-turn column."""
    token = _SINGLE.set(True)
    try:
        one = LINES[options.format](options, lists)
    finally:
        _SINGLE.reset(token)
    one = one.replace("v.n::text", "'1'").replace("[v.n]", "[1]")
    for array_ref, column in replacements.items():
        one = one.replace(array_ref, column)
    assert "v.ps" not in one and "v.x" not in one, one
    return one


# The one-turn line of _line, rewritten over the flat query's JSON escapes (v.pi, v.ai, ...):
# a JSON string of concatenated texts is the concatenation of their escapes.
_FLAT = {
    "to_json(v.ps[1])::text": "'\"' || v.pi || '\"'",
    "to_json(v.xc[1] || '')::text": "'\"' || v.ci || '\"'",
    "to_json(v.xr[1] || '')::text": "'\"' || v.ri || '\"'",
    f"to_json(array_to_string(v.xa, {_NL2}))::text": "'\"' || v.ai || '\"'",
    f"to_json(array_to_string(v.xb, {_NL2}))::text": "'\"' || v.bi || '\"'",
    **{
        f"to_json(v.x{side}[1])::text": f"'\"' || v.{side}i || '\"'"
        for side in ("a", "b", "c", "r")
    },
    **{
        f"to_json(E'\\n\\nHuman: ' || v.ps[1] || E'\\n\\nAssistant: ' || v.x{side}[1])::text": (
            f"'\"\\n\\nHuman: ' || v.pi || '\\n\\nAssistant: ' || v.{side}i || '\"'"
        )
        for side in ("c", "r")
    },
}


def _flat_line(options: ExportOptions) -> str:
    """The format's one-turn line over ``_flat_sql``'s JSON escapes (``v.pi``, ``v.ai``, ...)."""
    return _concat(_one_turn(options, _string_lists(), _FLAT))


def split_expression(options: ExportOptions) -> str:
    """``'1'`` (test) or ``'0'`` (train) from the vote's prompt key ``v.h``, as ``split_of``."""
    threshold = split_threshold(options.test_fraction)
    if threshold >= 2**64:
        return "'1'"
    prefix = "encode(substring(v.h FROM 1 FOR 8), 'hex') COLLATE \"C\""
    return f"CASE WHEN {prefix} < '{threshold:016x}' THEN '1' ELSE '0' END"


def dedup_where() -> str:
    """Over ``_votes_sql``'s ``v``: the first vote of each prompt key."""
    return (
        f"WHERE v.vote_id IN (SELECT DISTINCT ON ({_key()}) vote_id FROM v "
        f"ORDER BY {_key()}, vote_id)"
    )


def arena_lines_sql(filters: PairFilters, options: ExportOptions) -> str:
    """SELECT of one text column per arena vote, in vote id order: the split digit (0 train,
    1 test), the format's JSON line and a newline. Complete SQL, no parameters."""
    split = split_expression(options)
    dedup = dedup_where() if options.dedup_prompts else ""
    line = _line(options)
    if options.dedup_prompts:  # the dedup needs every vote's key first: one query of all votes
        return (
            _votes_sql(filters, options)
            + f"\nSELECT {split} || {line} || E'\\n' FROM v {dedup} ORDER BY v.vote_id"
        )
    # One-turn votes from the parallel flat query, votes of several turns from the per-vote
    # query: two plans of their own, each in vote order, merged (Merge Append).
    several = (
        _votes_sql(filters, options, several=True)
        + f"\nSELECT {split} || {line} || E'\\n', v.vote_id FROM v ORDER BY v.vote_id OFFSET 0"
    )
    return (
        f"SELECT u.line FROM (({_flat_sql(filters, options, split)})\nUNION ALL\n({several})"
        ") AS u(line, vote_id)\nORDER BY u.vote_id"
    )


def arena_keys_sql(filters: PairFilters, options: ExportOptions) -> str:
    """The distinct dedup keys of the arena rows (for the annotation rows after them)."""
    return _votes_sql(filters, options) + f"\nSELECT DISTINCT {_key()} AS k FROM v"


# --- the line source -------------------------------------------------------------------------


@contextlib.contextmanager
def _copy_out(sql: str) -> Iterator[Any]:
    """``COPY (sql) TO STDOUT`` in binary; its messages, one per row."""
    with connection.cursor() as cursor:
        cur = cursor.cursor  # the psycopg cursor under Django's wrapper
        if connection.in_atomic_block:  # a worker's read transaction (see services)
            # hash joins and sorts in memory, no JIT compile (it costs more than it saves)
            cur.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            cur.execute("SET LOCAL jit = off")
        with cur.copy(f"COPY ({sql}) TO STDOUT {COPY_OPTIONS}") as copy:
            yield copy


@dataclasses.dataclass
class SqlRows:
    """A release's rows for ``write_splits`` on PostgreSQL: the arena part as lines from one
    COPY, then annotation rankings' rows from the Python formatter."""

    filters: PairFilters
    options: ExportOptions

    def _arena(self) -> PairFilters:
        return dataclasses.replace(self.filters, sources=(SOURCE_ARENA,))

    def _annotations(self) -> PairFilters:
        others = tuple(s for s in self.filters.sources if s != SOURCE_ARENA)
        return dataclasses.replace(self.filters, sources=others)

    def arena_lines(self) -> Iterator[tuple[int, bytes]]:
        """(split index, JSON line with its newline) for every arena row, in order."""
        if SOURCE_ARENA not in self.filters.sources:
            return
        with _copy_out(arena_lines_sql(self._arena(), self.options)) as copy:
            for data in pgcopy.single_fields(copy):  # one COPY data message per row
                yield data[0] - 48, data[1:]

    def arena_batches(self) -> Iterator[list[pa.RecordBatch]]:
        """The arena rows of ``arena_lines`` as Arrow rows, by blocks, one batch per split, when
        ``sql_arrow`` covers the release (``columnar``)."""
        if SOURCE_ARENA not in self.filters.sources:
            return
        schema = get_format(self.options.format).schema(self.options.margin)
        with _copy_out(sql_arrow.arena_columns_sql(self._arena(), self.options)) as copy:
            yield from sql_arrow.blocks(copy, schema)

    def columnar(self, writers: dict[str, Writer]) -> bool:
        parquet = all(isinstance(w, ParquetWriter) for w in writers.values())
        # the scan of the stored lists last: only a release that could use the typed columns
        return parquet and sql_arrow.supported(self.options) and all(_string_lists().values())

    def annotation_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        filters = self._annotations()
        if not filters.sources:
            return
        seen = None
        keyed = self.options.dedup_prompts and SOURCE_ARENA in self.filters.sources
        if keyed:
            # The first prompt wins across the whole stream: annotation rows whose prompt an
            # arena row already had are dropped, as in the Python path's single ``seen`` set.
            with connection.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {ARENA_KEYS}")
                cur.execute(
                    f"CREATE TEMP TABLE {ARENA_KEYS} AS "
                    + arena_keys_sql(self._arena(), self.options)
                )
                cur.execute(f"CREATE UNIQUE INDEX ON {ARENA_KEYS} (k)")

            def seen(key: bytes) -> bool:
                with connection.cursor() as cur:
                    cur.execute(f"SELECT 1 FROM {ARENA_KEYS} WHERE k = %s", [key])
                    return cur.fetchone() is not None

        try:
            if get_format(self.options.format).per_ranking:
                yield from rankings_rows(iter_rankings(filters), self.options, seen_before=seen)
            else:
                yield from format_rows(iter_pairs(filters), self.options, seen_before=seen)
        finally:
            if keyed:
                with connection.cursor() as cur:
                    cur.execute(f"DROP TABLE IF EXISTS {ARENA_KEYS}")

    def write_into(
        self,
        writers: dict[str, Writer],
        *,
        progress: Callable[[int], None] | None,
        progress_every: int,
    ) -> int:
        """Arena lines from the COPY, then annotation rows; ``progress`` at every multiple of
        ``progress_every``. While the COPY runs its connection can run nothing else: a
        ``progress`` that writes on it (inline, not the worker's reporter thread, which marks
        itself ``threaded``) is called for the marks passed once the COPY has finished."""
        live = progress is not None and getattr(progress, "threaded", False)
        pending: list[int] = []
        n = 0
        mark = progress_every
        if self.columnar(writers):
            parquet = [cast(ParquetWriter, writers[s]) for s in SPLITS]
            for batches in self.arena_batches():
                for writer, batch in zip(parquet, batches, strict=True):
                    writer.write_batch(batch)
                    n += batch.num_rows
                while n >= mark:
                    if live:
                        progress(mark)  # type: ignore[misc]
                    elif progress is not None:
                        pending.append(mark)
                    mark += progress_every
        else:
            by_index = [writers[s].write_line for s in SPLITS]
            for split, line in self.arena_lines():
                by_index[split](line)
                n += 1
                if n == mark:
                    mark += progress_every
                    if live:
                        progress(n)  # type: ignore[misc]
                    elif progress is not None:
                        pending.append(n)
        for done in pending:
            progress(done)  # type: ignore[misc]
        for split_name, row in self.annotation_rows():
            writers[split_name].write(row)
            n += 1
            if n == mark:
                mark += progress_every
                if progress is not None:
                    progress(n)
        return n

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for split, line in self.arena_lines():
            yield SPLITS[split], json.loads(line)
        yield from self.annotation_rows()
