"""The PostgreSQL export path (lines built by PostgreSQL) gives the Python path's bytes exactly."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.db import connection

from arena.models import Response, Turn, Vote
from arena.pii import EMAIL_PATTERN, PHONE_PATTERN, scrub
from preferences.exports import (
    ExportOptions,
    LineSource,
    format_rows,
    rankings_rows,
    split_of,
    write_splits,
)
from preferences.formats import FORMATS, ranking_from_pair
from preferences.selectors import PairFilters, iter_arena_pairs, iter_pairs, iter_rankings
from preferences.sql_export import SPLITS, SqlRows, split_threshold
from tests.preferences import factories as f
from tests.preferences import fixture_data

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the SQL export path needs PostgreSQL"
    ),
]

TIE_FILTERS = PairFilters(include_ties=True, include_both_bad=True)


@pytest.fixture
def data(rankings_source):
    fixture_data.build(rankings_source)
    # Awkward text: JSON escapes, control characters, non-ASCII, surrounding whitespace that
    # the prompt key strips, PII inside multi-turn answers, empty and missing answers.
    f.voted_battle(
        model_a="gamma",
        model_b="beta",
        prompts=['  quote " back\\slash\ttab\u2028 ', "second\x01turn", "call 555.123.4567"],
        answers_a=["a1 \x7f é ✓ 😀", "a2\r\n", "mail x.y@z.example.com"],
        answers_b=["", "b2 \\u0041", "b3 +15551234567 ok"],
        winner="b",
        categories=["all", 'we"ird', "ünï"],
        minutes=7,
    )
    f.voted_battle(prompts=['quote " back\\slash\ttab\u2028'], winner="a", minutes=8)
    f.voted_battle(prompts=["What is 2+2?"], answers_a=["four"], winner="b", minutes=9)
    f.voted_battle(prompts=["\u3000What is 2+2?\n"], winner="tie", minutes=10)
    f.voted_battle(prompts=["Flagged again"], winner="b", flags=["spam", "x"], minutes=11)
    battle = f.voted_battle(prompts=["no answer b"], winner="a", minutes=12)
    Response.objects.filter(turn__battle=battle, side="b").delete()
    for i in range(30):
        f.voted_battle(prompts=[f"bulk prompt {i % 7} tel 020 7946 {i:04d}"], winner="ab"[i % 2])
    vote = Vote.objects.order_by("id").last()
    Vote.objects.filter(pk=vote.pk).update(created=vote.created + timedelta(microseconds=123457))
    Vote.objects.filter(pk=vote.pk - 1).update(
        created=vote.created + timedelta(microseconds=500000)
    )


def _python_rows(filters: PairFilters, options: ExportOptions):
    if FORMATS[options.format].per_ranking:
        stream = [ranking_from_pair(p) for p in iter_arena_pairs(filters)]
        return rankings_rows(stream + list(iter_rankings(filters)), options)
    return format_rows(iter_pairs(filters), options)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


OPTION_SETS = [
    {},
    {"dedup_prompts": True, "margin": True, "test_fraction": 0.5},
    {"scrub_pii": False, "test_fraction": 0.0},
]


@pytest.mark.parametrize("file_format", ["jsonl", "jsonl.gz", "parquet"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_sql_path_gives_the_python_path_bytes(data, tmp_path, fmt, file_format):
    filters_sets = [TIE_FILTERS if FORMATS[fmt].ties else PairFilters()]
    if FORMATS[fmt].ties:
        filters_sets.append(dataclasses.replace(TIE_FILTERS, include_flagged=True))
    for i, (extra, filters) in enumerate((e, fl) for e in OPTION_SETS for fl in filters_sets):
        options = ExportOptions(format=fmt, file_format=file_format, **extra)
        py = write_splits(tmp_path / f"py{i}", _python_rows(filters, options), options)
        sql_rows = SqlRows(filters, options)
        assert isinstance(sql_rows, LineSource)
        sql = write_splits(tmp_path / f"sql{i}", sql_rows, options)
        assert _files(tmp_path / f"sql{i}") == _files(tmp_path / f"py{i}"), (extra, filters)
        assert sql.row_counts == py.row_counts and sql.rows_read == py.rows_read
        assert sum(py.row_counts.values()) > 5


def test_sql_rows_iterate_as_the_python_rows(data):
    options = ExportOptions(format="arena_battles", dedup_prompts=True, test_fraction=0.4)
    assert list(SqlRows(TIE_FILTERS, options)) == list(_python_rows(TIE_FILTERS, options))


def test_sql_path_reports_progress_and_respects_the_snapshot(data, tmp_path):
    options = ExportOptions(format="hh")
    cut = Vote.objects.order_by("id").values_list("id", flat=True)[10]
    filters = PairFilters(max_vote_id=cut, sources=("arena",))
    seen: list[int] = []
    result = write_splits(
        tmp_path, SqlRows(filters, options), options, progress=seen.append, progress_every=3
    )
    expected = list(format_rows(iter_pairs(filters), options))
    assert result.rows_read == len(expected) and len(expected) >= 6
    assert seen == list(range(3, len(expected) + 1, 3))


def test_postgresql_regex_scrubs_exactly_like_python():
    rng = random.Random(7)
    alphabet = list("0123456789" * 4) + list(" .-+()@_ab\tx\n") + ["com", ".org", "é", "٣"]
    texts = [
        "call +1 (555) 123-4567 or 555.123.4567",
        "+44 20 7946 0958 and jo.doe+x@mail.example.org",
        "on 2024-01-15, v1.2.3, ip 192.168.100.200, id 12345678, +15551234567",
    ]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(5, 40))) for _ in range(3000)]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT regexp_replace(regexp_replace(t, %s, '[EMAIL]', 'g'), %s, '[PHONE]', 'g') "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, o) ORDER BY o",
            [EMAIL_PATTERN, PHONE_PATTERN, texts],
        )
        assert [r[0] for r in cur.fetchall()] == [scrub(t) for t in texts]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5, 0.999])
def test_split_threshold_matches_split_of(fraction):
    import hashlib

    threshold = split_threshold(fraction)
    for i in range(2000):
        prompt = f"p{i}"
        value = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
        assert (value < threshold) == (split_of(prompt, fraction) == "test")
    if threshold:
        assert (threshold - 1) / 2**64 < fraction <= threshold / 2**64


def _stored(text: str) -> str:
    """What ``ScrubbedText`` stores for ``text`` on PostgreSQL."""
    scrubbed = scrub(text)
    return "" if scrubbed == text else scrubbed


def test_stored_scrub_is_kept_by_the_database_on_every_write():
    battle = f.voted_battle(
        prompts=["mail jo.doe@mail.example.org", "plain question"],
        answers_a=["call +1 (555) 123-4567", "fine"],
        answers_b=["no pii here", "v1.2.3 on 2024-01-15"],
    )
    turns = list(battle.turns.order_by("index").values_list("prompt", "prompt_scrubbed"))
    assert turns == [("mail jo.doe@mail.example.org", "mail [EMAIL]"), ("plain question", "")]
    texts = Response.objects.filter(turn__battle=battle).order_by("turn__index", "side")
    assert [r.text_scrubbed for r in texts] == ["call [PHONE]", "", "", ""]
    # The arena's write paths: the generation task's conditional update, a regenerate's reset.
    response = texts[1]
    Response.objects.filter(pk=response.pk).update(text="now 555.123.4567 and x@y.example.com")
    response.refresh_from_db()
    assert response.text_scrubbed == "now [PHONE] and [EMAIL]"
    response.text = ""
    response.save(update_fields=["text"])
    response.refresh_from_db()
    assert response.text_scrubbed == ""


def test_stored_scrub_matches_the_python_scrub_on_a_fuzzed_corpus():
    rng = random.Random(11)
    alphabet = list("0123456789" * 4) + list(" .-+()@_ab\tx\n") + ["com", ".org", "é", "٣"]
    texts = [
        "call +1 (555) 123-4567 or 555.123.4567",
        "+44 20 7946 0958 and jo.doe+x@mail.example.org",
        "on 2024-01-15, v1.2.3, ip 192.168.100.200, id 12345678, +15551234567",
    ]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(5, 40))) for _ in range(1500)]
    battle = f.voted_battle(prompts=["corpus"])
    Turn.objects.bulk_create(
        Turn(battle=battle, index=i, prompt=text) for i, text in enumerate(texts, start=1)
    )
    stored = dict(
        Turn.objects.filter(battle=battle, index__gte=1).values_list("prompt", "prompt_scrubbed")
    )
    assert stored == {text: _stored(text) for text in texts}


def _stored_json(text: str) -> str:
    """What ``ExportJson`` stores for ``text`` on PostgreSQL."""
    escaped = json.dumps(scrub(text), ensure_ascii=False)[1:-1]
    return "" if escaped == text else escaped


def _stored_key(text: str) -> bytes:
    return hashlib.sha256(scrub(text).strip().encode()).digest()


def test_stored_export_json_and_key_are_kept_by_the_database_on_every_write():
    battle = f.voted_battle(
        prompts=['  say "hi"\n to jo.doe@mail.example.org ', "plain question"],
        answers_a=["call +1 (555) 123-4567\tnow", "fine"],
        answers_b=["no pii here", "back\\slash"],
    )
    turns = list(battle.turns.order_by("index").values_list("prompt_json", "prompt_key"))
    assert turns == [
        ('  say \\"hi\\"\\n to [EMAIL] ', _stored_key(' say "hi"\n to [EMAIL]')),
        ("", _stored_key("plain question")),
    ]
    texts = Response.objects.filter(turn__battle=battle).order_by("turn__index", "side")
    assert [r.text_json for r in texts] == ["call [PHONE]\\tnow", "", "", "back\\\\slash"]
    # The arena's write paths: the generation task's conditional update, a regenerate's reset.
    response = texts[1]
    Response.objects.filter(pk=response.pk).update(text='a "quote" and x@y.example.com')
    response.refresh_from_db()
    assert response.text_json == 'a \\"quote\\" and [EMAIL]'
    response.text = ""
    response.save(update_fields=["text"])
    response.refresh_from_db()
    assert response.text_json == ""
    turn = battle.turns.get(index=1)
    Turn.objects.filter(pk=turn.pk).update(prompt="\u3000new\n")
    turn.refresh_from_db()
    assert (turn.prompt_json, bytes(turn.prompt_key)) == ("\u3000new\\n", _stored_key("new"))


def test_stored_export_json_and_key_match_python_on_a_fuzzed_corpus():
    rng = random.Random(12)
    controls = [chr(c) for c in range(1, 32)] + ["\x7f", "\x85", "\u2028", "\u3000", "\ufeff"]
    alphabet = (
        list("0123456789" * 3)
        + list(" .-+()@_ab\\\"/<>&'x")
        + controls
        + ["com", ".org", "é", "٣", "✓", "😀"]
    )
    texts = [
        "call +1 (555) 123-4567 or 555.123.4567",
        '"quoted" \\ back\tslash\n+44 20 7946 0958 and jo.doe+x@mail.example.org',
        "",
        " \t\n\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000 ",
    ]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(1500)]
    texts = list(dict.fromkeys(texts))
    battle = f.voted_battle(prompts=["corpus"])
    Turn.objects.bulk_create(
        Turn(battle=battle, index=i, prompt=text) for i, text in enumerate(texts, start=1)
    )
    stored = {
        prompt: (escaped, bytes(key))
        for prompt, escaped, key in Turn.objects.filter(battle=battle, index__gte=1).values_list(
            "prompt", "prompt_json", "prompt_key"
        )
    }
    assert stored == {text: (_stored_json(text), _stored_key(text)) for text in texts}


@pytest.mark.parametrize("dedup", [False, True])
def test_arena_battles_parquet_comes_as_arrow_columns_in_blocks(data, tmp_path, monkeypatch, dedup):
    """The columnar path (no JSON lines for the arena rows), cut into blocks of a row or two and
    row groups of 4 rows, mixed with the annotation rows after it: still the Python path's bytes."""
    from preferences import exports, sql_arrow

    monkeypatch.setattr(exports, "PARQUET_ROW_GROUP", 4)
    monkeypatch.setattr(sql_arrow, "BLOCK_BYTES", 600)
    decoded: list[int] = []
    decode = sql_arrow.decode_block
    monkeypatch.setattr(
        sql_arrow, "decode_block", lambda *a: decoded.append(len(a[1])) or decode(*a)
    )

    def no_lines(self):
        raise AssertionError("the arena rows went through JSON lines")

    monkeypatch.setattr(SqlRows, "arena_lines", no_lines)
    options = ExportOptions(
        format="arena_battles", file_format="parquet", dedup_prompts=dedup, test_fraction=0.4
    )
    py = write_splits(tmp_path / "py", _python_rows(TIE_FILTERS, options), options)
    sql = write_splits(tmp_path / "sql", SqlRows(TIE_FILTERS, options), options)
    assert _files(tmp_path / "sql") == _files(tmp_path / "py")
    assert sql.row_counts == py.row_counts
    assert max(py.row_counts.values()) > 8 and min(py.row_counts.values()) > 0
    arena = sum(1 for _, row in _python_rows(TIE_FILTERS, options) if row["source"] == "arena")
    assert len(decoded) >= 5 and sum(decoded) == arena


