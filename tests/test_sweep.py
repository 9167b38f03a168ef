"""Sweeps: grid and seed parsing, local and Ray backends giving the same runs, resume after a kill, failed runs
reported while the others finish. The runs are real irrl-skills runs at toy size (a few seconds each)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SWEEP_GRID, damage_sweep
from conftest import SWEEP_TINY as TINY

from rewardlab.cli import _seed_request, main
from rewardlab.errors import RewardLabError
from rewardlab.studies import STUDIES
from rewardlab.sweep import expand, flatten_numbers, parse_grid, parse_seeds

REQUIRE = os.environ.get("REWARDLAB_REQUIRE_EXTRAS") == "1"


def test_parse_seeds_and_grid():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0-2,7,9") == [0, 1, 2, 7, 9]
    assert parse_seeds("[1, 4]") == [1, 4] and parse_seeds(5) == [5]
    for bad in ["3-1", "a", "1,1", ""]:
        with pytest.raises(RewardLabError):
            parse_seeds(bad)
    g = parse_grid(["rl.lr=0.001,0.0003", "reward=[a,b],[c]", "k=10"])
    assert g == {"rl.lr": ["0.001", "0.0003"], "reward": ["[a,b]", "[c]"], "k": ["10"]}
    for bad in [["lr"], ["lr="], ["seed=1,2"], ["a=1", "a=2"], ["a=1,1"]]:
        with pytest.raises(RewardLabError):
            parse_grid(bad)


def test_expand_names_runs_by_what_varies():
    jobs = expand(STUDIES["irrl-skills"], "fast", parse_grid(["learner.lr=0.004,0.01", "iterations=10"]), [0, 1], "/x")
    assert [(j.setting, j.seed) for j in jobs] == [
        ("learner.lr=0.004", 0),
        ("learner.lr=0.004", 1),
        ("learner.lr=0.01", 0),
        ("learner.lr=0.01", 1),
    ]
    assert jobs[1].overrides == ["learner.lr=0.004", "iterations=10", "seeds=[1]"]
    assert jobs[3].out == "/x/learner.lr=0.01/seed1"
    assert expand(STUDIES["irrl-skills"], "fast", {}, [2], "/x")[0].setting == "base"


def test_one_seed_mechanism_for_every_study():
    assert STUDIES["learned-rewards"].seed_override(3) == "seed=3"
    assert STUDIES["irrl-digits"].seed_override(3) == "seed=3"
    assert STUDIES["ptgm"].seed_override(3) == "seeds=[3]"
    assert {s.seed_field for s in STUDIES.values()} == {"seed", "seeds"}
    # `run ... seeds=0-2`: a seed sweep for single-seed studies; the list itself for studies that batch seeds
    assert _seed_request(STUDIES["learned-rewards"], ["seeds=0-2", "gamma=0.9"]) == ([0, 1, 2], ["gamma=0.9"])
    assert _seed_request(STUDIES["ptgm"], ["seeds=0-2", "x=1"]) == (None, ["x=1", "seeds=[0,1,2]"])
    assert _seed_request(STUDIES["ptgm"], ["x=1"]) == (None, ["x=1"])


def test_flatten_drops_the_runs_own_seed_level():
    s = {"final": {"a": {"3": 1.5}, "b": {"3": 2}}, "flag": True, "name": "x", "n": 4}
    assert flatten_numbers(s, seed=3) == {"final.a": 1.5, "final.b": 2.0, "n": 4.0}
    assert flatten_numbers(s) == {"final.a.3": 1.5, "final.b.3": 2.0, "n": 4.0}


def _sweep(out, *extra):
    damage_sweep(out)
    return main(["sweep", "irrl-skills", *TINY, SWEEP_GRID, "--seeds", "0-1", "--out", str(out), *extra])


@pytest.fixture
def local_sweep(sweep_run):
    return sweep_run


def _finished(out: Path) -> set:
    return {
        (r["setting"], r["seed"])
        for r in json.loads((out / "sweep.json").read_text())["runs"]
        if r["status"] == "finished"
    }


@pytest.mark.slow
def test_local_sweep_reports_failures_and_finishes_the_rest(local_sweep):
    runs = json.loads((local_sweep / "sweep.json").read_text())["runs"]
    assert len(runs) == 4
    failed = [r for r in runs if r["status"] == "failed"]
    assert {(r["setting"], r["seed"]) for r in failed} == {("learner.lr=0.01", 0), ("learner.lr=0.01", 1)}
    assert all("config.yaml" in r["error"] for r in failed)
    assert _finished(local_sweep) == {("learner.lr=0.004", 0), ("learner.lr=0.004", 1)}
    for s in (0, 1):
        run = local_sweep / "learner.lr=0.004" / f"seed{s}"
        assert json.loads((run / "status.json").read_text())["status"] == "finished"
        assert "seeds: [%d]" % s in (run / "config.yaml").read_text()
    agg = json.loads((local_sweep / "aggregate.json").read_text())
    fig = agg["settings"]["learner.lr=0.004"]["figures"]["final_effective_skills.linear_clipping"]
    assert fig["runs"] == 2 and len(fig["values"]) == 2
    assert fig["mean_ci_low"] <= fig["mean"] <= fig["mean_ci_high"]
    assert agg["status"] == {"finished": 2, "failed": 2}
    assert (local_sweep / agg["figures"][0]).is_file()
    # seeds give different runs
    a, b = fig["values"]
    assert a != b


@pytest.mark.slow
def test_ray_backend_gives_the_same_runs(local_sweep, tmp_path):
    if not REQUIRE:
        pytest.importorskip("ray")
    out = tmp_path / "ray"
    assert _sweep(out, "--backend", "ray", "--workers", "2") == 1
    assert _finished(out) == _finished(local_sweep)

    def files(root):
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "tb" not in p.parts)

    assert files(out) == files(local_sweep)
    for setting, seed in _finished(out):
        a = flatten_numbers(json.loads((out / setting / f"seed{seed}" / "summary.json").read_text()))
        b = flatten_numbers(json.loads((local_sweep / setting / f"seed{seed}" / "summary.json").read_text()))
        timing = [k for k in a if "second" in k]
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}


@pytest.mark.slow
def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path, capsys):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "rewardlab",
        "sweep",
        "irrl-skills",
        *TINY,
        "--seeds",
        "0-3",
        "--workers",
        "1",
        "--out",
        str(out),
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            done = [s for s in out.glob("base/seed*/status.json") if '"finished"' in s.read_text()]
            if done:
                break
            assert p.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.2)
        assert done, "no run finished in time"
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    before = {s.parent.name: json.loads(s.read_text()) for s in out.glob("base/seed*/status.json")}
    finished_before = {k for k, v in before.items() if v["status"] == "finished"}
    assert 1 <= len(finished_before) < 4
    capsys.readouterr()
    assert main(cmd[3:]) == 0
    log = capsys.readouterr().out
    assert f"{len(finished_before)} already finished" in log
    for k in finished_before:  # untouched: same start time as before the kill
        assert json.loads((out / "base" / k / "status.json").read_text())["started"] == before[k]["started"]
    assert _finished(out) == {("base", s) for s in range(4)}


def test_bad_sweep_inputs(tmp_path, capsys):
    assert main(["sweep", "irrl-skills", "--seeds", "2-1", "--out", str(tmp_path / "a")]) == 2
    assert "backwards" in capsys.readouterr().err
    assert main(["sweep", "irrl-skills", "lr", "--out", str(tmp_path / "b")]) == 2
    assert "key=value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "no-such-study", "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit):
        main(["sweep", "irrl-skills", "--backend", "slurm", "--out", str(tmp_path / "d")])


@pytest.mark.slow
def test_run_with_seeds_is_a_seed_sweep(tmp_path):
    """`<study> run ... seeds=0-1` on a single-seed study: one run per seed through the sweep, then the aggregate."""
    out = tmp_path / "pp"
    assert (
        main(
            [
                "preprocessing",
                "run",
                "--out",
                str(out),
                "tabular.mazes=[EmptyMaze4]",
                "tabular.learned_mazes=[]",
                "mountain_car.enabled=false",
                "preprocess.tabular_steps=500",
                "seeds=0-1",
            ]
        )
        == 0
    )
    for s in (0, 1):
        assert f"seed: {s}\n" in (out / "base" / f"seed{s}" / "config.yaml").read_text()
    agg = json.loads((out / "aggregate.json").read_text())
    assert agg["study"] == "preprocessing" and agg["seeds"] == [0, 1] and agg["status"] == {"finished": 2}
    figs = agg["settings"]["base"]["figures"]
    assert figs and all(f["runs"] == 2 for f in figs.values())


def test_aggregate_across_tasks_and_performance_profile(tmp_path):
    """A study with one score per task (learned-rewards: a maze per task) gets IQM over runs x tasks and a
    performance profile. The summaries are written by hand here: this tests the aggregation, not the study."""
    import numpy as np
    from scipy.stats import trim_mean

    from rewardlab.core.runs import write_json
    from rewardlab.sweep import aggregate

    scores = np.array([[0.2, 0.9, 0.5], [0.4, 1.0, 0.3], [0.1, 0.8, 0.6], [0.3, 0.7, 0.2]])
    mazes = ["EmptyMaze-10x10-CoinFlipGoal", "EmptyMaze-10x10-FixedGoal", "EmptyMaze-10x10-TwoGoals"]
    runs = []
    for s, row in enumerate(scores):
        write_json(
            tmp_path / "base" / f"seed{s}" / "summary.json",
            {"study": "learned-rewards", "retrain": {m: {"learned": v, "true": 1.0} for m, v in zip(mazes, row)}},
        )
        runs.append({"setting": "base", "seed": s, "status": "finished"})
    write_json(
        tmp_path / "sweep.json",
        {"study": "learned-rewards", "preset": "fast", "grid": {}, "seeds": [0, 1, 2, 3], "base": [], "runs": runs},
    )
    agg = aggregate(tmp_path, reps=500)
    t = agg["task_scores"]["retrain.*.learned"]["base"]
    assert t["runs"] == 4 and t["tasks"] == [f"retrain.{m}.learned" for m in mazes]
    assert t["iqm"] == pytest.approx(trim_mean(scores.ravel(), 0.25))
    assert t["iqm_ci_low"] <= t["iqm"] <= t["iqm_ci_high"]
    assert any(f.startswith("figures/profile_") for f in agg["figures"])
    assert all((tmp_path / f).is_file() for f in agg["figures"])
    per_maze = agg["settings"]["base"]["figures"][f"retrain.{mazes[0]}.learned"]
    assert per_maze["values"] == list(scores[:, 0]) and per_maze["mean"] == pytest.approx(scores[:, 0].mean())
