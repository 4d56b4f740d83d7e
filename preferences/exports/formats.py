"""Export formats: each defined once, as Arrow columns built from a block of pairs (or rankings).

A format is its Arrow schema (Parquet, and the dataset card's ``features``), whether it can
express ties, and one ``build`` function over a block of the pair table
(:data:`preferences.exports.tables.PAIRS`; the ``rankings`` format: the ranking table). The same
function serves PostgreSQL and SQLite, arena votes and annotation rankings, Parquet (texts as
they are) and JSON lines (texts as JSON escapes, see :mod:`preferences.exports.columns`). Field
names follow the formats' published specifications:

- ``trl_standard``: Hugging Face TRL's preference dataset, standard type with an explicit
  prompt: ``prompt`` / ``chosen`` / ``rejected`` as texts (optional ``margin``)
- ``trl_conversational``: the same as lists of ``{"role", "content"}`` messages
- ``hh``: Anthropic hh-rlhf: ``chosen`` / ``rejected`` transcripts
  (``"\\n\\nHuman: ...\\n\\nAssistant: ..."``, every turn)
- ``openai_dpo``: OpenAI preference fine-tuning JSONL: ``input.messages`` /
  ``preferred_output`` / ``non_preferred_output`` (one assistant message each)
- ``arena_battles``: the rows of lmsys/chatbot_arena_conversations (``question_id``, models,
  ``winner`` as ``model_a`` / ``model_b`` / ``tie`` / ``tie (bothbad)``, both conversations,
  ``turn``, ``anony``, ``language``, ``tstamp`` in epoch seconds), plus source, categories,
  flags and weight
- ``rankings``: raw per-annotator rankings with labels (an arena vote is a ranking of two)

Multi-turn pairs: in the TRL formats the prompt is the first user turn and chosen/rejected carry
the rest of each side's conversation; HH carries both full transcripts; OpenAI's ``input`` is the
chosen side's history up to the last user turn (the API needs one shared input).
Chosen/rejected formats cannot say "tie": asking them for ties or both-bad is refused upstream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from preferences.exports.columns import (
    MESSAGES,
    STRINGS,
    Texts,
    cat,
    constant,
    drop_first,
    drop_last,
    first,
    interleave,
    join,
    last,
    lengths,
    map_values,
    per_turn,
    role_messages,
    singletons,
)
from preferences.selectors import WINNER_A, WINNER_B, WINNER_BOTH_BAD, WINNER_TIE

Columns = dict[str, pa.Array]


def _oriented(block: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(chosen, rejected) answer lists; for a tie side a comes first."""
    b_won = pc.equal(block["winner"].combine_chunks(), WINNER_B)
    a, b = block["response_a"].combine_chunks(), block["response_b"].combine_chunks()
    return pc.if_else(b_won, b, a), pc.if_else(b_won, a, b)


def _column(block: pa.Table, name: str) -> pa.Array:
    return block[name].combine_chunks()


def _human_turn(tx: Texts) -> Callable[[pa.Array, pa.Array, Any], pa.Array]:
    def piece(prompt: pa.Array, answer: pa.Array, index: Any) -> pa.Array:
        return cat(tx.lit("\n\nHuman: "), prompt, tx.lit("\n\nAssistant: "), answer)

    return piece


def _transcript(prompts: pa.Array, answers: pa.Array, tx: Texts) -> pa.Array:
    """The HH transcript of every turn."""
    return join(per_turn(prompts, answers, _human_turn(tx)), "")


def _continuation(prompts: pa.Array, answers: pa.Array, tx: Texts) -> pa.Array:
    """The first answer, then any later turns as an HH-style transcript."""
    human = _human_turn(tx)

    def piece(prompt: pa.Array, answer: pa.Array, index: Any) -> pa.Array:
        if (index == 0).all():  # one turn each (the common case): the answers themselves
            return answer
        return pc.if_else(pa.array(index == 0), answer, human(prompt, answer, index))

    return join(per_turn(prompts, answers, piece), "")


def _with_margin(columns: Columns, block: pa.Table, margin: bool) -> Columns:
    if margin:
        columns["margin"] = _column(block, "margin")
    return columns


# --- pair formats ----------------------------------------------------------------------------


def trl_standard(block: pa.Table, tx: Texts, margin: bool) -> Columns:
    prompts = _column(block, "prompts")
    chosen, rejected = _oriented(block)
    columns = {
        "prompt": first(prompts),
        "chosen": _continuation(prompts, chosen, tx),
        "rejected": _continuation(prompts, rejected, tx),
    }
    return _with_margin(columns, block, margin)


