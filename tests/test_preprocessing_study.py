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
    assert (preprocessing_run / "figures" / "mountain_car_curves.png").stat().st_size > 20_000
    net, meta = load_module(preprocessing_run / "mountain_car" / "models" / "dense.sparse_l1.pt")
    assert meta["solver"] == "lp"
    x = torch.tensor([[-0.5, 0.0], [0.2, 0.01]])
    assert net(x, None, x, None).shape == (2,)
