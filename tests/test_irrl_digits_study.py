"""The irrl-digits study end to end (fast preset) and its commands."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rewardlab.cli import main

pytestmark = pytest.mark.slow


def test_fast_preset_writes_every_output(irrl_digits_run):
    run = irrl_digits_run
    summary = json.loads((run / "summary.json").read_text())
    for key in ("test_accuracy", "best_valid_accuracy", "epochs_run", "reward_type"):
        assert key in summary
    assert summary["epochs_run"] == 6 and summary["reward_type"] == "linear_clipping"
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert (run / "data" / "cluttered_mnist.npz").exists()
    assert sorted(p.name for p in (run / "train" / "checkpoints").glob("*.pt")) == [
        "epoch_0.pt",
        "epoch_2.pt",
        "epoch_4.pt",
        "epoch_6.pt",
    ]
    cases = run / "cases"
    assert len(list(cases.glob("case_*.png"))) == 9
    for video in ("cases_3x3.mp4", "cases_3x3.gif"):
        assert (cases / video).stat().st_size > 10_000
    noise = sorted((run / "noise").glob("noise_*.npy"))
    assert len(noise) == 4
    delta = np.load(noise[0])
    assert delta.shape == (2000,) and np.all(np.abs(delta) <= 1)
    for fig in ("cluttered_examples", "valid_accuracy", "reward_noise", "reward_hacking"):
        assert (run / "figures" / f"{fig}.png").exists(), fig
    hack = json.loads((run / "hack" / "result.json").read_text())
    assert hack["oracle_drift"] is False and list(hack["runs"]) == ["log_noclipping"]
    report = (run / "report.md").read_text()
    assert "Reward noise" in report and "Reward hacking" in report


def test_test_command_scores_a_given_checkpoint(irrl_digits_run, capsys):
    ckpt = irrl_digits_run / "train" / "checkpoints" / "epoch_0.pt"
    assert main(["irrl-digits", "test", "--out", str(irrl_digits_run), "--ckpt", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy of" in out and '"test_accuracy"' in out


@pytest.mark.skipif(not os.environ.get("REWARDLAB_IRRL_CKPT_DIR"), reason="REWARDLAB_IRRL_CKPT_DIR not set")
def test_noise_with_the_papers_oracle_on_the_papers_log_checkpoint(irrl_digits_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(irrl_digits_run, run)
    d = Path(os.environ["REWARDLAB_IRRL_CKPT_DIR"])
    oracle = d / "ram_18_4x4_linear_clipping_epoch1400.pth.tar"
    target = d / "ram_18_4x4_log_clipping_epoch600.pth.tar"
    assert (
        main(
            [
                "irrl-digits",
                "noise",
                "--out",
                str(run),
                "--redo",
                f"oracle_ckpt={oracle}",
                f"noise_ckpts=[{target},{oracle}]",
            ]
        )
        == 0
    )
    res = json.loads((run / "noise" / "result.json").read_text())
    log600, lin1400 = res["checkpoints"]
    assert lin1400["mean"] == pytest.approx(0.0, abs=1e-5)  # the oracle against itself: no noise
    assert log600["std"] > 0.05 and log600["test_accuracy"] > 0.6


def test_missing_data_and_bad_checkpoint_give_one_line_errors(tmp_path, capsys):
    assert main(["irrl-digits", "train", "--out", str(tmp_path / "empty")]) == 2
    assert "run the `data` step first" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"junk")
    assert main(["irrl-digits", "test", "--out", str(tmp_path / "empty"), "--ckpt", str(tmp_path / "bad.pt")]) == 2
    assert "corrupt" in capsys.readouterr().err
