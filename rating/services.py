"""Leaderboard writes: snapshots from the counts (live) and the periodic full recompute.

``leaderboard_refresh`` is cheap: one GROUP BY over the counts table finds the categories whose
counts changed; only their cells are read and refitted (plain Bradley-Terry). It runs every few
seconds and does nothing unless a vote was counted.
``leaderboard_recompute_full`` reads every vote once (one row per vote: the votes carry their
conversation's style features), flags anomalous voters, rebuilds the counts from those arrays
(applying late flags, reporting drift, writing only differences under a short lock), fits plain
and style-controlled boards for every category, the annotation source when there is one, and
the active-sampling weights. At 1M votes it takes seconds, most of it the read and the style
fits; see bench/rating_db.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from prometheus_client import Counter, Histogram

from arena.counts import CountCells, counts_rebuild_cells
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
from rating.engine.leaderboard import to_plain
from rating.engine.threads import one_blas_thread
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


def _fit_counts(cc: selectors.CategoryCounts, slugs: dict[int, str]) -> tuple[Leaderboard, list]:
    pks, ia, ib = _index(cc.a, cc.b)
    counts = VoteCounts.from_counts(len(pks), ia, ib, cc.outcome, cc.votes)
    names = [slugs.get(int(p), str(p)) for p in pks]
    board = leaderboard(names, counts=counts, ci=_ci(), mean_score=MEAN_SCORE, seed=0)
    return board, [int(p) for p in pks]


def _fit_votes(
    arrays: selectors.VoteArrays, mask: np.ndarray, slugs: dict[int, str], *, style: bool
) -> tuple[Leaderboard, list]:
    every = bool(mask.all())

    def pick(x: np.ndarray) -> np.ndarray:
        return x if every else x[mask]

    pks, ia, ib = _index(pick(arrays.model_a), pick(arrays.model_b))
    names = [slugs.get(int(p), str(p)) for p in pks]
    features = StyleFeatures(pick(arrays.features_a), pick(arrays.features_b)) if style else None
    board = leaderboard(
        names, ia, ib, pick(arrays.outcome), style=features, ci="sandwich" if style else _ci(),
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


def _snapshot(
    fit: _Fit, *, trigger: str, version: int, llms: dict[int, LLM], source: str = "arena"
) -> LeaderboardSnapshot:
    board = fit.board
    data = {"method": to_plain(board.method), "params": to_plain(board.params)}
    return LeaderboardSnapshot(
        source=source,
        category=fit.category,
        style_control=fit.style_control,
        method="bradley-terry" + ("+style" if fit.style_control else ""),
        params={"method": data["method"], "fitted": data["params"]},
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
    """Refit plain BT for the categories whose counts changed and store their snapshots.

    Change detection is per category: one GROUP BY over the counts table (the sum of each
    category's counts) against the ``counts_version`` of that category's newest plain
    snapshot. So the periodic job costs one aggregate query when nothing happened, and a new
    vote refits only the categories it counts in, reading only their cells. Intervals are the
    configured ``RATING_CI`` (sandwich by default: no resampling on the live path).
    Returns the snapshots written.
    """
    start = time.perf_counter()
    with _lock("refresh", timeout=60) as got:
        if not got:
            RECOMPUTES.labels(kind="live", result="busy").inc()
            return []
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


def _refresh(changed: list[str], emptied: list[str]) -> list[LeaderboardSnapshot]:
    by_cat = selectors.counts_by_category(changed)
    flagged = selectors.flagged_by_category()
    all_pks = {int(p) for cc in by_cat.values() for p in (*cc.a, *cc.b)}
    llms = selectors.models_by_id(sorted(all_pks))
    slugs = {pk: m.slug for pk, m in llms.items()}
    snaps = []
    with one_blas_thread():
        for cat, cc in by_cat.items():
            board, pks = _fit_counts(cc, slugs)
            fit = _Fit(cat, False, board, pks, flagged.get(cat, 0))
            # The version is the sum of the cells this fit read (not of the earlier check), so
            # a vote counted in between triggers the next refresh instead of being skipped.
            snaps.append(_snapshot(fit, trigger="live", version=cc.total, llms=llms))
    for cat in emptied:
        if cat not in by_cat:
            fit = _Fit(cat, False, _empty_board(), [], flagged.get(cat, 0))
            snaps.append(_snapshot(fit, trigger="live", version=0, llms=llms))
    return _write(snaps, kind="live")


# --- full recompute -----------------------------------------------------------------------------


def votes_flag_anomalous(arrays: selectors.VoteArrays) -> int:
    """Run the sequential voter test over every anonymous vote; flag the flagged voters' votes.

    Returns how many votes got the ``anomalous_voter`` flag now (``arrays`` is updated to
    match). Flags are never removed here: an operator clears them in the admin.
    """
    rated = arrays.anonymous
    if not rated.any():
        return 0
    every = bool(rated.all())
    report = detect_anomalous_voters(
        arrays.voter if every else arrays.voter[rated],
        arrays.model_a if every else arrays.model_a[rated],
        arrays.model_b if every else arrays.model_b[rated],
        arrays.outcome if every else arrays.outcome[rated],
        alpha=float(getattr(settings, "RATING_ANOMALY_ALPHA", 0.01)),
        seed=0,
    )
    if not report.flagged:
        return 0
    bad = np.array(report.flagged, dtype=np.int64)
    target = rated & np.isin(arrays.voter, bad) & ~arrays.anomalous
    ids = arrays.vote_id[target]
    if not ids.size:
        return 0
    _flag_votes(ids.tolist(), Vote.Flag.ANOMALOUS_VOTER.value)
    arrays.anomalous[target] = True
    arrays.flagged[target] = True
    return int(ids.size)


def _flag_votes(ids: list[int], flag: str) -> None:
    table = Vote._meta.db_table
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET flags = COALESCE(flags, '[]'::jsonb) || %s::jsonb"
                    " WHERE id = ANY(%s) AND NOT COALESCE(flags, '[]'::jsonb) @> %s::jsonb",
                    [json.dumps([flag]), ids, json.dumps([flag])],
                )
            return
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            votes = list(Vote.objects.select_for_update().filter(pk__in=chunk).only("id", "flags"))
            for vote in votes:
                if flag not in (vote.flags or []):
                    vote.flags = [*(vote.flags or []), flag]
            Vote.objects.bulk_update(votes, ["flags"], batch_size=1000)


def leaderboard_recompute_full(*, detect_anomalies: bool = True) -> dict[str, Any]:
    """The periodic full recompute (see the module docstring). Returns a report."""
    start = time.perf_counter()
    with _lock("full", timeout=900) as got:
        if not got:
            RECOMPUTES.labels(kind="full", result="busy").inc()
            return {"skipped": "another full recompute is running"}
        try:
            with one_blas_thread():
                report = _recompute_full(detect_anomalies=detect_anomalies)
        except Exception:
            RECOMPUTES.labels(kind="full", result="error").inc()
            raise
    RECOMPUTES.labels(kind="full", result="written").inc()
    report["seconds"] = round(time.perf_counter() - start, 3)
    RECOMPUTE_SECONDS.labels(kind="full").observe(report["seconds"])
    log.info("leaderboard full recompute", extra=report)
    return report


def _count_cells(arrays: selectors.VoteArrays, sign: int = 1) -> CountCells:
    """Counts per (category, model pair, outcome) of the counted votes in ``arrays``.

    Counted = anonymous and unflagged; a vote counts in "all" and in each of its categories.
    Vectorised: per category one ``bincount`` over a dense (pair, outcome) key.
    """
    counted = arrays.anonymous & ~arrays.flagged
    pks, ia, ib = _index(arrays.model_a, arrays.model_b)
    m = max(len(pks), 1)
    key = (ia * m + ib) * 4 + arrays.outcome.astype(np.int64)
    parts: list[tuple[str, np.ndarray, np.ndarray]] = []
    for cat, mask in arrays.categories.items():
        sel = key[mask & counted]
        if not sel.size:
            continue
        if m * m * 4 <= 20_000_000:
            n = np.bincount(sel, minlength=m * m * 4)
            cells = np.flatnonzero(n)
            n = n[cells]
        else:
            cells, n = np.unique(sel, return_counts=True)
        parts.append((cat, cells, n))
    if not parts:
        return CountCells([], [], [], [], [])
    cells = np.concatenate([p[1] for p in parts])
    outcome = np.array(selectors.OUTCOMES, dtype=object)[cells % 4]
    pair = cells // 4
    return CountCells(
        category=np.concatenate([np.full(p[1].size, p[0], dtype=object) for p in parts]),
        model_a=pks[pair // m],
        model_b=pks[pair % m],
        outcome=outcome,
        count=np.concatenate([p[2] for p in parts]) * sign,
    )


def _concat_cells(parts: list[CountCells]) -> CountCells | None:
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    return CountCells(
        *(np.concatenate([np.asarray(getattr(p, f), dtype=object) for p in parts])
          for f in ("category", "model_a", "model_b", "outcome", "count"))
    )  # fmt: skip


def _ids_since(read: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vote ids committed since ``read`` (sorted ids) was read, and a mask of read ids gone.

    Cheap in the usual case: new votes have ids above the last one read, or fill a gap below
    it (a transaction still open at read time; gaps are few: rollbacks, deletions); one count
    over the read id range tells whether any read vote was deleted. Only then, or when the gaps
    are many, are all ids read.
    """
    if not read.size:
        now = selectors.vote_ids()
        return now, np.zeros(0, dtype=bool)
    lo, hi = int(read[0]), int(read[-1])
    n_gaps = hi - lo + 1 - read.size
    if n_gaps <= 50_000:
        gaps = np.setdiff1d(np.arange(lo, hi + 1), read, assume_unique=True)
        table = Vote._meta.db_table
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"SELECT id FROM {table} WHERE id > %s OR id < %s OR id = ANY(%s)",
                    [hi, lo, gaps.tolist()],
                )
            else:
                cursor.execute(
                    f"SELECT id FROM {table} WHERE id > %s OR id < %s"
                    + (f" OR id IN ({', '.join(map(str, gaps.tolist()))})" if gaps.size else ""),
                    [hi, lo],
                )
            new = np.sort(np.array([r[0] for r in cursor.fetchall()], dtype=np.int64))
            cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE id BETWEEN %s AND %s", [lo, hi])
            in_range = int(cursor.fetchone()[0])
        if in_range == read.size + int(((new >= lo) & (new <= hi)).sum()):
            return new, np.zeros(read.size, dtype=bool)
    now = selectors.vote_ids()
    return (
        np.setdiff1d(now, read, assume_unique=True),
        ~np.isin(read, now, assume_unique=True),
    )


