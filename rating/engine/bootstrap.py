"""Bootstrap of BT fits by resampling the aggregated counts.

Resampling N votes with replacement is the same as drawing the cell counts from
Multinomial(N, counts / N); cells are the (pair, class) entries of a `PairTable`, so a round
costs O(pairs), not O(votes). All rounds of a chunk are refitted together by a chord Newton
iteration: theta <- theta + H0^-1 grad_b(theta), with H0 the point fit's Hessian. Bootstrap
Hessians differ from H0 by O(1/sqrt(votes per pair)), so this converges linearly and fast; a
round that does not converge in `max_iter` steps is refitted by full Newton.

Sampling the multinomial exactly costs ~100 ns per cell and round (numpy draws one binomial
per cell), i.e. ~2 s for 1000 rounds over the ~15,000 cells of a 100-model arena. Above
`EXACT_LIMIT` cell-rounds the "auto" sampler therefore draws the counts from the
multinomial's Gaussian approximation (cells independent with variance = count, clipped at 0),
which at those sizes changes interval ends by well under a rating point. Pass sampler="multinomial" to force
exact draws.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.special import expit

from rating.engine.bt import DERIVS, HALF_Y, BTFit, fit_bt, gauge_inverse, gradient_hessian
from rating.engine.data import PairTable, RatingError
from rating.engine.threads import single_blas

Sampler = Literal["auto", "multinomial", "gaussian"]
EXACT_LIMIT = 3_000_000  # cell-rounds below which "auto" samples the multinomial exactly
_CHUNK_CELLS = 400_000  # rounds per chunk x cells: keeps the working arrays cache-sized
_THREADS = 2


def resample_counts(
    votes: NDArray[np.float64],
    rounds: int,
    rng: np.random.Generator,
    sampler: Literal["multinomial", "gaussian"],
) -> NDArray[np.float64]:
    """Draw `rounds` resampled count vectors (rows) for the flat cell counts `votes`."""
    total = votes.sum()
    if sampler == "multinomial":
        return rng.multinomial(int(round(total)), votes / total, size=rounds).astype(np.float64)
    # Independent cells; see _gaussian_pair_sums for why the sum constraint can be dropped.
    return np.maximum(votes + np.sqrt(votes) * rng.standard_normal((rounds, votes.size)), 0.0)


@single_blas
def bootstrap_params(
    table: PairTable,
    fit: BTFit,
    *,
    rounds: int = 1000,
    seed: int | None = 0,
    sampler: Sampler = "auto",
    max_iter: int = 60,
    tol: float = 1e-7,
) -> NDArray[np.float64]:
    """Refit on `rounds` count resamples; returns (rounds, n_params) with centred theta.

    n_params is n_models, plus one (kappa) for tie models. Requires a connected table.
    """
    if sampler not in ("auto", "multinomial", "gaussian"):
        raise RatingError(f"unknown bootstrap sampler {sampler!r}")
    m, p = table.n_models, table.n_pairs
    flat_votes = table.votes.reshape(-1).astype(np.float64)
    cells = np.flatnonzero(flat_votes > 0)
    wbar = table.weight.reshape(-1)[cells] / flat_votes[cells]
    if sampler == "auto":
        sampler = "multinomial" if rounds * cells.size <= EXACT_LIMIT else "gaussian"
    _, neg_h = gradient_hessian(table, fit.ties, fit.params, fit.ridge)
    h_inv = gauge_inverse(neg_h, m, fit.ridge)
    design_t = csr_matrix(
        (
            np.concatenate([np.ones(p), -np.ones(p)]),
            (np.concatenate([table.i, table.j]), np.tile(np.arange(p), 2)),
        ),
        shape=(m, p),
    )
    chunk = max(1, _CHUNK_CELLS // max(cells.size, 1))
    starts = list(range(0, rounds, chunk))
    seeds = np.random.SeedSequence(seed).spawn(len(starts))
    fast = fit.ties == "half" and sampler == "gaussian"

    def run(k: int) -> NDArray[np.float64]:
        rng = np.random.default_rng(seeds[k])
        c = min(chunk, rounds - starts[k])
        if fast:
            n_b, s_b = _gaussian_pair_sums(table, c, rng)
            return _chord_newton(table, fit, None, (n_b, s_b), h_inv, design_t, max_iter, tol)
        draws = resample_counts(flat_votes[cells], c, rng, sampler)  # type: ignore[arg-type]
        weights = np.zeros((c, p * 3))
        weights[:, cells] = draws * wbar
        weights = weights.reshape(c, p, 3)
        sums = (weights.sum(axis=2), weights @ HALF_Y) if fit.ties == "half" else None
        return _chord_newton(table, fit, weights, sums, h_inv, design_t, max_iter, tol)

    # numpy releases the GIL in the heavy loops, so threads use both cores.
    with ThreadPoolExecutor(max_workers=min(_THREADS, len(starts))) as pool:
        parts = list(pool.map(run, range(len(starts))))
    return np.concatenate(parts, axis=0)


def _gaussian_pair_sums(
    table: PairTable, rounds: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gaussian draws of each pair's (total weight, score of i) under count resampling.

    Cells are drawn independently (the multinomial's sum constraint only rescales all counts
    by 1 +- 1/sqrt(N), which leaves the BT fit unchanged to first order), so each pair needs
    two correlated normals: 2 draws per pair instead of one binomial per cell.
    """
    votes = table.votes.astype(np.float64)
    wbar = np.divide(table.weight, votes, out=np.zeros_like(votes), where=votes > 0)
    var_cell = votes * wbar * wbar  # Var of a cell's resampled weight: count * wbar^2
    v_nn, v_ns, v_ss = var_cell.sum(1), var_cell @ HALF_Y, var_cell @ (HALF_Y * HALF_Y)
    l11 = np.sqrt(v_nn)
    l21 = np.divide(v_ns, l11, out=np.zeros_like(l11), where=l11 > 0)
    l22 = np.sqrt(np.maximum(v_ss - l21 * l21, 0.0))
    z1 = rng.standard_normal((rounds, table.n_pairs))
    z2 = rng.standard_normal((rounds, table.n_pairs))
    n_b = np.maximum(table.weight.sum(1) + l11 * z1, 0.0)
    s_b = np.clip(table.weight @ HALF_Y + l21 * z1 + l22 * z2, 0.0, n_b)
    return n_b, s_b


