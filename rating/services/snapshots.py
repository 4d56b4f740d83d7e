"""Leaderboard snapshots: fit a board, store it (bounded history), push it to open pages, and
the live refresh that does all three from the counts.

``leaderboard_refresh`` is cheap: one GROUP BY over the counts table finds the categories whose
counts changed; only their cells are read and refitted (plain Bradley-Terry). It runs every few
seconds and does nothing unless a vote was counted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from arena.models import LLM
from arena.selectors import llms_by_pk
from rating import selectors
from rating.engine import Leaderboard, StyleFeatures, VoteCounts, leaderboard
from rating.engine.leaderboard import to_plain
from rating.engine.threads import one_blas_thread
from rating.models import LeaderboardSnapshot
from rating.services.runs import RECOMPUTE_SECONDS, RECOMPUTES, SNAPSHOTS_WRITTEN, run_lock

log = logging.getLogger(__name__)

KEEP_SNAPSHOTS = 10  # per (source, category, style control): a short history, bounded table
MEAN_SCORE = 1000.0
LEADERBOARD_GROUP = "leaderboard"


def leaderboard_group() -> str:
    """The one channel group every open leaderboard page joins."""
    return LEADERBOARD_GROUP


def interval_method() -> str:
    """Interval method of the plain boards: settings.RATING_CI, "sandwich" (default, no
    resampling) or "bootstrap". Style-controlled boards always use the sandwich."""
    return getattr(settings, "RATING_CI", "sandwich")


# --- fitting ------------------------------------------------------------------------------------


@dataclass
class Fit:
    """One fitted board and what its snapshot needs: the LLM pk of each engine model index
    (``pks``) and the flagged votes the category left out (``excluded``: the total and the
    count per flag, as ``selectors.excluded_summary`` builds it)."""

    category: str
    style_control: bool
    board: Leaderboard
    pks: list[int]
    excluded: dict[str, Any]

    @property
    def flagged(self) -> int:
        return int(self.excluded.get("total", 0))


def model_index(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct model pks of a and b (sorted) and a, b as indexes into them; O(votes)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if not a.size:
        return np.zeros(0, dtype=np.int64), a, b
    top = int(max(a.max(), b.max()))
    if top > 50_000_000 or min(a.min(), b.min()) < 0:  # sparse ids: sort instead
        pks, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
        return pks, inv[: a.size], inv[a.size :]
    present = np.zeros(top + 1, dtype=bool)
    present[a] = True
    present[b] = True
    pks = np.flatnonzero(present)
    lookup = np.cumsum(present) - 1
    return pks, lookup[a], lookup[b]


def fit_counts(
    cc: selectors.CategoryCounts, slugs: dict[int, str]
) -> tuple[Leaderboard, list[int]]:
    """Plain BT board of one category's counts; returns the board and its models' pks."""
    pks, ia, ib = model_index(cc.a, cc.b)
    counts = VoteCounts.from_counts(len(pks), ia, ib, cc.outcome, cc.votes)
    names = [slugs.get(int(p), str(p)) for p in pks]
    board = leaderboard(names, counts=counts, ci=interval_method(), mean_score=MEAN_SCORE, seed=0)
    return board, [int(p) for p in pks]


def fit_votes(
    arrays: selectors.VoteArrays, mask: np.ndarray, slugs: dict[int, str], *, style: bool
) -> tuple[Leaderboard, list[int]]:
    """Board of the votes where ``mask`` is true (style-controlled when ``style``)."""
    every = bool(mask.all())

    def pick(x: np.ndarray) -> np.ndarray:
        return x if every else x[mask]

    pks, ia, ib = model_index(pick(arrays.model_a), pick(arrays.model_b))
    names = [slugs.get(int(p), str(p)) for p in pks]
    features = StyleFeatures(pick(arrays.features_a), pick(arrays.features_b)) if style else None
    board = leaderboard(
        names, ia, ib, pick(arrays.outcome), style=features,
        ci="sandwich" if style else interval_method(), mean_score=MEAN_SCORE, seed=0,
    )  # fmt: skip
    return board, [int(p) for p in pks]


def empty_board() -> Leaderboard:
    """The board of a category without counted votes (the page says so)."""
    return leaderboard([], counts=VoteCounts.from_counts(0, [], [], [], []), mean_score=MEAN_SCORE)


# --- snapshots ----------------------------------------------------------------------------------


def _rows(board: Leaderboard, pks: list[int], llms: dict[int, LLM]) -> list[dict[str, Any]]:
    rows = []
    for r in board.models:
        llm = llms.get(pks[r.index])
        rows.append(
            {
                "rank": r.rank,
                "model": r.name,
                "name": llm.display_name if llm else r.name,
                "organisation": llm.organisation if llm else "",
                "license": llm.license if llm else "",
                "score": r.score,
                "lower": r.lower,
                "upper": r.upper,
                "ci_plus": None if r.score is None else r.upper - r.score,  # type: ignore[operator]
                "ci_minus": None if r.score is None else r.score - r.lower,  # type: ignore[operator]
                "votes": r.votes,
                "component": r.component,
            }
        )
    return rows


def _matrices(board: Leaderboard) -> dict[str, Any]:
    """Matrices reordered to the rows' order (best first), NaN and the diagonal as None."""
    order = np.array([r.index for r in board.models], dtype=np.int64)

    def reorder(matrix: np.ndarray, *, as_int: bool = False) -> list[list[Any]]:
        sub = np.asarray(matrix)[np.ix_(order, order)]
        if as_int:
            out = sub.astype(np.int64).astype(object)
        else:  # rates to 1e-6: a third of the JSON of full doubles, far below any display
            sub = sub.astype(np.float64)
            out = np.round(sub, 6).astype(object)
            out[~np.isfinite(sub)] = None
        np.fill_diagonal(out, None)
        return out.tolist()

    return {
        "models": [board.model_names[i] for i in order],
        "predicted_win_rate": reorder(board.predicted_win_rate),
        "observed_win_rate": reorder(board.observed_win_rate),
        "battle_counts": reorder(board.battle_counts, as_int=True),
    }


