"""The preprocessing study end to end (fast preset)."""

import json

import numpy as np
import pytest
import torch

from rewardlab.core.modules import load_module
from rewardlab.envs.tabular_maze import MAZES

pytestmark = pytest.mark.slow


def test_fast_preset_summary(preprocessing_run):
    s = json.loads((preprocessing_run / "summary.json").read_text())
    tab = s["tabular"]
    assert set(tab) == set(MAZES)
    for maze, blocks in tab.items():
        for key, block in blocks.items():
            assert set(block) == {"sparse_l1", "sparse_log", "smooth_l1", "smooth_log"}
            for obj, m in block.items():
                assert m["policy_preserved"], (maze, key, obj)
                # every output, LP and Adam alike, is its input shaped by a potential and shifted: EPIC sees no change
                assert m["epic_to_input"] < 1e-6, (maze, key, obj)
                assert abs(m["epic_to_true_after"] - m["epic_to_true_before"]) < 1e-6, (maze, key, obj)
                if key.endswith("/true"):  # the shaped ground truths are shapings of the unshaped one
                    assert m["epic_to_true_before"] < 1e-6
                else:  # preferences from 1,000 comparisons do not pin the reward down, least of all off the dynamics
                    assert 0.1 < m["epic_to_true_before"] < 1.0
            if key.endswith("/true"):
                # exact LP: the four shapings of one base reward preprocess to the same r'
                assert block["sparse_l1"]["invariance_gap_after"] < 1e-6
                assert block["smooth_l1"]["invariance_gap_after"] < 1e-6
                assert block["sparse_l1"]["invariance_gap_before"] > 1.0
                assert block["sparse_l1"]["sparsity_after"] > block["sparse_l1"]["sparsity_before"]
                assert block["smooth_l1"]["smoothness_after"] < block["smooth_l1"]["smoothness_before"]
    assert "goal/learned" in tab["EmptyMaze4"]
    report = (preprocessing_run / "report.md").read_text()
    assert "heatmap_KeyMaze10_path_true.png" in report
    assert "| EPIC to input | EPIC to truth before → after |" in report and "n/a" not in report
    for maze in MAZES:
        assert (preprocessing_run / "figures" / f"heatmap_{maze}_goal_true.png").stat().st_size > 20_000


def test_saved_models_reproduce_the_preprocessed_rewards(preprocessing_run):
    spec = MAZES["EmptyMaze10"]
    s, _, s2 = spec.all_transitions()
    st, st2 = torch.as_tensor(s), torch.as_tensor(s2)
    outs = []
    for shaping in ("unshaped", "dense", "antidense", "random"):
        net, meta = load_module(preprocessing_run / "models" / "EmptyMaze10" / f"goal_{shaping}_true.sparse_l1.pt")
        assert meta["objective"] == "sparse_l1" and meta["shaping"] == shaping
        outs.append(net(st, None, st2, None).detach().numpy())
        unmod, _ = load_module(preprocessing_run / "models" / "EmptyMaze10" / f"goal_{shaping}_true.unmodified.pt")
        assert unmod(st, None, st2, None).abs().max() > 0
    assert max(np.abs(o - outs[0]).max() for o in outs) < 1e-5


def test_mountain_car_part(preprocessing_run):
    r = json.loads((preprocessing_run / "mountain_car" / "result.json").read_text())
    assert r["transitions"] == 15_000 and r["pairs"] > 14_500
    assert 0.0 <= r["expert_success_rate"] <= 1.0
    m = r["summary"]
    # the exact LP with a linear potential makes the reward sparser and pulls the shapings together
    assert m["sparse_l1"]["mean_abs_after"] < 0.5 * m["sparse_l1"]["mean_abs_before"]
    assert m["sparse_l1"]["invariance_gap_after"] < 0.5 * m["sparse_l1"]["invariance_gap_before"]
    assert m["smooth_l1"]["smoothness_after"] < 0.5 * m["smooth_l1"]["smoothness_before"]
    for shaping in ("unshaped", "dense", "antidense"):
        assert r["per_shaping"][shaping]["sparse_l1"]["solver"] == "lp"
    assert r["per_shaping"]["random"]["sparse_l1"]["potential"] == "mlp"
    # sampled EPIC (float32 nets): the outputs are shapings of their inputs, the inputs shapings of the unshaped reward
    assert r["epic"]["samples"] == 1024 and "uniform over the observation box" in r["epic"]["coverage"]
    for obj, x in m.items():
        assert x["epic_to_input"] < 1e-4, obj
        assert x["epic_to_true_before"] < 1e-4 and x["epic_to_true_after"] < 1e-4, obj
    lo, hi = r["per_shaping"]["random"]["sparse_l1"]["epic_to_true_ci"]
    assert 0.0 <= lo <= r["per_shaping"]["random"]["sparse_l1"]["epic_to_true"] <= hi < 1e-4
    assert (preprocessing_run / "figures" / "mountain_car_curves.png").stat().st_size > 20_000
    net, meta = load_module(preprocessing_run / "mountain_car" / "models" / "dense.sparse_l1.pt")
    assert meta["solver"] == "lp"
    x = torch.tensor([[-0.5, 0.0], [0.2, 0.01]])
    assert net(x, None, x, None).shape == (2,)
