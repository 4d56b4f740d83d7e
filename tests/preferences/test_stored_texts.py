"""The texts PostgreSQL keeps for the export on every write (``arena.models``: the PII scrub, the
JSON escape and the prompt key of every prompt and response) agree with the Python definitions
(``arena.pii.scrub``, ``json.dumps``, ``exports.options.prompt_key``) that compute them where
they are not stored."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from django.db import connection

from arena.models import Response, Turn
from arena.pii import EMAIL_PATTERN, PHONE_PATTERN, scrub
from tests.preferences import factories as f

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="only PostgreSQL stores them"),
]


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