def snapshot_build(
    fit: Fit, *, trigger: str, version: int, llms: dict[int, LLM], source: str = "arena"
) -> LeaderboardSnapshot:
    """An unsaved snapshot of ``fit``; ``version`` is the counts fingerprint it was fitted on."""
    board = fit.board
    return LeaderboardSnapshot(
        source=source,
        category=fit.category,
        style_control=fit.style_control,
        method="bradley-terry" + ("+style" if fit.style_control else ""),
        params={
            "method": to_plain(board.method),
            "fitted": to_plain(board.params),
            "status": to_plain(asdict(board.status)),
            "excluded": to_plain(fit.excluded),
        },
        trigger=trigger,
        computed_at=timezone.now(),
        votes_counted=board.n_votes,
        flagged_excluded=fit.flagged,
        counts_version=version,
        rows=_rows(board, fit.pks, llms),
        matrices=_matrices(board),
        warnings=list(board.warnings),
    )


def snapshots_write(
    snapshots: list[LeaderboardSnapshot], *, kind: str
) -> list[LeaderboardSnapshot]:
    """Store snapshots, prune old ones per view, push to open pages after commit."""
    with transaction.atomic():
        LeaderboardSnapshot.objects.bulk_create(snapshots)
        views = {(s.source, s.category, s.style_control) for s in snapshots}
        seen: dict[tuple[str, str, bool], int] = {}
        existing = (
            LeaderboardSnapshot.objects.filter(category__in={v[1] for v in views})
            .order_by("-computed_at", "-id")
            .values_list("id", "source", "category", "style_control")
        )
        old = []
        for pk, source, category, style in existing:  # one query for every view written
            view = (source, category, style)
            if view not in views:
                continue
            seen[view] = seen.get(view, 0) + 1
            if seen[view] > KEEP_SNAPSHOTS:
                old.append(pk)
        if old:
            LeaderboardSnapshot.objects.filter(id__in=old).delete()
        payload = [
            (s.source, s.category, s.style_control, s.computed_at.isoformat()) for s in snapshots
        ]
        transaction.on_commit(lambda: snapshots_push(payload=payload), robust=True)
    SNAPSHOTS_WRITTEN.labels(kind=kind).inc(len(snapshots))
    return snapshots


