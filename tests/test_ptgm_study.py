"""The ptgm study end to end (toy size), its resume and failure handling, and bad inputs."""

import json
import shutil

import numpy as np
import pytest

from rewardlab.cli import main

pytestmark = pytest.mark.slow


def test_pipeline_writes_every_step_summary_figures_and_report(ptgm_run):
    run = ptgm_run
    summary = json.loads((run / "summary.json").read_text())
    methods = ["ptgm", "ptgm_no_prior", "ptgm_random_codebook", "flat_sac"]
    assert set(summary["final_mean_subtasks"]) == set(methods)
    for m in methods:
        assert set(summary["final_subtasks"][m]) == {"0", "1"}
        assert 0 <= summary["final_mean_subtasks"][m] <= 4
        assert summary["env_steps_run"][m] >= 3000
        for s in (0, 1):
            assert (run / "rl" / m / f"seed{s}" / "result.json").exists()
    assert summary["dataset_episodes"] >= 145 and 0 <= summary["prior_val_accuracy"] <= 1
    data = json.loads((run / "data" / "result.json").read_text())
    assert all(v > 0 for v in data["episodes_completing"].values())  # every subtask is demonstrated
    with np.load(run / "codebook" / "codebook.npz") as z:
        assert z["features"].shape == (12, 10) and z["states"].shape == (12, 17)
    for fig in ("subtasks.png", "codebook_tsne.png"):
        assert (run / "figures" / fig).stat().st_size > 10_000, fig
    diag = json.loads((run / "diagnose" / "result.json").read_text())["subtask_completion_rate"]
    assert set(diag) == set(methods)
    for m in methods:  # rates of the 4 target subtasks, and their sum is the mean number completed
        rates = [v for k, v in diag[m].items() if k != "mean_subtasks"]
        assert len(rates) == 4 and all(0 <= r <= 1 for r in rates)
        assert np.isclose(sum(rates), diag[m]["mean_subtasks"])
    reach = json.loads((run / "diagnose" / "result.json").read_text())["low_level_reach"]
    assert set(reach) == {"microwave", "kettle", "bottom burner", "light switch"}
    for r in reach.values():
        assert 0 <= r["fresh"] <= 1 and 0 <= r["after_other_targets"] <= 1 and 0 <= r["best_code_fresh"] < 12
    # the RL runs went through the job runner, as a sweep's runs do
    manifest = json.loads((run / "rl" / "sweep.json").read_text())
    assert manifest["step"] == "rl" and len(manifest["runs"]) == 8
    assert {r["status"] for r in manifest["runs"]} == {"finished"}
    for m in methods:
        for s in (0, 1):
            assert json.loads((run / "rl" / m / f"seed{s}" / "status.json").read_text())["status"] == "finished"
    report = (run / "report.md").read_text()
    assert "PTGM" in report and "flat SAC" in report and "figures/subtasks.png" in report
    assert "Completion rate of each subtask" in report


