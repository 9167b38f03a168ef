"""The irrl-skills study end to end (fast preset)."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_fast_preset_learns_most_of_the_24_skills_with_clipped_linear(irrl_skills_run):
    run = irrl_skills_run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations_run"] == 800_000
    learned = summary["skills_learned"]["linear_clipping"]
    assert set(learned) == {"1", "2"} and min(learned.values()) >= 20, learned  # of 24
    effective = summary["final_effective_skills"]
    assert np.mean(list(effective["linear_clipping"].values())) > 17
    # the paper's ordering: clipped linear learns more skills than clipped log
    assert np.mean(list(effective["linear_clipping"].values())) > np.mean(list(effective["log_clipping"].values()))
    assert all(v > 0 for v in summary["seed_iterations_per_second"].values())
    for fig in ("effective_skills.png", "occupancy_linear_clipping.png", "occupancy_log_clipping.png"):
        assert (run / "figures" / fig).exists(), fig
    with np.load(run / "train" / "linear_clipping" / "state.npz") as z:
        assert {"occ_init_all", "occ_mid_all", "occ_end_all", "occ_end_final"} <= set(z.files)
        assert np.allclose(z["occ_end_final"].sum(1), 1.0)
        # a learned skill set spreads its final states: most of the 24 cells are some skill's end
        assert (z["occ_end_final"][0] > 0).sum() >= 18
    assert "linear_clipping" in (run / "report.md").read_text()


def test_an_interrupted_run_resumes_from_its_saved_state(tmp_path):
    from rewardlab.config import resolve
    from rewardlab.core.runs import RunDir, read_metrics
    from rewardlab.studies.irrl_skills import IrrlSkillsConfig, train_method

    def cfg(iterations):
        return resolve(IrrlSkillsConfig, "irrl-skills", "fast", [f"iterations={iterations}", "eval_every=1000"])

    run = RunDir(tmp_path / "a")
    train_method(cfg(3000), run, "linear_clipping")  # as if stopped after 3,000 iterations
    res = train_method(cfg(5000), run, "linear_clipping")
    assert res["iterations"] == 5000
    steps = read_metrics(tmp_path / "a" / "train" / "linear_clipping" / "metrics.csv")["effective_skills/seed1"][0]
    assert steps.tolist() == [0, 1000, 2000, 3000, 4000, 5000]
    whole = train_method(cfg(5000), RunDir(tmp_path / "b"), "linear_clipping")
    assert whole["effective_skills"] == res["effective_skills"]  # resuming changes nothing
