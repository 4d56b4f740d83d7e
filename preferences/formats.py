"""Export formats: one function per format turning a pair (or a ranking) into one row.

Each format also declares its Arrow schema (Parquet, and the dataset card's ``features``) and
whether it can express ties. Field names follow the published specifications
(shared/reference/rating_and_formats.md §5):

- ``trl_standard``: TRL preference, standard, explicit prompt: prompt / chosen / rejected (text)
- ``trl_conversational``: the same as message lists
- ``hh``: Anthropic hh-rlhf transcripts: chosen / rejected ("\\n\\nHuman: ...\\n\\nAssistant: ...")
- ``openai_dpo``: OpenAI preference fine-tuning: input.messages / preferred_output /
  non_preferred_output
- ``arena_battles``: lmsys/chatbot_arena_conversations battle rows
- ``rankings``: raw per-annotator rankings with labels (an arena vote is a ranking of two)

Multi-turn pairs: in the TRL formats the prompt is the first user turn and chosen/rejected carry
the rest of each side's conversation; HH carries both full transcripts; OpenAI's ``input`` is the
chosen side's history up to the last user turn (the API needs one shared input).
Chosen/rejected formats cannot say "tie": asking them for ties or both-bad is refused upstream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import pyarrow as pa

from preferences.selectors import (
    OUTCOME_A,
    OUTCOME_B,
    OUTCOME_BOTH_BAD,
    OUTCOME_TIE,
    SOURCE_ARENA,
    Pair,
    RankedResponse,
    Ranking,
)

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def conversation(prompts: list[str], answers: list[str]) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    for prompt, answer in zip(prompts, answers, strict=False):
        messages.append(_user(prompt))
        messages.append(_assistant(answer))
    return messages


def _continuation_text(prompts: list[str], answers: list[str]) -> str:
    """The first answer, then any later turns as an HH-style transcript."""
    text = answers[0]
    for prompt, answer in zip(prompts[1:], answers[1:], strict=False):
        text += f"\n\nHuman: {prompt}\n\nAssistant: {answer}"
    return text


def hh_transcript(prompts: list[str], answers: list[str]) -> str:
    return "".join(
        f"\n\nHuman: {p}\n\nAssistant: {a}" for p, a in zip(prompts, answers, strict=False)
    )


# --- pair formats ----------------------------------------------------------------------------


def trl_standard(pair: Pair, margin: bool) -> dict[str, Any]:
    chosen, rejected, _, _ = pair.oriented()
    row: dict[str, Any] = {
        "prompt": pair.prompts[0],
        "chosen": _continuation_text(pair.prompts, chosen),
        "rejected": _continuation_text(pair.prompts, rejected),
    }
    if margin:
        row["margin"] = pair.margin
    return row


def trl_conversational(pair: Pair, margin: bool) -> dict[str, Any]:
    chosen, rejected, _, _ = pair.oriented()
    row: dict[str, Any] = {
        "prompt": [_user(pair.prompts[0])],
        "chosen": conversation(pair.prompts, chosen)[1:],
        "rejected": conversation(pair.prompts, rejected)[1:],
    }
    if margin:
        row["margin"] = pair.margin
    return row


def hh(pair: Pair, margin: bool) -> dict[str, Any]:
    chosen, rejected, _, _ = pair.oriented()
    return {
        "chosen": hh_transcript(pair.prompts, chosen),
        "rejected": hh_transcript(pair.prompts, rejected),
    }


def openai_dpo(pair: Pair, margin: bool) -> dict[str, Any]:
    chosen, rejected, _, _ = pair.oriented()
    history = conversation(pair.prompts[:-1], chosen[:-1]) + [_user(pair.prompts[-1])]
    return {
        "input": {"messages": history},
        "preferred_output": [_assistant(chosen[-1])],
        "non_preferred_output": [_assistant(rejected[-1])],
    }


ARENA_WINNER = {
    OUTCOME_A: "model_a",
    OUTCOME_B: "model_b",
    OUTCOME_TIE: "tie",
    OUTCOME_BOTH_BAD: "tie (bothbad)",
}


def arena_battles(pair: Pair, margin: bool) -> dict[str, Any]:
    return {
        "question_id": pair.id,
        "model_a": pair.model_a,
        "model_b": pair.model_b,
        "winner": ARENA_WINNER[pair.outcome],
        "judge": pair.judge,
        "conversation_a": conversation(pair.prompts, pair.response_a),
        "conversation_b": conversation(pair.prompts, pair.response_b),
        "turn": len(pair.prompts),
        "anony": True,
        "language": pair.language,
        "tstamp": pair.created.astimezone(UTC).timestamp(),
        "source": pair.source,
        "category_tag": list(pair.categories),
        "flags": list(pair.flags),
        "weight": pair.weight,
    }


# --- rankings ------------------------------------------------------------------------------------


def ranking_from_pair(pair: Pair) -> Ranking:
    """An arena vote as a ranking of two (both-bad is a tie labelled ``both_bad``)."""
    ranks = {OUTCOME_A: [1, 2], OUTCOME_B: [2, 1]}.get(pair.outcome, [1, 1])
    label = {"both_bad": True} if pair.outcome == OUTCOME_BOTH_BAD else {}
    return Ranking(
        pk=pair.source_pk,
        prompts=pair.prompts,
        responses=[
            RankedResponse("\n\n".join(pair.response_a), pair.model_a, dict(label)),
            RankedResponse("\n\n".join(pair.response_b), pair.model_b, dict(label)),
        ],
        ranks=ranks,
        judge=pair.judge,
        created=pair.created,
        categories=pair.categories,
        language=pair.language,
        source=SOURCE_ARENA,
        flags=pair.flags,
        public_id=pair.id,
    )


def _ranking_prompt(ranking: Ranking) -> list[dict[str, str]]:
    """The conversation before the ranked replies (earlier turns shared by all replies)."""
    if len(ranking.shared_answers) == len(ranking.prompts) - 1:
        return conversation(ranking.prompts[:-1], ranking.shared_answers) + [
            _user(ranking.prompts[-1])
        ]
    return [_user(p) for p in ranking.prompts]  # arena multi-turn: each side's own history


def rankings(ranking: Ranking, margin: bool) -> dict[str, Any]:
    return {
        "id": ranking.public_id or f"{ranking.source}:{ranking.pk}",
        "source": ranking.source,
        "prompt": _ranking_prompt(ranking),
        "responses": [
            {
                "text": r.text,
                "model": r.model,
                "rank": rank,
                "labels": json.dumps(r.labels, sort_keys=True, ensure_ascii=False),
            }
            for r, rank in zip(ranking.responses, ranking.ranks, strict=True)
        ],
        "judge": ranking.judge,
        "trust": ranking.trust,
        "agreement": ranking.agreement,
        "language": ranking.language,
        "category_tag": list(ranking.categories),
        "flags": list(ranking.flags),
        "created": ranking.created.astimezone(UTC).isoformat(),
    }


# --- registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    name: str
    title: str
    row: Callable[[Any, bool], dict[str, Any]]
    schema: Callable[[bool], pa.Schema]
    ties: bool  # can the format say "tie" / "both bad"?
    per_ranking: bool = False  # rows are rankings, not pairs
    tags: tuple[str, ...] = ()


def _with_margin(fields: list[tuple[str, pa.DataType]], margin: bool) -> pa.Schema:
    return pa.schema(fields + ([("margin", pa.float64())] if margin else []))


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format(
            "trl_standard",
            "TRL preference (standard, explicit prompt)",
            trl_standard,
            lambda m: _with_margin(
                [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())], m
            ),
            ties=False,
            tags=("trl", "dpo", "reward-modeling"),
        ),
        Format(
            "trl_conversational",
            "TRL preference (conversational, explicit prompt)",
            trl_conversational,
            lambda m: _with_margin(
                [("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)], m
            ),
            ties=False,
            tags=("trl", "dpo", "reward-modeling"),
        ),
        Format(
            "hh",
            "Anthropic HH (chosen / rejected transcripts)",
            hh,
            lambda m: pa.schema([("chosen", pa.string()), ("rejected", pa.string())]),
            ties=False,
            tags=("hh-rlhf", "reward-modeling"),
        ),
        Format(
            "openai_dpo",
            "OpenAI preference fine-tuning (DPO) JSONL",
            openai_dpo,
            lambda m: pa.schema(
                [
                    ("input", pa.struct([("messages", MESSAGES)])),
                    ("preferred_output", MESSAGES),
                    ("non_preferred_output", MESSAGES),
                ]
            ),
            ties=False,
            tags=("dpo", "openai"),
        ),
        Format(
            "arena_battles",
            "Chatbot Arena battle rows",
            arena_battles,
            lambda m: pa.schema(
                [
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
                    ("category_tag", pa.list_(pa.string())),
                    ("flags", pa.list_(pa.string())),
                    ("weight", pa.float64()),
                ]
            ),
            ties=True,
            tags=("chatbot-arena", "pairwise"),
        ),
        Format(
            "rankings",
            "Raw per-annotator rankings with labels",
            rankings,
            lambda m: pa.schema(
                [
                    ("id", pa.string()),
                    ("source", pa.string()),
                    ("prompt", MESSAGES),
                    (
                        "responses",
                        pa.list_(
                            pa.struct(
                                [
                                    ("text", pa.string()),
                                    ("model", pa.string()),
                                    ("rank", pa.int64()),
                                    ("labels", pa.string()),
                                ]
                            )
                        ),
                    ),
                    ("judge", pa.string()),
                    ("trust", pa.float64()),
                    ("agreement", pa.float64()),
                    ("language", pa.string()),
                    ("category_tag", pa.list_(pa.string())),
                    ("flags", pa.list_(pa.string())),
                    ("created", pa.string()),
                ]
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