def snapshots_push(*, payload: list[tuple[str, str, bool, str]]) -> None:
    """Tell open leaderboard pages that new snapshots exist (one frame per snapshot).

    The frame is the page's own ``live`` partial as an out-of-band swap; the page script
    reloads its board when the frame matches the category and view it shows.
    """
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    send = async_to_sync(layer.group_send)
    for source, category, style, at in payload:
        html = render_to_string(
            "rating/leaderboard.html#live",
            {"live": {"source": source, "category": category, "style": style, "at": at}},
        )
        try:
            send(leaderboard_group(), {"type": "leaderboard.snapshot", "html": html})
        except Exception:  # a push is a courtesy; the snapshot is already stored
            log.exception("leaderboard push failed")


# --- live path ----------------------------------------------------------------------------------


def leaderboard_refresh(*, force: bool = False) -> list[LeaderboardSnapshot]:
    """Refit plain BT for the categories whose counts changed and store their snapshots.

    Change detection is per category: one GROUP BY over the counts table (the sum of each
    category's counts) against the ``counts_version`` of that category's newest plain
    snapshot. So the periodic job costs one aggregate query when nothing happened, and a new
    vote refits only the categories it counts in, reading only their cells. Intervals are the
    configured ``RATING_CI`` (sandwich by default: no resampling on the live path).
    Returns the snapshots written.
    """
    start = time.perf_counter()
    with run_lock("refresh", timeout=60) as got:
        if not got:
            RECOMPUTES.labels(kind="live", result="busy").inc()
            return []
        changed, emptied = _stale_categories(force=force)
        if not changed and not emptied:
            RECOMPUTES.labels(kind="live", result="unchanged").inc()
            return []
        try:
            snaps = _refresh(changed, emptied)
        except Exception:
            RECOMPUTES.labels(kind="live", result="error").inc()
            raise
    RECOMPUTES.labels(kind="live", result="written").inc()
    RECOMPUTE_SECONDS.labels(kind="live").observe(time.perf_counter() - start)
    return snaps


def _stale_categories(*, force: bool) -> tuple[list[str], list[str]]:
    """Categories to refit (their counts changed, or all with ``force``) and categories that
    need an empty board."""
    versions = selectors.counts_versions()
    last = selectors.snapshot_versions()
    if force:
        changed = sorted(versions)
    else:
        changed = sorted(c for c, v in versions.items() if last.get(c) != v)
    # Categories whose counts vanished (a rebuild applied flags): an empty board, once;
    # and an empty overall board before the first vote, so the page can say so.
    emptied = sorted(c for c, v in last.items() if c not in versions and v != 0)
    if "all" not in versions and "all" not in last:
        emptied.append("all")
    if force and "all" not in versions and "all" not in emptied:
        emptied.append("all")
    return changed, emptied


def _refresh(changed: list[str], emptied: list[str]) -> list[LeaderboardSnapshot]:
    by_cat = selectors.counts_by_category(changed)
    excluded = selectors.excluded_by_category()
    all_pks = {int(p) for cc in by_cat.values() for p in (*cc.a, *cc.b)}
    llms = llms_by_pk(sorted(all_pks))
    slugs = {pk: m.slug for pk, m in llms.items()}
    snaps = []
    with one_blas_thread():
        for cat, cc in by_cat.items():
            board, pks = fit_counts(cc, slugs)
            fit = Fit(cat, False, board, pks, excluded.get(cat) or selectors.excluded_summary(0))
            # The version is the sum of the cells this fit read (not of the earlier check), so
            # a vote counted in between triggers the next refresh instead of being skipped.
            snaps.append(snapshot_build(fit, trigger="live", version=cc.total, llms=llms))
    for cat in emptied:
        if cat not in by_cat:
            fit = Fit(
                cat, False, empty_board(), [], excluded.get(cat) or selectors.excluded_summary(0)
            )
            snaps.append(snapshot_build(fit, trigger="live", version=0, llms=llms))
    return snapshots_write(snapshots=snaps, kind="live")
