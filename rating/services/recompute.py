"""The periodic full recompute, and the count rebuild from votes already read.

``leaderboard_recompute_full`` reads every vote once (one row per vote: the votes carry their
conversation's style features), flags anomalous and position-locked voters, rebuilds the counts from those arrays
(applying late flags, reporting drift, writing only differences under a short lock), fits plain
and style-controlled boards for every category, the annotation source when there is one, and
the active-sampling weights (from the battles each pair was shown in). At 1M votes it takes seconds, most of it the read and the style
fits; see bench/rating_db.py.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from arena.counts import CountCells, counts_rebuild_cells
from arena.selectors import llm_pks_for_arena, llms_by_pk, vote_ids_since
from rating import selectors
from rating.engine import RatingError, leaderboard
from rating.engine.threads import one_blas_thread
from rating.models import LeaderboardSnapshot
from rating.services.anomalies import votes_flag_anomalous, votes_flag_position_locked
from rating.services.runs import COUNT_DRIFT, RECOMPUTE_SECONDS, RECOMPUTES, run_lock
from rating.services.sampling import sampling_weights_write
from rating.services.snapshots import (
    MEAN_SCORE,
    Fit,
    empty_board,
    fit_counts,
    fit_votes,
    interval_method,
    model_index,
    snapshot_build,
    snapshots_write,
)

log = logging.getLogger(__name__)


def leaderboard_recompute_full(*, detect_anomalies: bool = True) -> dict[str, Any]:
    """The periodic full recompute (see the module docstring). Returns a report."""
    start = time.perf_counter()
    with run_lock("full", timeout=900) as got:
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


# --- count rebuild ------------------------------------------------------------------------------


def _count_cells(arrays: selectors.VoteArrays, sign: int = 1) -> CountCells:
    """Counts per (category, model pair, outcome) of the counted votes in ``arrays``.

    Counted = anonymous and unflagged; a vote counts in "all" and in each of its categories.
    Vectorised: per category one ``bincount`` over a dense (pair, outcome) key.
    """
    counted = arrays.anonymous & ~arrays.flagged
    pks, ia, ib = model_index(arrays.model_a, arrays.model_b)
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


def counts_rebuild_from(
    arrays: selectors.VoteArrays,
) -> tuple[dict[str, Any], dict[str, selectors.CategoryCounts]]:
    """Rebuild the counts table from votes already read (``arrays``), writing only changes.

    Votes committed after ``arrays`` was read are caught up under the counts lock (see
    ``arena.counts.counts_rebuild_cells`` for why this counts each of them exactly once): the vote
    ids are re-read there (``arena.selectors.vote_ids_since``), new ids are read and added, ids
    that disappeared (deleted votes) are subtracted. Returns the drift report (with
    ``caught_up``: new and gone votes) and the rebuilt counts per category.
    """
    caught: dict[str, int] = {"new": 0, "gone": 0}

    def catch_up() -> CountCells | None:
        new, gone = vote_ids_since(arrays.vote_id)
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


# --- the full recompute, step by step -----------------------------------------------------------


def _style_fits(
    rated: selectors.VoteArrays, slugs: dict[int, str], excluded: dict[str, dict[str, Any]]
) -> tuple[list[Fit], list[str], float]:
    """Style-controlled boards of every category: the fits, problems met, seconds taken.

    Needs only the vote arrays (flags applied), no database: it runs in a worker thread.
    """
    start = time.perf_counter()
    out, problems = [], []
    with one_blas_thread():
        for cat, mask in rated.categories.items():
            counted = mask & ~rated.flagged
            if not counted.any():
                continue
            try:
                board, pks = fit_votes(rated, counted, slugs, style=True)
            except (RatingError, np.linalg.LinAlgError) as exc:
                problems.append(f"style control for {cat}: {exc}")
                continue
            out.append(Fit(cat, True, board, pks, _excluded(excluded, cat)))
    return out, problems, time.perf_counter() - start


def _plain_fits(
    by_cat: dict[str, selectors.CategoryCounts],
    slugs: dict[int, str],
    excluded: dict[str, dict[str, Any]],
) -> list[Fit]:
    """Plain boards from the rebuilt counts; an empty overall board when nothing counts."""
    fits: list[Fit] = []
    for cat, cc in by_cat.items():
        board, pks = fit_counts(cc, slugs)
        fits.append(Fit(cat, False, board, pks, _excluded(excluded, cat)))
    if not by_cat:
        fits.append(Fit("all", False, empty_board(), [], _excluded(excluded, "all")))
    return fits


def _excluded(excluded: dict[str, dict[str, Any]], category: str) -> dict[str, Any]:
    return excluded.get(category) or selectors.excluded_summary(0)


def _flag_voters(arrays: selectors.VoteArrays) -> dict[str, int]:
    """Both voter tests (their flags written through arena); votes newly flagged, per test and
    in total (a vote can gain both flags)."""
    before = arrays.flagged.copy()
    report = {
        "anomalous_voter": votes_flag_anomalous(arrays=arrays),
        "position_locked": votes_flag_position_locked(arrays=arrays),
    }
    report["total"] = int((arrays.flagged & ~before).sum())
    return report


def _recompute_full(*, detect_anomalies: bool) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    arrays = selectors.arena_vote_arrays()
    timings["read_votes"] = time.perf_counter() - t
    t = time.perf_counter()
    newly = _flag_voters(arrays) if detect_anomalies else {"total": 0}
    timings["anomaly"] = time.perf_counter() - t

    rated = arrays if bool(arrays.anonymous.all()) else arrays.select(arrays.anonymous)
    pks_seen = set(np.unique(np.concatenate([rated.model_a, rated.model_b])).tolist())
    arena_pks = set(llm_pks_for_arena())
    llms = llms_by_pk(sorted(pks_seen | arena_pks))
    slugs = {pk: m.slug for pk, m in llms.items()}
    excluded = {  # after this run's flags
        cat: selectors.excluded_summary(*rated.excluded(mask))
        for cat, mask in rated.categories.items()
    }

    # The style fits run in a worker thread (numpy, no database) while this thread rebuilds
    # the counts, which mostly waits on PostgreSQL. "fit" below is the fitting time left after
    # the rebuild.
    with ThreadPoolExecutor(max_workers=1) as pool:
        styled = pool.submit(_style_fits, rated, slugs, excluded)
        t = time.perf_counter()
        # The plain fits use the rebuilt cells as committed (no second read of the table).
        drift, by_cat = counts_rebuild_from(arrays)
        COUNT_DRIFT.inc(drift["votes_drift"])
        timings["rebuild_counts"] = time.perf_counter() - t
        t = time.perf_counter()
        fits = _plain_fits(by_cat, slugs, excluded)
        style_boards, warnings, style_seconds = styled.result()
        fits += style_boards
    timings["fit"] = time.perf_counter() - t
    timings["style_fits_overlapped"] = style_seconds

    t = time.perf_counter()
    snaps = [
        snapshot_build(
            f, trigger="full", version=by_cat[f.category].total if f.category in by_cat else 0,
            llms=llms,
        )
        for f in fits
    ]  # fmt: skip
    version_all = by_cat["all"].total if "all" in by_cat else 0
    annotation = _annotation_snapshots(version_all)
    snapshots_write(snapshots=snaps + annotation, kind="full")
    plain_all = next((f for f in fits if f.category == "all" and not f.style_control), None)
    n_weights = sampling_weights_write(
        shown=selectors.battles_shown(), fit=plain_all, arena_pks=sorted(arena_pks)
    )
    timings["write"] = time.perf_counter() - t
    return {
        "votes": int(rated.size),
        "newly_flagged": newly["total"],
        "newly_flagged_by_reason": {k: v for k, v in newly.items() if k != "total"},
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
    pks, ia, ib = model_index(a.astype(np.int64), b.astype(np.int64))
    llms = llms_by_pk([int(p) for p in pks])
    names = [llms[int(p)].slug if int(p) in llms else str(p) for p in pks]
    board = leaderboard(
        names, ia, ib, o, weights=w, ci=interval_method(), mean_score=MEAN_SCORE, seed=0
    )
    fit = Fit("all", False, board, [int(p) for p in pks], selectors.excluded_summary(0))
    return [snapshot_build(fit, trigger="full", version=version, llms=llms, source="annotation")]
