"""The learned-rewards study end to end (fast preset) and every bad input of the CLI contract."""

import contextlib
import io
import json
import subprocess
import sys

import h5py
import pytest

from rewardlab.cli import main

pytestmark = pytest.mark.slow

LR = "learned-rewards"


def test_fast_pipeline_learns(fast_run):
    s = json.loads((fast_run / "summary.json").read_text())
    assert s["expert_success_rate"] >= 0.9
    # The test rewards are 0/1 with about 10% ones, so their variance (the MSE of the best constant
    # predictor) is about 0.09. A model under 0.01 explains ~90% of it; under 0.1 on rewarding
    # transitions alone means it does predict the reward where there is one (a model that always said 0
    # would score 1.0 there).
    rm = json.loads((fast_run / "reward_model" / "result.json").read_text())
    assert rm["test_reward_variance"] > 0.05
    assert s["reward_model_test_mse"] < 0.01
    assert s["reward_model_test_mse_rewarding"] < 0.1
    assert s["reward_model_train_mse"] < 0.01
    for env in ("CoinFlipGoal", "TwoGoals"):
        for reward in ("learned", "true"):
            assert 0.0 <= s[f"{env}_{reward}_reward_final_true_return"] <= 1.0
    assert s["CoinFlipGoal_true_reward_final_true_return"] >= 0.9  # true-reward agents learn the task
    # exact EPIC to the true reward: a test MSE near 0, yet far from the true reward off the expert's transitions
    for k in ("expert", "uniform"):
        assert 0.0 <= s[f"reward_model_epic_to_true_{k}"] <= 1.0
        assert 0.0 <= s[f"reward_model_epic_between_seeds_{k}"] <= 1.0
    assert s["reward_model_epic_to_true_uniform"] > s["reward_model_epic_to_true_expert"] > 0.05
    assert 0.0 <= s["reward_model_epic_to_true_uniform_TwoGoals"] <= 1.0
    d = json.loads((fast_run / "distances" / "result.json").read_text())
    assert d["n_states"] == 162 and d["expert_transitions"] == 2500 and d["second_seed_test_mse"] < 0.01
    assert (fast_run / "distances" / "second_seed" / "model.pt").exists()
    for fig in (
        "reward_saliency",
        "counterfactual_probes",
        "policy_saliency",
        "retrain_CoinFlipGoal",
        "retrain_TwoGoals",
    ):
        assert (fast_run / "figures" / f"{fig}.png").stat().st_size > 10_000
        assert (fast_run / "figures" / f"{fig}.pdf").exists()
    report = (fast_run / "report.md").read_text()
    assert "figures/reward_saliency.png" in report and "retrain_TwoGoals.png" in report
    assert "## Reward distances (EPIC)" in report
    with h5py.File(fast_run / "dataset" / "transitions.h5") as f:
        assert f["train/obs"].dtype == "uint8" and f["train/obs"].shape == (5000, 11, 11)
        assert f["test/obs"].shape == (2500, 11, 11)
        meta = json.loads(f.attrs["meta"])
    assert meta["env_id"] == "rewardlab/EmptyMaze-10x10-CoinFlipGoal-v0" and meta["seed"] == 0
    probes = json.loads((fast_run / "interpret" / "probes.json").read_text())
    assert len(probes["goal_moved"]) == 11


def test_rerun_reuses_finished_steps(run_copy, cli):
    before = (run_copy / "expert" / "model.pt").stat().st_mtime_ns
    code, out, _ = cli(LR, "run", "--out", run_copy)
    assert code == 0 and "expert_success_rate" in out
    assert (run_copy / "expert" / "model.pt").stat().st_mtime_ns == before


def test_dataset_never_silently_overwritten(run_copy, cli):
    path = run_copy / "dataset" / "transitions.h5"
    data = path.read_bytes()
    code, _, err = cli(LR, "dataset", "--out", run_copy, "dataset.n_train=100", "--redo")
    assert code == 0  # asked for: replaced
    assert path.read_bytes() != data
    # the saved config now says n_train=100; asking for 200 without --redo is refused, file untouched
    data = path.read_bytes()
    code, _, err = cli(LR, "dataset", "--out", run_copy, "dataset.n_train=200")
    assert code == 2 and "different config" in err and path.read_bytes() == data


