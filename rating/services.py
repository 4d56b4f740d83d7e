"""Leaderboard writes: snapshots from the counts (live) and the periodic full recompute.

``leaderboard_refresh`` is cheap: it reads only the counts table (O(categories x pairs)) and
fits plain Bradley-Terry; it runs every few seconds and does nothing unless the counts changed.
``leaderboard_recompute_full`` reads every vote once: it flags anomalous voters, rebuilds the
counts (applying late flags, reporting drift), fits plain and style-controlled boards for every
category, the annotation source when there is one, and the active-sampling weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from prometheus_client import Counter, Histogram

from arena.counts import counts_rebuild
from arena.models import LLM, PairSamplingWeight, Vote
from rating import selectors
from rating.engine import (
    SCALE,
    Leaderboard,
    RatingError,
    StyleFeatures,
    VoteCounts,
    active_sampling_weights,
    detect_anomalous_voters,
    leaderboard,
    pair_table,
)
from rating.models import LeaderboardSnapshot

log = logging.getLogger(__name__)

RECOMPUTES = Counter("pa_rating_recomputes_total", "Leaderboard recomputes", ["kind", "result"])
RECOMPUTE_SECONDS = Histogram(
    "pa_rating_recompute_seconds", "Leaderboard recompute run time", ["kind"]
)
SNAPSHOTS_WRITTEN = Counter("pa_rating_snapshots_total", "Leaderboard snapshots written", ["kind"])
COUNT_DRIFT = Counter("pa_rating_count_drift_total", "Vote-count drift corrected by rebuilds")

KEEP_SNAPSHOTS = 10  # per (source, category, style control): a short history, bounded table
MEAN_SCORE = 1000.0
LEADERBOARD_GROUP = "leaderboard"


def leaderboard_group() -> str:
    """The one channel group every open leaderboard page joins."""
    return LEADERBOARD_GROUP


def _ci() -> str:
    return getattr(settings, "RATING_CI", "sandwich")


@contextmanager
def _lock(name: str, timeout: int) -> Iterator[bool]:
    """A cache lock so overlapping periodic runs (slow worker, two beats) skip, not pile up."""
    key = f"rating:lock:{name}"
    got = cache.add(key, "1", timeout=timeout)
    try:
        yield bool(got)
    finally:
        if got:
            cache.delete(key)


@dataclass
class _Fit:
    category: str
    style_control: bool
    board: Leaderboard
    pks: list[int]
    flagged: int


def _index(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pks, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    return pks, inv[: a.size], inv[a.size :]


def _fit_counts(cc: selectors.CategoryCounts, slugs: dict[int, str]) -> tuple[Leaderboard, list]:
    pks, ia, ib = _index(cc.a, cc.b)
    counts = VoteCounts.from_counts(len(pks), ia, ib, cc.outcome, cc.votes)
    names = [slugs.get(int(p), str(p)) for p in pks]
    board = leaderboard(names, counts=counts, ci=_ci(), mean_score=MEAN_SCORE, seed=0)
    return board, [int(p) for p in pks]


def _fit_votes(
    arrays: selectors.VoteArrays, mask: np.ndarray, slugs: dict[int, str], *, style: bool
) -> tuple[Leaderboard, list]:
    pks, ia, ib = _index(arrays.model_a[mask], arrays.model_b[mask])
    names = [slugs.get(int(p), str(p)) for p in pks]
    features = StyleFeatures(arrays.features_a[mask], arrays.features_b[mask]) if style else None
    board = leaderboard(
        names, ia, ib, arrays.outcome[mask], style=features, ci="sandwich" if style else _ci(),
        mean_score=MEAN_SCORE, seed=0,
    )  # fmt: skip
    return board, [int(p) for p in pks]


def _empty_board() -> Leaderboard:
    return leaderboard([], counts=VoteCounts.from_counts(0, [], [], [], []), mean_score=MEAN_SCORE)


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
    """Matrices reordered to the rows' order (best first), NaN as None."""
    data = board.to_dict()
    order = [r.index for r in board.models]

    def reorder(matrix: Any) -> list[list[Any]]:
        return [[matrix[i][j] if i != j else None for j in order] for i in order]

    return {
        "models": [board.model_names[i] for i in order],
        "predicted_win_rate": reorder(data["predicted_win_rate"]),
        "observed_win_rate": reorder(data["observed_win_rate"]),
        "battle_counts": reorder(data["battle_counts"]),
    }


def _snapshot(
    fit: _Fit, *, trigger: str, version: int, llms: dict[int, LLM], source: str = "arena"
) -> LeaderboardSnapshot:
    board = fit.board
    return LeaderboardSnapshot(
        source=source,
        category=fit.category,
        style_control=fit.style_control,
        method="bradley-terry" + ("+style" if fit.style_control else ""),
        params={"method": board.to_dict()["method"], "fitted": board.to_dict()["params"]},
        trigger=trigger,
        computed_at=timezone.now(),
        votes_counted=board.n_votes,
        flagged_excluded=fit.flagged,
        counts_version=version,
        rows=_rows(board, fit.pks, llms),
        matrices=_matrices(board),
        warnings=list(board.warnings),
    )