def trl_conversational(block: pa.Table, tx: Texts, margin: bool) -> Columns:
    prompts = _column(block, "prompts")
    chosen, rejected = _oriented(block)
    columns = {
        "prompt": singletons(role_messages(first(prompts), "user", tx)),
        "chosen": drop_first(interleave(prompts, chosen, tx)),
        "rejected": drop_first(interleave(prompts, rejected, tx)),
    }
    return _with_margin(columns, block, margin)


def hh(block: pa.Table, tx: Texts, margin: bool) -> Columns:
    prompts = _column(block, "prompts")
    chosen, rejected = _oriented(block)
    return {
        "chosen": _transcript(prompts, chosen, tx),
        "rejected": _transcript(prompts, rejected, tx),
    }


def openai_dpo(block: pa.Table, tx: Texts, margin: bool) -> Columns:
    prompts = _column(block, "prompts")
    chosen, rejected = _oriented(block)
    history = drop_last(interleave(prompts, chosen, tx))  # up to the last user turn
    return {
        "input": pa.StructArray.from_arrays([history], names=["messages"]),
        "preferred_output": singletons(role_messages(last(chosen), "assistant", tx)),
        "non_preferred_output": singletons(role_messages(last(rejected), "assistant", tx)),
    }


def arena_winner(winners: pa.Array, tx: Texts) -> pa.Array:
    names = {
        WINNER_A: "model_a",
        WINNER_B: "model_b",
        WINNER_TIE: "tie",
        WINNER_BOTH_BAD: "tie (bothbad)",
    }
    return map_values(winners, {w: tx.lit(name) for w, name in names.items()})


def arena_battles(block: pa.Table, tx: Texts, margin: bool) -> Columns:
    n = block.num_rows
    prompts = _column(block, "prompts")
    micros = pc.cast(_column(block, "created"), pa.int64())
    return {
        "question_id": _column(block, "id"),
        "model_a": _column(block, "model_a"),
        "model_b": _column(block, "model_b"),
        "winner": arena_winner(_column(block, "winner"), tx),
        "judge": _column(block, "judge"),
        "conversation_a": interleave(prompts, _column(block, "response_a"), tx),
        "conversation_b": interleave(prompts, _column(block, "response_b"), tx),
        "turn": pa.array(lengths(prompts)),
        "anony": constant(True, n, pa.bool_()),
        "language": _column(block, "language"),
        # epoch seconds: the microseconds divided once, correctly rounded (datetime.timestamp)
        "tstamp": pa.array(micros.to_numpy() / 1e6),
        "source": _column(block, "source"),
        "category_tag": _column(block, "categories"),
        "flags": _column(block, "flags"),
        "weight": _column(block, "weight"),
    }


# --- rankings ------------------------------------------------------------------------------------


