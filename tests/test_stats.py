"""Aggregate statistics (rewardlab.stats): IQM, stratified bootstrap intervals, performance profiles, curve bands."""

import numpy as np
import pytest
from scipy import stats as sps

from rewardlab.errors import RewardLabError
from rewardlab.stats import (
    bootstrap_indices,
    curve_band,
    iqm,
    mean,
    median,
    performance_profile,
    stratified_bootstrap_ci,
    summarize,
)

# Fixed data: 5 seeds x 3 tasks on very different scales (so stratification matters).
SCORES = np.array(
    [[0.10, 10.0, 100.0], [0.30, 12.0, 180.0], [0.20, 11.0, 150.0], [0.90, 30.0, 120.0], [0.40, 14.0, 160.0]]
)


def test_iqm_matches_scipy_trim_mean():
    rng = np.random.default_rng(0)
    for shape in [(8, 1), (10, 3), (7, 5), (4, 4)]:
        x = rng.normal(size=shape)
        assert iqm(x[None])[0] == pytest.approx(sps.trim_mean(x.ravel(), 0.25), abs=1e-12)
    assert iqm(np.arange(1.0, 9.0)[None, :, None])[0] == 4.5  # mean of 3, 4, 5, 6
    assert mean(SCORES[None])[0] == pytest.approx(SCORES.mean())
    assert median(SCORES[None])[0] == pytest.approx(np.median(SCORES))


def reference_stratified_ci(x, statistic, reps, seed, confidence=0.95):
    """The stratified bootstrap written out with loops, from the same resampling indices."""
    idx = bootstrap_indices(x.shape[0], x.shape[1], reps, seed)
    reps_ = []
    for r in range(reps):
        sample = np.empty_like(x)
        for t in range(x.shape[1]):
            for i in range(x.shape[0]):
                sample[i, t] = x[idx[r, i, t], t]
        reps_.append(statistic(sample.ravel()))
    a = (1 - confidence) / 2
    return statistic(x.ravel()), np.percentile(reps_, 100 * a), np.percentile(reps_, 100 * (1 - a))


@pytest.mark.parametrize(
    "name,ours,ref",
    [("iqm", iqm, lambda v: sps.trim_mean(v, 0.25)), ("mean", mean, np.mean), ("median", median, np.median)],
)
def test_stratified_bootstrap_matches_reference(name, ours, ref):
    got = stratified_bootstrap_ci(SCORES, ours, reps=500, seed=3)
    want = reference_stratified_ci(SCORES, ref, reps=500, seed=3)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[1] <= got[0] <= got[2]


def test_bootstrap_is_stratified_by_task():
    """Each task keeps its runs: with constant tasks every replicate has the same mean, so the interval is a
    point. Pooling runs across tasks would give a wide interval."""
    x = np.array([[0.0, 100.0]] * 6)
    _, lo, hi = stratified_bootstrap_ci(x, mean, reps=1000, seed=0)
    assert lo == hi == 50.0


def test_single_task_interval_agrees_with_scipy_percentile_bootstrap():
    x = np.random.default_rng(1).gamma(2.0, size=30)
    _, lo, hi = stratified_bootstrap_ci(x, mean, reps=20000, seed=0)
    ref = sps.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", random_state=0).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.03) and hi == pytest.approx(ref.high, abs=0.03)


def test_performance_profile_exact():
    x = np.array([[0.0, 1.0], [2.0, 3.0]])
    prof, lo, hi = performance_profile(x, [-1.0, 0.5, 1.5, 2.5, 5.0], reps=200)
    np.testing.assert_allclose(prof, [1.0, 0.75, 0.5, 0.25, 0.0])  # (task 0 + task 1) / 2 at each tau
    assert np.all(lo <= prof + 1e-12) and np.all(prof <= hi + 1e-12)
    assert np.all(np.diff(prof) <= 0)


def test_summarize_and_curve_band():
    s = summarize(SCORES[:, :1], reps=300)
    assert s["runs"] == 5 and s["tasks"] == 1
    assert s["iqm"] == pytest.approx(sps.trim_mean(SCORES[:, 0], 0.25))
    assert s["mean_ci_low"] <= s["mean"] <= s["mean_ci_high"]
    ys = np.stack([np.linspace(0, 1, 7) + k * 0.1 for k in range(4)])
    m, lo, hi = curve_band(ys, reps=300)
    assert m.shape == lo.shape == hi.shape == (7,)
    np.testing.assert_allclose(m, ys.mean(0))
    assert np.all(lo <= m) and np.all(m <= hi) and np.all(hi - lo > 0)


@pytest.mark.parametrize("bad,msg", [([], "non-empty"), ([[1.0, np.nan]], "NaN"), (np.zeros((2, 2, 2)), "runs, tasks")])
def test_bad_scores(bad, msg):
    with pytest.raises(RewardLabError, match=msg):
        summarize(bad)


def test_bad_confidence():
    with pytest.raises(RewardLabError, match="confidence"):
        stratified_bootstrap_ci([1.0, 2.0], confidence=1.5)