def _chord_newton(
    table: PairTable,
    fit: BTFit,
    weights: NDArray[np.float64] | None,
    sums: tuple[NDArray[np.float64], NDArray[np.float64]] | None,
    h_inv: NDArray[np.float64],
    design_t: csr_matrix,
    max_iter: int,
    tol: float,
) -> NDArray[np.float64]:
    m, i, j = table.n_models, table.i, table.j
    design = design_t.T.tocsr()
    if sums is not None:
        n_b, s_b = sums
    rounds = n_b.shape[0] if sums is not None else weights.shape[0]  # type: ignore[union-attr]
    params = np.tile(fit.params, (rounds, 1))
    done = np.zeros(rounds, dtype=bool)
    for _ in range(max_iter):
        theta = params[:, :m]
        d = np.asarray(design @ theta.T).T
        if sums is not None:
            g_pair = s_b - n_b * expit(d)
            grad = np.asarray(design_t @ g_pair.T).T - fit.ridge * theta
        else:
            assert weights is not None
            _, ld, lk = DERIVS[fit.ties](d, params[:, m : m + 1])
            assert lk is not None
            g_pair = (weights * ld).sum(axis=2)
            grad = np.empty_like(params)
            grad[:, :m] = np.asarray(design_t @ g_pair.T).T - fit.ridge * theta
            grad[:, m] = (weights * lk).sum(axis=(1, 2))
        step = grad @ h_inv
        params += step
        done = np.max(np.abs(step), axis=1) < tol
        if done.all():
            break
    for r in np.flatnonzero(~done):  # rare: sparse data where H0 is a poor chord
        if weights is not None:
            w_r = weights[r]
        else:  # rebuild a two-class table with the same (total, score) per pair
            w_r = np.stack([s_b[r], np.zeros(len(i)), n_b[r] - s_b[r]], axis=1)
        sub = PairTable(m, i, j, table.votes, w_r, table.weight_sq)
        try:
            params[r] = fit_bt(sub, ties=fit.ties, ridge=fit.ridge, start=fit.params).params
        except RatingError:
            params[r] = fit.params
    params[:, :m] -= params[:, :m].mean(axis=1, keepdims=True)
    return params