def iso_utc(created: pa.Array) -> pa.Array:
    """``datetime.astimezone(UTC).isoformat()``: microseconds only when not zero."""
    micros = pc.cast(created, pa.int64()).to_numpy()
    seconds = pa.array(micros // 1_000_000 * 1_000_000, pa.timestamp("us", "UTC"))
    whole = pc.strftime(pc.cast(seconds, pa.timestamp("s", "UTC")), "%Y-%m-%dT%H:%M:%S")
    fraction = pc.utf8_lpad(pa.array(micros % 1_000_000).cast(pa.string()), 6, "0")
    fraction = pc.if_else(pa.array(micros % 1_000_000 == 0), "", cat(".", fraction))
    return cat(whole, fraction, "+00:00")


def rankings(block: pa.Table, tx: Texts, margin: bool) -> Columns:
    responses = _column(block, "responses")
    offsets = responses.offsets
    text, model, labels = responses.values.flatten()
    ranks = _column(block, "ranks").values
    response = pa.StructArray.from_arrays(
        [text, model, ranks, labels], fields=list(RESPONSE_RANKED)
    )
    return {
        "id": _column(block, "id"),
        "source": _column(block, "source"),
        "prompt": interleave(_column(block, "prompts"), _column(block, "shared_answers"), tx),
        "responses": pa.ListArray.from_arrays(offsets, response),
        "judge": _column(block, "judge"),
        "trust": _column(block, "trust"),
        "agreement": _column(block, "agreement"),
        "language": _column(block, "language"),
        "category_tag": _column(block, "categories"),
        "flags": _column(block, "flags"),
        "created": iso_utc(_column(block, "created")),
    }


RESPONSE_RANKED = pa.struct(
    [("text", pa.string()), ("model", pa.string()), ("rank", pa.int64()), ("labels", pa.string())]
)


# --- registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    name: str
    title: str
    build: Callable[[pa.Table, Texts, bool], Columns]
    fields: tuple[tuple[str, pa.DataType], ...]
    ties: bool  # can the format say "tie" / "both bad"?
    per_ranking: bool = False  # rows are rankings, not pairs
    tags: tuple[str, ...] = ()
    has_margin: bool = False  # adds ``margin`` when the release asks for it

    def schema(self, margin: bool) -> pa.Schema:
        extra = [("margin", pa.float64())] if margin and self.has_margin else []
        return pa.schema(list(self.fields) + extra)

    def table(self, block: pa.Table, tx: Texts, margin: bool) -> pa.Table:
        """The format's rows for a block (texts in ``tx``'s mode)."""
        schema = self.schema(margin)
        columns = self.build(block, tx, margin)
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


_CHOSEN_REJECTED_TEXT = (
    ("prompt", pa.string()),
    ("chosen", pa.string()),
    ("rejected", pa.string()),
)

FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format(
            "trl_standard",
            "TRL preference (standard, explicit prompt)",
            trl_standard,
            _CHOSEN_REJECTED_TEXT,
            ties=False,
            tags=("trl", "dpo", "reward-modeling"),
            has_margin=True,
        ),
        Format(
            "trl_conversational",
            "TRL preference (conversational, explicit prompt)",
            trl_conversational,
            (("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)),
            ties=False,
            tags=("trl", "dpo", "reward-modeling"),
            has_margin=True,
        ),
        Format(
            "hh",
            "Anthropic HH (chosen / rejected transcripts)",
            hh,
            (("chosen", pa.string()), ("rejected", pa.string())),
            ties=False,
            tags=("hh-rlhf", "reward-modeling"),
        ),
        Format(
            "openai_dpo",
            "OpenAI preference fine-tuning (DPO) JSONL",
            openai_dpo,
            (
                ("input", pa.struct([("messages", MESSAGES)])),
                ("preferred_output", MESSAGES),
                ("non_preferred_output", MESSAGES),
            ),
            ties=False,
            tags=("dpo", "openai"),
        ),
        Format(
            "arena_battles",
            "Chatbot Arena battle rows",
            arena_battles,
            (
                ("question_id", pa.string()),
                ("model_a", pa.string()),
                ("model_b", pa.string()),
                ("winner", pa.string()),
                ("judge", pa.string()),
                ("conversation_a", MESSAGES),
                ("conversation_b", MESSAGES),
                ("turn", pa.int64()),
                ("anony", pa.bool_()),
                ("language", pa.string()),
                ("tstamp", pa.float64()),
                ("source", pa.string()),
                ("category_tag", STRINGS),
                ("flags", STRINGS),
                ("weight", pa.float64()),
            ),
            ties=True,
            tags=("chatbot-arena", "pairwise"),
        ),
        Format(
            "rankings",
            "Raw per-annotator rankings with labels",
            rankings,
            (
                ("id", pa.string()),
                ("source", pa.string()),
                ("prompt", MESSAGES),
                ("responses", pa.list_(RESPONSE_RANKED)),
                ("judge", pa.string()),
                ("trust", pa.float64()),
                ("agreement", pa.float64()),
                ("language", pa.string()),
                ("category_tag", STRINGS),
                ("flags", STRINGS),
                ("created", pa.string()),
            ),
            ties=True,
            per_ranking=True,
            tags=("rankings", "annotation"),
        ),
    ]
}

FORMAT_CHOICES = [(f.name, f.title) for f in FORMATS.values()]


def get_format(name: str) -> Format:
    return FORMATS[name]


def hf_features(schema: pa.Schema) -> list[dict[str, Any]]:
    """The dataset card's ``dataset_info.features`` for an Arrow schema."""
    return [_feature(f.name, f.type) for f in schema]


def _dtype(t: pa.DataType) -> Any:
    if pa.types.is_string(t):
        return "string"
    if pa.types.is_float64(t):
        return "float64"
    if pa.types.is_int64(t):
        return "int64"
    if pa.types.is_boolean(t):
        return "bool"
    raise TypeError(t)


def _feature(name: str, t: pa.DataType) -> dict[str, Any]:
    if pa.types.is_list(t):
        inner = t.value_type
        if pa.types.is_struct(inner):
            return {"name": name, "list": [_feature(f.name, f.type) for f in inner]}
        return {"name": name, "sequence": _dtype(inner)}
    if pa.types.is_struct(t):
        return {"name": name, "struct": [_feature(f.name, f.type) for f in t]}
    return {"name": name, "dtype": _dtype(t)}