def _write(snapshots: list[LeaderboardSnapshot], *, kind: str) -> list[LeaderboardSnapshot]:
    """Store snapshots, prune old ones per view, push to open pages after commit."""
    with transaction.atomic():
        LeaderboardSnapshot.objects.bulk_create(snapshots)
        for snap in snapshots:
            old = list(
                LeaderboardSnapshot.objects.filter(
                    source=snap.source, category=snap.category, style_control=snap.style_control
                )
                .order_by("-computed_at", "-id")
                .values_list("id", flat=True)[KEEP_SNAPSHOTS:]
            )
            if old:
                LeaderboardSnapshot.objects.filter(id__in=old).delete()
        payload = [
            (s.source, s.category, s.style_control, s.computed_at.isoformat()) for s in snapshots
        ]
        transaction.on_commit(lambda: snapshots_push(payload), robust=True)
    SNAPSHOTS_WRITTEN.labels(kind=kind).inc(len(snapshots))
    return snapshots


def snapshots_push(payload: list[tuple[str, str, bool, str]]) -> None:
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
    """Fit plain BT per category from the counts and store snapshots, if the counts changed.

    Cheap check first (the sum of counts against the newest snapshot's), so the periodic job
    costs one aggregate query when nothing happened. Returns the snapshots written.
    """
    start = time.perf_counter()
    with _lock("refresh", timeout=60) as got:
        if not got:
            RECOMPUTES.labels(kind="live", result="busy").inc()
            return []
        version = selectors.counts_version()
        if not force and selectors.snapshot_last_version() == version:
            RECOMPUTES.labels(kind="live", result="unchanged").inc()
            return []
        try:
            snaps = _refresh(version)
        except Exception:
            RECOMPUTES.labels(kind="live", result="error").inc()
            raise
    RECOMPUTES.labels(kind="live", result="written").inc()
    RECOMPUTE_SECONDS.labels(kind="live").observe(time.perf_counter() - start)
    return snaps


def _refresh(version: int) -> list[LeaderboardSnapshot]:
    by_cat = selectors.counts_by_category()
    flagged = selectors.flagged_by_category()
    all_pks = {int(p) for cc in by_cat.values() for p in (*cc.a, *cc.b)}
    llms = selectors.models_by_id(sorted(all_pks))
    slugs = {pk: m.slug for pk, m in llms.items()}
    fits = []
    for cat, cc in by_cat.items():
        board, pks = _fit_counts(cc, slugs)
        fits.append(_Fit(cat, False, board, pks, flagged.get(cat, 0)))
    if "all" not in by_cat:  # no votes yet: an empty board, so the page can say so
        fits.append(_Fit("all", False, _empty_board(), [], flagged.get("all", 0)))
    snaps = [_snapshot(f, trigger="live", version=version, llms=llms) for f in fits]
    return _write(snaps, kind="live")


# --- full recompute -----------------------------------------------------------------------------


def votes_flag_anomalous(arrays: selectors.VoteArrays) -> int:
    """Run the sequential voter test over every anonymous vote; flag the flagged voters' votes.

    Returns how many votes got the ``anomalous_voter`` flag now. Flags are never removed here:
    an operator clears them in the admin.
    """
    if arrays.vote_id.size == 0:
        return 0
    report = detect_anomalous_voters(
        arrays.voter.astype(str),  # fixed-width strings: the engine reads ids with .item()
        arrays.model_a,
        arrays.model_b,
        arrays.outcome,
        alpha=float(getattr(settings, "RATING_ANOMALY_ALPHA", 0.01)),
        seed=0,
    )
    if not report.flagged:
        return 0
    bad = {str(v) for v in report.flagged}
    flag = Vote.Flag.ANOMALOUS_VOTER.value
    idx = [
        i
        for i in range(arrays.vote_id.size)
        if arrays.voter[i] in bad and flag not in arrays.flags[i]
    ]
    if not idx:
        return 0
    ids = [int(arrays.vote_id[i]) for i in idx]
    with transaction.atomic():
        votes = list(Vote.objects.select_for_update().filter(pk__in=ids).only("id", "flags"))
        for vote in votes:
            if flag not in (vote.flags or []):
                vote.flags = [*(vote.flags or []), flag]
        Vote.objects.bulk_update(votes, ["flags"], batch_size=1000)
    for i in idx:
        arrays.flags[i] = [*arrays.flags[i], flag]
        arrays.flagged[i] = True
    return len(ids)


def leaderboard_recompute_full(*, detect_anomalies: bool = True) -> dict[str, Any]:
    """The periodic full recompute (see the module docstring). Returns a report."""
    start = time.perf_counter()
    with _lock("full", timeout=900) as got:
        if not got:
            RECOMPUTES.labels(kind="full", result="busy").inc()
            return {"skipped": "another full recompute is running"}
        try:
            report = _recompute_full(detect_anomalies=detect_anomalies)
        except Exception:
            RECOMPUTES.labels(kind="full", result="error").inc()
            raise
    RECOMPUTES.labels(kind="full", result="written").inc()
    report["seconds"] = round(time.perf_counter() - start, 3)
    RECOMPUTE_SECONDS.labels(kind="full").observe(report["seconds"])
    log.info("leaderboard full recompute", extra=report)
    return report


