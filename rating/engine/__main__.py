"""CLI: `python -m rating.engine FILE` prints a BT leaderboard for a battle file."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rating.engine.bt import TIE_MODELS
from rating.engine.data import RatingError
from rating.engine.io import read_battles
from rating.engine.leaderboard import CI_METHODS, Leaderboard, leaderboard


def _parse_anchor(text: str) -> tuple[str, float]:
    name, sep, score = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected MODEL=SCORE")
    try:
        return name, float(score)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad score {score!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rating.engine",
        description="Bradley-Terry leaderboard from a Chatbot Arena battle file "
        "(JSON, JSONL or Parquet; columns model_a, model_b, winner).",
    )
    parser.add_argument("file", help="battle file (.json, .jsonl or .parquet)")
    parser.add_argument("--ci", choices=CI_METHODS, default="sandwich")
    parser.add_argument("--bootstrap-rounds", type=int, default=1000)
    parser.add_argument("--ties", choices=TIE_MODELS, default="half")
    parser.add_argument("--style-control", action="store_true", help="control for style")
    parser.add_argument("--anchor", type=_parse_anchor, help="MODEL=SCORE (default: mean 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    return parser


def format_table(board: Leaderboard) -> str:
    """Plain-text table: rank, model, score, 95% interval, votes."""
    width = max([5, *(len(r.name) for r in board.models)])
    lines = [f"{'rank':>4}  {'model':<{width}}  {'score':>7}  {'interval':>17}  {'votes':>7}"]
    for r in board.models:
        if r.score is None:
            lines.append(f"{'-':>4}  {r.name:<{width}}  {'-':>7}  {'-':>17}  {r.votes:>7}")
            continue
        interval = f"[{r.lower:7.1f}, {r.upper:7.1f}]"
        lines.append(
            f"{r.rank:>4}  {r.name:<{width}}  {r.score:7.1f}  {interval:>17}  {r.votes:>7}"
        )
    style = board.params.get("style")
    if isinstance(style, dict):
        lines.append("")
        lines.append("style coefficients (log-odds per SD):")
        for name, coef in zip(style["features"], style["coefficients"], strict=True):
            lines.append(f"  {name:<8} {coef:+.4f}")
    for warning in board.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        battles = read_battles(args.file)
        anchor = None
        if args.anchor is not None:
            name, score = args.anchor
            if name not in battles.model_names:
                raise RatingError(f"anchor model {name!r} is not in the file")
            anchor = (battles.model_names.index(name), score)
        if args.style_control and battles.style is None:
            raise RatingError("--style-control needs style features (conv_metadata) in every row")
        board = leaderboard(
            battles.model_names,
            battles.model_a,
            battles.model_b,
            battles.outcome,
            style=battles.style if args.style_control else None,
            ties=args.ties,
            ci=args.ci,
            bootstrap_rounds=args.bootstrap_rounds,
            anchor=anchor,
            seed=args.seed,
        )
    except (RatingError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(board.to_dict(), indent=2) if args.json else format_table(board))
    return 0


if __name__ == "__main__":
    sys.exit(main())