def test_rerun_reuses_finished_runs_and_a_failed_run_is_reported(ptgm_run, tmp_path, capsys):
    from conftest import PTGM_TINY

    run = tmp_path / "run"
    shutil.copytree(ptgm_run, run)
    (run / "rl" / "result.json").unlink()  # the step is redone, but finished (method, seed) runs are kept
    before = (run / "rl" / "ptgm" / "seed0" / "result.json").stat().st_mtime_ns
    shutil.rmtree(run / "rl" / "ptgm_no_prior" / "seed1")  # as if interrupted before this run finished
    damaged = run / "pretrain" / "random_codebook" / "pretrain.pt"
    damaged.write_bytes(b"junk")  # a file that does not read is refused before any RL run starts
    assert main(["ptgm", "rl", "--out", str(run), *PTGM_TINY]) == 2
    err = capsys.readouterr().err
    assert "random_codebook/pretrain.pt' cannot be read as a torch checkpoint" in err and "pretrain --redo" in err
    # a checkpoint that reads but is not what the method loads: its runs fail when they start, the others finish
    shutil.copy(run / "rl" / "ptgm" / "seed0" / "hl_sac.pt", damaged)
    shutil.rmtree(run / "rl" / "ptgm_random_codebook")
    assert main(["ptgm", "rl", "--out", str(run), *PTGM_TINY]) == 2
    err = capsys.readouterr().err
    assert "2 of 8 RL runs failed" in err and "ptgm_random_codebook/seed0" in err
    assert (run / "rl" / "ptgm_no_prior" / "seed1" / "result.json").exists()  # the others finished
    assert (run / "rl" / "ptgm" / "seed0" / "result.json").stat().st_mtime_ns == before  # not redone


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    assert main(["ptgm", "run", "--out", str(tmp_path / "a"), "methods=[ptgm,dqn]"]) == 2
    assert "unknown method 'dqn'" in capsys.readouterr().err
    assert main(["ptgm", "run", "--out", str(tmp_path / "b"), "rl.k=5"]) == 2
    assert "must equal pretrain.horizon" in capsys.readouterr().err
    import h5py

    bad = tmp_path / "kitchen.hdf5"
    with h5py.File(bad, "w") as f:  # a D4RL-layout file of the wrong widths
        f["observations"] = np.zeros((30, 12))
        f["actions"] = np.zeros((30, 9))
        f["rewards"] = np.zeros(30)
        f["terminals"] = np.zeros(30, dtype=bool)
    assert main(["ptgm", "data", "--out", str(tmp_path / "c"), f"data.source={bad}"]) == 2
    err = capsys.readouterr().err
    assert "12-d observations and 9-d actions" in err and "60-d" in err
    assert main(["ptgm", "data", "--out", str(tmp_path / "d"), f"data.source={tmp_path / 'none.hdf5'}"]) == 2
    err = capsys.readouterr().err  # refused before the step runs: the file is a declared input of the step
    assert "data.source" in err and "none.hdf5' does not exist" in err


def test_rl_runs_finished_before_the_job_runner_are_kept(ptgm_run, tmp_path, capsys):
    """A run directory whose RL runs were finished by an older rewardlab (result.json, no status.json)."""
    from conftest import PTGM_TINY

    run = tmp_path / "run"
    shutil.copytree(ptgm_run, run)
    for p in [*run.glob("rl/*/seed*/status.json"), run / "rl" / "sweep.json", run / "rl" / "result.json"]:
        p.unlink()
    before = {p: p.stat().st_mtime_ns for p in run.glob("rl/*/seed*/result.json")}
    assert len(before) == 8
    assert main(["ptgm", "rl", "--out", str(run), *PTGM_TINY]) == 0
    assert {p: p.stat().st_mtime_ns for p in run.glob("rl/*/seed*/result.json")} == before  # none trained again
    assert len(list(run.glob("rl/*/seed*/status.json"))) == 8


def test_device_is_a_setting_that_redoes_nothing(ptgm_run, tmp_path, capsys):
    """`device` (default auto, in every preset) is left out of fingerprints: a finished run rerun on another device
    keeps every result; a device this machine lacks, or one torch does not know, is refused in one line."""
    from pathlib import Path

    import torch
    import yaml
    from conftest import PTGM_TINY

    import rewardlab
    from rewardlab.studies.ptgm import study

    presets = sorted((Path(rewardlab.__file__).parent / "configs" / "ptgm").glob("*.yaml"))
    assert presets and all(yaml.safe_load(p.read_text())["device"] == "auto" for p in presets)
    assert study.resolve("fast").device == "auto"
    run = tmp_path / "run"
    shutil.copytree(ptgm_run, run)
    kept = [run / s / "result.json" for s in ("data", "codebook", "pretrain", "rl", "diagnose")]
    kept += [run / "pretrain" / "pretrain.pt", run / "rl" / "ptgm" / "seed0" / "hl_sac.pt"]
    before = {p: p.stat().st_mtime_ns for p in kept}
    assert main(["ptgm", "run", "--out", str(run), *PTGM_TINY, "device=cpu"]) == 0
    assert {p: p.stat().st_mtime_ns for p in kept} == before
    capsys.readouterr()
    assert main(["ptgm", "run", "--out", str(tmp_path / "t"), "device=tpu"]) == 2
    err = capsys.readouterr().err
    assert "device='tpu' is not allowed" in err and len(err.strip().splitlines()) == 1
    if not torch.cuda.is_available():  # resolve_device's line, at the first step that uses torch
        args = ["device=cuda", "data.episodes=20", "codebook.method=random", "codebook.n_codes=4"]
        assert main(["ptgm", "run", "--out", str(tmp_path / "c"), *args]) == 2
        err = capsys.readouterr().err
        assert "device=cuda was asked for but no CUDA GPU is available" in err and len(err.strip().splitlines()) == 1
