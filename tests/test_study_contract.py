"""The study contract: a toy study declared in a few lines (tests/toy_study.py) runs through `run`, a two-seed
`sweep`, `status` and `report`; fingerprints make a changed setting a refusal that names it, or a redo that keeps
the old result until the new one is complete; dry runs touch nothing; one process per run directory; run
directories made before the contract are upgraded in place; the front door imports no torch."""

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import toy_study
import yaml

from rewardlab.core.runs import RunDir
from rewardlab.core.study import StudyRun
from rewardlab.studies import STUDIES

DATA = Path(__file__).parent / "data"


@pytest.fixture
def toy(monkeypatch):
    """The toy study in the registry, here and in the worker processes of a sweep."""
    monkeypatch.setitem(STUDIES, "toy", toy_study.study)
    monkeypatch.setenv("REWARDLAB_EXTRA_STUDIES", "toy_study")
    return toy_study.study


def tree_hash(root: Path) -> str:
    """A hash of every file's path and bytes under root (the lock file aside)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_toy_study_through_run_status_sweep_and_report(toy, cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = cli("toy", "run", "--out", out)
    assert code == 0 and '"score"' in stdout
    rec = json.loads((out / "run.json").read_text())
    assert rec["study"] == "toy" and rec["rewardlab_version"] and set(rec["steps"]) == {"sample", "score"}
    assert rec["steps"]["sample"]["config"] == {"seed": 0, "n": 200}  # only the fields the step uses
    assert rec["steps"]["score"]["config"] == {"seed": 0, "n": 200, "scale": 1.0}  # and those of the steps before
    x = (out / "sample" / "x.npy").stat().st_mtime_ns
    assert cli("toy", "run", "--out", out)[0] == 0 and (out / "sample" / "x.npy").stat().st_mtime_ns == x  # reused

    code, stdout, _ = cli("toy", "status", "--out", out)
    assert code == 0 and "sample         done" in stdout and "score          done" in stdout
    code, stdout, _ = cli("toy", "status", "--out", out, "scale=2")
    assert "sample         done" in stdout and "score          stale    scale: 1.0 there, 2.0 now" in stdout

    # a changed setting: refused with the key named, nothing touched; --redo remakes only that step
    before = tree_hash(out)
    code, _, err = cli("toy", "run", "--out", out, "scale=2")
    assert code == 2 and "step `score`" in err and "scale: 1.0 there, 2.0 now" in err and "--redo" in err
    assert tree_hash(out) == before
    assert cli("toy", "score", "--redo", "--out", out, "scale=2")[0] == 0
    assert (out / "sample" / "x.npy").stat().st_mtime_ns == x
    assert "scale: 2.0" in (out / "config.yaml").read_text()  # the config the last successful step ran under
    code, stdout, _ = cli("toy", "status", "--out", out)
    assert "score          done" in stdout

    sweep = tmp_path / "sweep"
    code, stdout, _ = cli("sweep", "toy", "--seeds", "0-1", "scale=1,3", "--out", sweep, "--workers", "2")
    assert code == 0
    agg = json.loads((sweep / "aggregate.json").read_text())
    assert agg["status"] == {"finished": 4} and set(agg["settings"]) == {"scale=1", "scale=3"}
    s1, s3 = (agg["settings"][k]["figures"]["score"]["mean"] for k in ("scale=1", "scale=3"))
    assert s3 == pytest.approx(3 * s1)
    assert any(f.startswith("figures/curve0_Toy") for f in agg["figures"])  # the study's declared curve

    assert cli("report", tmp_path)[0] == 0
    page = (tmp_path / "report.html").read_text()
    assert "<h2 id='run'>" in page and "<h2 id='sweep'>sweep (sweep)" in page and "Study <b>toy</b>" in page


def test_a_failed_redo_leaves_the_old_result_config_and_record(toy, cli, tmp_path):
    out = tmp_path / "run"
    assert cli("toy", "run", "--out", out)[0] == 0
    before = tree_hash(out)
    code, _, err = cli("toy", "score", "--redo", "--out", out, "scale=9")
    assert code == 2 and "scale above 5" in err
    assert tree_hash(out) == before  # result, summary, config.yaml and run.json as they were
    assert not (out / ".redo").exists()


def test_a_killed_redo_is_put_back_by_the_next_command(toy, cli, tmp_path):
    """As if a `--redo` were killed midway: its old outputs wait in .redo/<step> and come back."""
    out = tmp_path / "run"
    assert cli("toy", "run", "--out", out)[0] == 0
    score = (out / "score" / "result.json").read_text()
    with StudyRun.open(toy, out, None, ["scale=2"]) as sr:  # what execute() does before running the step
        sr.records["score"] = {**sr.records["score"], "status": "running", "previous": sr.records["score"]}
        sr._move_aside(toy.steps["score"])
        sr._save()
    assert not (out / "score").exists()
    code, stdout, _ = cli("toy", "status", "--out", out)
    assert "score          aside" in stdout
    assert cli("toy", "run", "--out", out)[0] == 0
    assert (out / "score" / "result.json").read_text() == score and not (out / ".redo").exists()


def test_dry_run_touches_nothing_and_checks_inputs(toy, cli, tmp_path):
    new = tmp_path / "new"
    code, stdout, _ = cli("toy", "run", "--dry-run", "--out", new)
    assert code == 0 and "sample         run" in stdout and not new.exists()
    out = tmp_path / "run"
    assert cli("toy", "run", "--out", out)[0] == 0
    before = tree_hash(out)
    code, stdout, _ = cli("toy", "run", "--dry-run", "--out", out, "scale=3", "--redo")
    assert code == 0 and "score          redo" in stdout and tree_hash(out) == before
    code, _, err = cli("toy", "run", "--dry-run", "--out", out, "n=5")
    assert code == 2 and "n: 200 there, 5 now" in err and tree_hash(out) == before
    for args in (
        ["sweep", "toy", "--seeds", "0-1", "--out", tmp_path / "sw"],
        ["report", out],
        ["demo", "--out", tmp_path / "demo"],
    ):
        assert cli(*args, "--dry-run")[0] == 0, args
    assert not (tmp_path / "sw").exists() and not (tmp_path / "demo").exists() and tree_hash(out) == before
    code, _, err = cli("sweep", "toy", "n=5,0", "--dry-run", "--out", tmp_path / "sw")
    assert code == 2 and "n=0 is out of range" in err and not (tmp_path / "sw").exists()
    # a file a step reads from outside the run directory must exist
    code, _, err = cli("irrl-digits", "data", "--dry-run", "--out", tmp_path / "d", f"data.path={tmp_path}/none.npz")
    assert code == 2 and "data.path" in err and "does not exist" in err and not (tmp_path / "d").exists()
    code, _, err = cli("learned-rewards", "reward-model", "--dry-run", "--out", tmp_path / "lr", "--dataset", "no.h5")
    assert code == 2 and "--dataset 'no.h5' does not exist" in err
    # a refused command (here: an earlier step missing) writes nothing either, dry run or not
    code, _, err = cli("toy", "score", "--out", tmp_path / "fresh")
    assert code == 2 and "the `sample` step has not finished" in err and "rewardlab toy sample --out" in err
    assert not (tmp_path / "fresh").exists()


def test_one_process_per_run_directory(toy, cli, tmp_path):
    out = tmp_path / "run"
    with RunDir(out).lock():
        code, _, err = cli("toy", "run", "--out", out)
    assert code == 2 and f"in use by another rewardlab process (pid {os.getpid()})" in err
    # a process killed while holding the lock does not block the next one (an OS lock dies with its process)
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import os\nfrom rewardlab.core.runs import RunDir\nwith RunDir({str(out)!r}).lock(): os._exit(9)",
        ]
    )
    assert p.returncode == 9
    assert cli("toy", "run", "--out", out)[0] == 0


def test_run_directories_from_before_the_contract_are_upgraded_in_place(cli, tmp_path):
    """tests/data/legacy_runs.tar.xz: learned-rewards and irrl-skills runs (toy size) made by rewardlab before the
    study contract (commit 36d21b9): no run.json, `retrain.seeds` where the setting is now `retrain.n_seeds`."""
    with tarfile.open(DATA / "legacy_runs.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    lr = tmp_path / "learned-rewards"
    assert not (lr / "run.json").exists() and "  seeds: 1" in (lr / "config.yaml").read_text()
    before = tree_hash(lr)
    code, stdout, _ = cli("learned-rewards", "status", "--out", lr)  # read-only: says what it finds
    assert code == 0 and "made before the study contract" in stdout and stdout.count("upgraded from") == 5
    assert tree_hash(lr) == before
    mtimes = {p: p.stat().st_mtime_ns for p in lr.rglob("*.zip")}
    code, stdout, _ = cli("learned-rewards", "run", "--out", lr)
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in lr.rglob("*.zip")} == mtimes  # every finished step reused
    rec = json.loads((lr / "run.json").read_text())
    assert rec["study"] == "learned-rewards" and "upgraded" in rec
    assert yaml.safe_load((lr / "config.yaml").read_text())["retrain"]["n_seeds"] == 1
    code, _, err = cli("learned-rewards", "retrain", "--out", lr, "retrain.n_seeds=2")
    assert code == 2 and "retrain.n_seeds: 1 there, 2 now" in err
    sk = tmp_path / "irrl-skills"
    assert cli("irrl-skills", "run", "--out", sk)[0] == 0
    assert json.loads((sk / "run.json").read_text())["steps"]["train"]["upgraded"] is True
    code, _, err = cli("irrl-skills", "status", "--out", lr)
    assert code == 2 and "holds a run of study 'learned-rewards'" in err


def test_sb3_zips_of_a_run_from_before_the_safe_format_convert_once_with_trust_pickle(cli, tmp_path):
    """The legacy run's expert is an SB3 zip: refused without --trust-pickle, converted once with it (the same
    policy), and read safely from then on."""
    import torch
    from stable_baselines3 import PPO

    with tarfile.open(DATA / "legacy_runs.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    lr = tmp_path / "learned-rewards"
    code, _, err = cli("learned-rewards", "dataset", "--redo", "--out", lr)
    assert code == 2 and "expert/model.zip' is a Stable-Baselines3 zip" in err and "--trust-pickle" in err
    assert not (lr / "expert" / "model.pt").exists()
    assert cli("learned-rewards", "dataset", "--redo", "--trust-pickle", "--out", lr)[0] == 0
    assert (lr / "expert" / "model.pt").is_file()
    from rewardlab.agents.ppo import load_ppo

    ours, theirs = load_ppo(lr / "expert" / "model.pt"), PPO.load(lr / "expert" / "model.zip", device="cpu")
    for (k, a), b in zip(theirs.policy.state_dict().items(), ours.policy.state_dict().values()):
        assert torch.equal(a, b), k
    assert cli("learned-rewards", "interpret", "--redo", "--out", lr)[0] == 0  # no trust needed any more


def test_print_config_shows_help_and_bounds_and_loads_back(cli, tmp_path):
    from rewardlab.config import to_dict

    for name, study in STUDIES.items():
        code, out, _ = cli(name, "print-config", "--preset", "paper")
        assert code == 0 and yaml.safe_load(out) == to_dict(study.resolve("paper")), name
    out = cli("learned-rewards", "print-config")[1]
    assert "seed: 0  # master seed; every step derives its seeds from it [>= 0]" in out
    assert "  gamma: 0.97  # discount factor [0.0 to 1.0]" in out
    assert "loss_reduction: sum  # MSE reduction" in out and "[one of sum, mean]" in out
    (tmp_path / "mine.yaml").write_text(out)  # the printed config is a preset file
    assert cli("learned-rewards", "print-config", "--preset", tmp_path / "mine.yaml")[1] == out


def test_the_front_door_imports_no_torch_numba_or_sb3():
    heavy = ("torch", "numba", "stable_baselines3")
    for args in (
        ["--help"],
        ["learned-rewards", "--help"],
        ["ptgm", "rl", "--help"],
        ["irrl-skills", "status", "--help"],
    ):
        p = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "rewardlab", *args], capture_output=True, text=True
        )
        assert p.returncode == 0 and "usage:" in p.stdout, args
        loaded = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if "|" in line}
        assert not loaded & set(heavy), (args, loaded & set(heavy))


def test_the_layers_hold():
    """Nothing below the CLI imports it; the job runner is the only process pool; no study is discovered by
    getattr."""
    src = Path(__file__).parents[1] / "src" / "rewardlab"
    for path in src.rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(src).as_posix()
        if rel not in ("cli.py", "__main__.py"):
            assert "rewardlab.cli" not in text, rel
        if rel != "core/jobs.py":
            assert "ProcessPoolExecutor" not in text and "multiprocessing" not in text, rel
    for study in STUDIES.values():
        assert study.steps and all(s.help for s in study.steps.values())
        assert list(study.steps)[-1] == "report"
