"""The fixed fixture behind the golden files: a few votes of every kind and three rankings."""

from __future__ import annotations

from typing import Any

from tests.preferences import factories as f


def build(rankings_source: Any) -> None:
    f.voted_battle(
        model_a="alpha",
        model_b="beta",
        prompts=["What is 2+2?"],
        answers_a=["4"],
        answers_b=["5"],
        winner="a",
        categories=["all", "math"],
        minutes=1,
        key=1,
    )
    f.voted_battle(
        model_a="gamma",
        model_b="alpha",
        prompts=["Write to me at jo@example.com", "Or call +44 20 7946 0958"],
        answers_a=["Sure, jo@example.com noted.", "Calling (555) 123-4567 now."],
        answers_b=["I cannot email.", "I cannot call."],
        winner="b",
        language="en",
        minutes=2,
        key=2,
    )
    f.voted_battle(
        prompts=["Tie?"],
        answers_a=["yes"],
        answers_b=["yes!"],
        winner="tie",
        minutes=3,
        key=3,
    )
    f.voted_battle(
        prompts=["Bad?"], answers_a=["no"], answers_b=["nah"], winner="both_bad", minutes=4, key=4
    )
    f.voted_battle(prompts=["Flagged"], winner="a", flags=["identity_leak"], minutes=5, key=5)
    f.voted_battle(
        prompts=["Héllo, ünïcode ✓"],
        answers_a=["Bonjour"],
        answers_b=["Hi"],
        winner="b",
        minutes=6,
        key=6,
    )
    rankings_source(
        [
            f.ranking(
                1,
                [2, 1, 3],
                prompt="Sort these fruits",
                models=["alpha", "beta", "gamma"],
                labels=[{"helpful": True}, {}, {"harmful": True}],
            ),
            f.ranking(2, [1, 1], prompt="Two equal answers", models=["beta", "gamma"], trust=0.4),
            f.ranking(3, [1, 2, 2, 3], prompt="Four replies", judge="ann-2", agreement=0.5),
        ]
    )