def _recompute_full(*, detect_anomalies: bool) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    arrays = selectors.arena_vote_arrays()
    timings["read_votes"] = time.perf_counter() - t
    t = time.perf_counter()
    newly_flagged = votes_flag_anomalous(arrays) if detect_anomalies else 0
    timings["anomaly"] = time.perf_counter() - t
    t = time.perf_counter()
    drift = counts_rebuild()
    COUNT_DRIFT.inc(drift["votes_drift"])
    version = selectors.counts_version()
    by_cat = selectors.counts_by_category()
    timings["rebuild_counts"] = time.perf_counter() - t

    t = time.perf_counter()
    pks_seen = set(np.unique(np.concatenate([arrays.model_a, arrays.model_b])).tolist())
    arena_pks = set(LLM.objects.for_arena().values_list("pk", flat=True))
    llms = selectors.models_by_id(sorted(pks_seen | arena_pks))
    slugs = {pk: m.slug for pk, m in llms.items()}
    fits: list[_Fit] = []
    warnings: list[str] = []
    for cat, mask in arrays.categories.items():
        flagged = int((mask & arrays.flagged).sum())
        counted = mask & ~arrays.flagged
        if cat in by_cat:
            board, pks = _fit_counts(by_cat[cat], slugs)
            fits.append(_Fit(cat, False, board, pks, flagged))
        if counted.sum() == 0:
            continue
        try:
            board, pks = _fit_votes(arrays, counted, slugs, style=True)
        except (RatingError, np.linalg.LinAlgError) as exc:
            warnings.append(f"style control for {cat}: {exc}")
            continue
        fits.append(_Fit(cat, True, board, pks, flagged))
    if not by_cat:
        fits.append(_Fit("all", False, _empty_board(), [], int(arrays.flagged.sum())))
    timings["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    snaps = [_snapshot(f, trigger="full", version=version, llms=llms) for f in fits]
    annotation = _annotation_snapshots(version)
    _write(snaps + annotation, kind="full")
    plain_all = next((f for f in fits if f.category == "all" and not f.style_control), None)
    n_weights = sampling_weights_write(by_cat.get("all"), plain_all, sorted(arena_pks))
    timings["write"] = time.perf_counter() - t
    return {
        "votes": int(arrays.vote_id.size),
        "newly_flagged": newly_flagged,
        "drift": drift,
        "snapshots": len(snaps) + len(annotation),
        "categories": sorted({f.category for f in fits}, key=selectors.category_sort_key),
        "pair_weights": n_weights,
        "warnings": warnings,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def _annotation_snapshots(version: int) -> list[LeaderboardSnapshot]:
    """The annotation source view: skipped (empty) until the annotations app provides pairs."""
    pairs = selectors.annotation_pairs()
    if pairs is None:
        return []
    a, b, o, w = (np.asarray(x) for x in pairs)
    pks, ia, ib = _index(a.astype(np.int64), b.astype(np.int64))
    llms = selectors.models_by_id([int(p) for p in pks])
    names = [llms[int(p)].slug if int(p) in llms else str(p) for p in pks]
    board = leaderboard(names, ia, ib, o, weights=w, ci=_ci(), mean_score=MEAN_SCORE, seed=0)
    fit = _Fit("all", False, board, [int(p) for p in pks], 0)
    return [_snapshot(fit, trigger="full", version=version, llms=llms, source="annotation")]


def sampling_weights_write(
    cc: selectors.CategoryCounts | None, fit: _Fit | None, arena_pks: list[int]
) -> int:
    """Replace ``arena.PairSamplingWeight`` with the active-sampling rule's weights.

    Covers every pair of models the arena may sample (and those with votes); models without
    votes get a wide prior variance, hence high weight, so new models are explored first.
    """
    pks = sorted(set(arena_pks) | (set((*cc.a.tolist(), *cc.b.tolist())) if cc else set()))
    if len(pks) < 2:
        return 0
    index = {pk: k for k, pk in enumerate(pks)}
    if cc is not None:
        counts = VoteCounts.from_counts(
            len(pks), [index[int(x)] for x in cc.a], [index[int(x)] for x in cc.b],
            cc.outcome, cc.votes,
        )  # fmt: skip
    else:
        counts = VoteCounts.from_counts(len(pks), [], [], [], [])
    theta = np.zeros(len(pks))
    if fit is not None:
        for row in fit.board.models:
            if row.score is not None:
                theta[index[fit.pks[row.index]]] = (row.score - MEAN_SCORE) / SCALE
    weights = active_sampling_weights(pair_table(counts), theta)
    now = timezone.now()
    objs = [
        PairSamplingWeight(model_a_id=pks[i], model_b_id=pks[j], weight=float(w), updated=now)
        for i, j, w in zip(weights.i.tolist(), weights.j.tolist(), weights.weight, strict=True)
    ]
    with transaction.atomic():
        PairSamplingWeight.objects.all().delete()
        PairSamplingWeight.objects.bulk_create(objs, batch_size=1000)
    return len(objs)