def test_corrupt_dataset(run_copy, cli):
    bad = run_copy / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n garbage")
    code, _, err = cli(LR, "reward-model", "--out", run_copy, "--dataset", bad, "--redo")
    assert code == 2 and "corrupt or not an HDF5 file" in err and len(err.strip().splitlines()) == 1
    assert bad.read_bytes() == b"\x89HDF\r\n garbage"


def test_missing_dataset(run_copy, cli):
    code, _, err = cli(LR, "reward-model", "--out", run_copy, "--dataset", run_copy / "nope.h5", "--redo")
    assert code == 2 and "does not exist" in err


def test_dataset_of_another_env(run_copy, cli, tmp_path):
    from rewardlab.data.transitions import read_meta, read_transitions, write_transitions

    src = run_copy / "dataset" / "transitions.h5"
    meta = read_meta(src) | {"env_id": "rewardlab/EmptyMaze-10x10-TwoGoals-v0"}
    other = tmp_path / "two.h5"
    write_transitions(other, {"train": read_transitions(src, "train")}, meta)
    code, _, err = cli(LR, "reward-model", "--out", run_copy, "--dataset", other, "--redo")
    assert code == 2 and "was made on rewardlab/EmptyMaze-10x10-TwoGoals-v0" in err


def test_checkpoint_of_another_architecture(run_copy, cli):
    (run_copy / "interpret" / "result.json").unlink()
    model = (run_copy / "reward_model" / "model.pt").read_bytes()
    # the config asks for another architecture than the reward-model step made: refused before anything is read
    code, _, err = cli(LR, "interpret", "--out", run_copy, "reward_model.hidden=[32]", "--redo")
    assert code == 2 and "`reward-model` step" in err and "reward_model.hidden: [64, 64] there, [32] now" in err
    assert (run_copy / "reward_model" / "model.pt").read_bytes() == model
    # a checkpoint of another architecture put in its place by hand: the loader refuses it
    from rewardlab.core.modules import save_module
    from rewardlab.rewards.nets import MazeRewardMLP

    save_module(run_copy / "reward_model" / "model.pt", MazeRewardMLP((11, 11), (32,)), {})
    code, _, err = cli(LR, "interpret", "--out", run_copy, "--redo")
    assert code == 2 and "config asks for" in err


def test_corrupt_checkpoints(run_copy, cli):
    (run_copy / "reward_model" / "model.pt").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = cli(LR, "interpret", "--out", run_copy, "--redo")
    assert code == 2 and "corrupt" in err
    (run_copy / "expert" / "model.pt").write_bytes(b"not a checkpoint")
    code, _, err = cli(LR, "dataset", "--out", run_copy, "--redo")
    assert code == 2 and "corrupt" in err


@pytest.mark.parametrize(
    "override,message", [("expert.ppo.gammma=0.9", "unknown config key"), ("reward_model.lr=-1", "out of range")]
)
def test_bad_config_via_cli_subprocess(tmp_path, override, message):
    """Through the installed entry point: one line on stderr, exit code 2, no traceback."""
    p = subprocess.run(
        [sys.executable, "-m", "rewardlab", LR, "run", "--out", str(tmp_path / "r"), override],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_print_config(cli):
    code, out, _ = cli(LR, "print-config", "--preset", "paper")
    assert code == 0 and "gamma: 0.97" in out and "n_train: 25000" in out


def test_help_on_every_subcommand():
    """`--help` on the top level, `demo`, and every step of every study (argparse %-formats help text, so a '%' in
    a docstring once broke `rewardlab ptgm --help`). In-process: one interpreter for all of them."""
    from rewardlab.studies import STUDIES

    cases = [["--help"], ["demo", "--help"], ["sweep", "--help"], ["report", "--help"]]
    for name, study in STUDIES.items():
        steps = ["run", "print-config", "status", *study.steps]
        cases += [[name, "--help"]] + [[name, s, "--help"] for s in steps]
    assert len(cases) > 30
    for args in cases:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 0 and "usage:" in buf.getvalue(), args
