"""Aggregate statistics over seeds, as recommended by Agarwal et al. (2021), "Deep RL at the Edge of the Statistical
Precipice": mean, median, interquartile mean (IQM) and optimality gap, with stratified bootstrap confidence intervals,
and performance profiles.

Scores are arrays of shape (runs, tasks): one row per seed, one column per task (a single task is one column). The
stratified bootstrap resamples the runs of each task independently, with replacement, and recomputes the aggregate;
the interval is the percentile interval of those replicates. Everything is vectorised over replicates.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from rewardlab.errors import RewardLabError

Aggregate = Callable[[np.ndarray], np.ndarray]


def _as_scores(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise RewardLabError(f"scores must be a non-empty (runs, tasks) array, got shape {np.shape(scores)}")
    if not np.isfinite(x).all():
        raise RewardLabError("scores contain NaN or infinity; drop the runs that did not finish first")
    return x


def _flat(x: np.ndarray) -> np.ndarray:
    """(..., runs, tasks) -> (..., runs * tasks)."""
    return x.reshape(*x.shape[:-2], -1)


def mean(x: np.ndarray) -> np.ndarray:
    """Mean over runs and tasks (the last two axes)."""
    return _flat(x).mean(-1)


def median(x: np.ndarray) -> np.ndarray:
    """Median over runs and tasks."""
    return np.median(_flat(x), axis=-1)


def iqm(x: np.ndarray) -> np.ndarray:
    """Interquartile mean over runs and tasks: the mean of the middle 50% of all scores (a 25% trimmed mean, as
    `scipy.stats.trim_mean(x, 0.25)` and rliable compute it)."""
    f = np.sort(_flat(x), axis=-1)
    n = f.shape[-1]
    cut = int(0.25 * n)
    return f[..., cut : n - cut].mean(-1)


def optimality_gap(x: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Mean shortfall below the target score `gamma` (scores above it count as gamma)."""
    return gamma - np.minimum(_flat(x), gamma).mean(-1)


AGGREGATES: dict[str, Aggregate] = {"mean": mean, "median": median, "iqm": iqm}


def bootstrap_indices(n_runs: int, n_tasks: int, reps: int, seed: int) -> np.ndarray:
    """The resampling: for each replicate and task, `n_runs` run indices drawn with replacement, shape
    (reps, n_runs, n_tasks)."""
    return np.random.default_rng(seed).integers(0, n_runs, size=(reps, n_runs, n_tasks))


def stratified_bootstrap_ci(
    scores: Sequence[float] | np.ndarray,
    aggregate: Aggregate = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point estimate, low, high): the aggregate of `scores` and its stratified bootstrap percentile interval."""
    x = _as_scores(scores)
    return _interval(x, aggregate, _resamples(x, reps, seed), confidence)


def _resamples(x: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """The stratified bootstrap samples of (runs, tasks) scores, shape (reps, runs, tasks)."""
    if reps < 1:
        raise RewardLabError(f"reps must be at least 1, got {reps}")
    return np.take_along_axis(x[None], bootstrap_indices(*x.shape, reps, seed), axis=1)


def _interval(
    x: np.ndarray, aggregate: Aggregate, samples: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    """(point estimate, low, high) of `aggregate` from precomputed bootstrap samples."""
    if not 0 < confidence < 1:
        raise RewardLabError(f"confidence must lie in (0, 1), got {confidence}")
    a = (1 - confidence) / 2
    lo, hi = np.percentile(aggregate(samples), [100 * a, 100 * (1 - a)])
    return float(aggregate(x[None])[0]), float(lo), float(hi)


def summarize(
    scores: Sequence[float] | np.ndarray, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Mean, median and IQM with their stratified bootstrap intervals, plus the number of runs and the std over
    runs: the row every aggregate table prints."""
    x = _as_scores(scores)
    samples = _resamples(x, reps, seed)  # one resampling serves every aggregate
    out: dict[str, float] = {"runs": int(x.shape[0]), "tasks": int(x.shape[1])}
    for name, fn in AGGREGATES.items():
        point, lo, hi = _interval(x, fn, samples, confidence)
        out[name], out[f"{name}_ci_low"], out[f"{name}_ci_high"] = point, lo, hi
    out["std"] = float(_flat(x[None])[0].std(ddof=1)) if x.size > 1 else 0.0
    return out


def performance_profile(
    scores: Sequence[float] | np.ndarray,
    taus: Sequence[float] | np.ndarray,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score distribution: for each threshold tau, the fraction of runs scoring above tau (averaged over tasks),
    with its stratified bootstrap interval. Returns (profile, low, high), each of shape (len(taus),)."""
    x = _as_scores(scores)
    t = np.asarray(taus, dtype=np.float64)

    def frac_above(s: np.ndarray) -> np.ndarray:  # (..., runs, tasks) -> (..., taus)
        return (s[..., None] > t).mean(-2).mean(-2)

    reps_ = frac_above(_resamples(x, reps, seed))
    a = (1 - confidence) / 2
    lo, hi = np.percentile(reps_, [100 * a, 100 * (1 - a)], axis=0)
    return frac_above(x), lo, hi


def curve_band(
    ys: np.ndarray, reps: int = 1000, confidence: float = 0.95, seed: int = 0, aggregate: Aggregate = mean
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A learning curve over seeds, `ys` of shape (runs, points): the aggregate at each point and its bootstrap
    interval (runs resampled together, so a replicate is a whole set of curves)."""
    y = np.asarray(ys, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] == 0:
        raise RewardLabError(f"curves must be a (runs, points) array, got shape {y.shape}")
    idx = np.random.default_rng(seed).integers(0, y.shape[0], size=(reps, y.shape[0]))
    res = y[idx]  # (reps, runs, points)
    per_point = aggregate(np.moveaxis(res, 2, 1)[..., None])  # (reps, points)
    a = (1 - confidence) / 2
    lo, hi = np.percentile(per_point, [100 * a, 100 * (1 - a)], axis=0)
    return aggregate(y.T[:, :, None]), lo, hi


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a success rate from `successes` of `n` trials."""
    if n <= 0 or not 0 <= successes <= n:
        raise RewardLabError(f"a success rate needs 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
