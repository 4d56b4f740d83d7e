"""CLI: `python -m rating.engine FILE` prints a BT leaderboard for a battle file.

Exit status: 0 with a board, 2 on bad input or options, 3 when the data cannot support a board
(it is withheld: the reason is printed, no score is).
"""

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
    # allow_abbrev=False: "--bootstrap 1000" used to be read as "--bootstrap-rounds 1000" and
    # then ignored with the default sandwich intervals.
    parser = argparse.ArgumentParser(
        prog="python -m rating.engine",
        description="Bradley-Terry leaderboard from a Chatbot Arena battle file "
        "(JSON, JSONL or Parquet; columns model_a, model_b, winner).",
        allow_abbrev=False,
    )
    parser.add_argument("file", help="battle file (.json, .jsonl or .parquet)")
    parser.add_argument(
        "--ci", choices=CI_METHODS, default="sandwich",
        help="interval method: sandwich (robust, default) or bootstrap (count resampling)",
    )  # fmt: skip
    parser.add_argument(
        "--bootstrap-rounds", type=_positive_int, default=None, metavar="N",
        help="bootstrap rounds (default 1000); only with --ci bootstrap",
    )  # fmt: skip
    parser.add_argument(
        "--ties", choices=TIE_MODELS, default="half",
        help="tie model: half (a tie is half a win each, Chatbot Arena), davidson or "
        "rao-kupper; their strengths are different quantities",
    )  # fmt: skip
    parser.add_argument(
        "--style-control", action="store_true",
        help="control for style (length, headers, lists, bold; needs conv_metadata)",
    )  # fmt: skip
    parser.add_argument(
        "--anchor", type=_parse_anchor, metavar="MODEL=SCORE",
        help="give MODEL exactly SCORE (default: the mean score is 1000)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _hint(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """The hint "(did you mean ...?)" for unknown options that abbreviate known ones."""
    known = [o for action in parser._actions for o in action.option_strings]
    near = [o for u in unknown if u.startswith("--") for o in known if o.startswith(u)]
    return f" (did you mean {' or '.join(near)}?)" if near else ""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and cross-check the options (argparse exits with status 2 on an error)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{_hint(parser, unknown)}")
    if args.bootstrap_rounds is not None and args.ci != "bootstrap":
        parser.error("--bootstrap-rounds needs --ci bootstrap (intervals are sandwich otherwise)")
    if args.bootstrap_rounds is None:
        args.bootstrap_rounds = 1000
    return args


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
    status = board.status
    style = board.params.get("style")
    if isinstance(style, dict) and "coefficients" in style:
        lines.append("")
        lines.append("style coefficients (log-odds per SD):")
        for name, coef in zip(style["features"], style["coefficients"], strict=True):
            lines.append(f"  {name:<8} {coef:+.4f}")
    lines.append("")
    lines.append(f"ties: {board.method['ties']}: {board.method['ties_meaning']}")
    for warning in board.warnings:
        label = {"withheld": "board withheld", "regularised": "note"}.get(status.status, "warning")
        lines.append(f"{label if warning == status.reason else 'warning'}: {warning}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
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
    if not board.status.has_scores:
        print(f"error: {board.status.reason}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