def counts_rebuild_from(
    arrays: selectors.VoteArrays,
) -> tuple[dict[str, Any], dict[str, selectors.CategoryCounts]]:
    """Rebuild the counts table from votes already read (``arrays``), writing only changes.

    Votes committed after ``arrays`` was read are caught up under the counts lock (see
    ``arena.counts.counts_rebuild_cells`` for why this counts each of them exactly once): the vote
    ids are re-read there (one index scan), new ids are read and added, ids that disappeared
    (deleted votes) are subtracted.
    """
    caught: dict[str, int] = {"new": 0, "gone": 0}

    def catch_up() -> CountCells | None:
        new, gone = _ids_since(arrays.vote_id)
        caught.update(new=int(new.size), gone=int(gone.sum()))
        parts = []
        if new.size:
            parts.append(_count_cells(selectors.arena_vote_arrays(ids=new.tolist())))
        if gone.any():
            parts.append(_count_cells(arrays.select(gone), sign=-1))
        return _concat_cells(parts)

    report, truth = counts_rebuild_cells(_count_cells(arrays), catch_up=catch_up)
    out: dict[str, Any] = dict(report)
    out["caught_up"] = caught
    return out, selectors.category_counts(truth)


def _recompute_full(*, detect_anomalies: bool) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    arrays = selectors.arena_vote_arrays()
    timings["read_votes"] = time.perf_counter() - t
    t = time.perf_counter()
    newly_flagged = votes_flag_anomalous(arrays) if detect_anomalies else 0
    timings["anomaly"] = time.perf_counter() - t

    rated = arrays if bool(arrays.anonymous.all()) else arrays.select(arrays.anonymous)
    pks_seen = set(np.unique(np.concatenate([rated.model_a, rated.model_b])).tolist())
    arena_pks = set(LLM.objects.for_arena().values_list("pk", flat=True))
    llms = selectors.models_by_id(sorted(pks_seen | arena_pks))
    slugs = {pk: m.slug for pk, m in llms.items()}
    flagged = {cat: int((mask & rated.flagged).sum()) for cat, mask in rated.categories.items()}

    # The style fits need only the vote arrays (flags applied), not the counts: they run in a
    # worker thread (numpy, no database) while this thread rebuilds the counts, which mostly
    # waits on PostgreSQL. "fit" below is the fitting time left after the rebuild.
    def style_fits() -> tuple[list[_Fit], list[str], float]:
        start = time.perf_counter()
        out, problems = [], []
        with one_blas_thread():
            for cat, mask in rated.categories.items():
                counted = mask & ~rated.flagged
                if not counted.any():
                    continue
                try:
                    board, pks = _fit_votes(rated, counted, slugs, style=True)
                except (RatingError, np.linalg.LinAlgError) as exc:
                    problems.append(f"style control for {cat}: {exc}")
                    continue
                out.append(_Fit(cat, True, board, pks, flagged[cat]))
        return out, problems, time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=1) as pool:
        styled = pool.submit(style_fits)
        t = time.perf_counter()
        # The plain fits use the rebuilt cells as committed (no second read of the table).
        drift, by_cat = counts_rebuild_from(arrays)
        COUNT_DRIFT.inc(drift["votes_drift"])
        timings["rebuild_counts"] = time.perf_counter() - t
        t = time.perf_counter()
        fits: list[_Fit] = []
        for cat, cc in by_cat.items():
            board, pks = _fit_counts(cc, slugs)
            fits.append(_Fit(cat, False, board, pks, flagged.get(cat, 0)))
        if not by_cat:
            fits.append(_Fit("all", False, _empty_board(), [], int(rated.flagged.sum())))
        style_boards, warnings, style_seconds = styled.result()
        fits += style_boards
    timings["fit"] = time.perf_counter() - t
    timings["style_fits_overlapped"] = style_seconds

    t = time.perf_counter()
    snaps = [
        _snapshot(
            f, trigger="full", version=by_cat[f.category].total if f.category in by_cat else 0,
            llms=llms,
        )
        for f in fits
    ]  # fmt: skip
    version_all = by_cat["all"].total if "all" in by_cat else 0
    annotation = _annotation_snapshots(version_all)
    _write(snaps + annotation, kind="full")
    plain_all = next((f for f in fits if f.category == "all" and not f.style_control), None)
    n_weights = sampling_weights_write(by_cat.get("all"), plain_all, sorted(arena_pks))
    timings["write"] = time.perf_counter() - t
    return {
        "votes": int(rated.size),
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
    rows = [
        (pks[i], pks[j], w, now)
        for i, j, w in zip(
            weights.i.tolist(), weights.j.tolist(), weights.weight.tolist(), strict=True
        )
    ]
    table = PairSamplingWeight._meta.db_table
    with transaction.atomic():
        PairSamplingWeight.objects.all().delete()
        if connection.vendor == "postgresql":  # one COPY instead of ~5,000 model instances
            connection.ensure_connection()
            with (
                connection.connection.cursor() as cursor,
                cursor.copy(f"COPY {table} (model_a_id, model_b_id, weight, updated) FROM STDIN")
                as copy,
            ):  # fmt: skip
                for row in rows:
                    copy.write_row(row)
        else:
            PairSamplingWeight.objects.bulk_create(
                [PairSamplingWeight(model_a_id=a, model_b_id=b, weight=w, updated=t)
                 for a, b, w, t in rows],
                batch_size=1000,
            )  # fmt: skip
    return len(rows)