def test_arrow_columns_only_for_string_lists(data, tmp_path):
    """A category list holding a number needs the JSON reader's conversion: such a release goes
    through JSON lines, as do the other formats and file formats."""
    from arena.models import Battle
    from preferences.exports import ParquetWriter
    from preferences.formats import get_format

    def columnar(fmt: str = "arena_battles") -> bool:
        options = ExportOptions(format=fmt, file_format="parquet")
        schema = get_format(options.format).schema(False)
        writers = {s: ParquetWriter(tmp_path / f"{s}.parquet", schema=schema) for s in SPLITS}
        try:
            return SqlRows(TIE_FILTERS, options).columnar(writers)
        finally:
            for w in writers.values():
                w.close()

    assert columnar()
    assert not columnar("trl_standard")
    first = Battle.objects.order_by("id").first()
    Battle.objects.filter(pk=first.pk).update(categories=["all", 3])
    assert not columnar()


def test_a_misaligned_block_fails_instead_of_writing_shifted_columns(data):
    """A row whose lengths do not add up (here: one byte cut off the end) raises."""
    from core import pgcopy
    from preferences import sql_arrow
    from preferences.formats import get_format
    from preferences.sql_export import _copy_out

    options = ExportOptions(format="arena_battles", file_format="parquet")
    rows = SqlRows(TIE_FILTERS, options)
    with _copy_out(sql_arrow.arena_columns_sql(rows._arena(), options)) as copy:
        messages = [bytes(m) for m in copy]
    body = list(pgcopy.row_messages(messages))
    schema = get_format("arena_battles").schema(False)
    sizes = np.array([len(m) for m in body])
    train, test = sql_arrow.decode_block(b"".join(body), sizes, schema)
    assert train.num_rows + test.num_rows == len(body)
    sizes[-1] -= 1
    with pytest.raises(sql_arrow.LayoutError, match="row layout"):
        sql_arrow.decode_block(b"".join(body)[:-1], sizes, schema)
