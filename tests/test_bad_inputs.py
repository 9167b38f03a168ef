"""Bad inputs generated from the study registry, run in-process on a copy of each study's finished run.

For every study: every config field gets wrong-type, NaN and empty values and, where it has bounds, values just
outside them; every file a step declares it reads (`reads=`), and the run's own config.yaml, run.json and
summary.json, gets truncated, random-bytes and wrong-kind versions. Each case must exit with code 2 and one line on
stderr (no traceback), and leave the run directory as it was (a hash of every file but the lock, before and after).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
import time
import typing
from pathlib import Path

import numpy as np
import pytest

from rewardlab.config import to_dict
from rewardlab.core.study import StudyRun
from rewardlab.studies import STUDIES

RUNS = {
    "learned-rewards": "fast_run",
    "preprocessing": "preprocessing_run",
    "irrl-digits": "irrl_digits_run",
    "irrl-skills": "irrl_skills_run",
    "ptgm": "ptgm_run",
    "atari": "atari_run",
    "coinrun": "coinrun_run",
}


def tree_hash(root: Path) -> str:
    """Every file's path and bytes (the lock file aside)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def tree_stamp(root: Path) -> str:
    """Every path with its inode, size and modification time (the lock file aside): any write, even of the same
    bytes, changes it; cheap enough to take around each of the many cases (the content hash brackets them all)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.name != ".lock":
            st = p.stat()
            h.update(f"{p.relative_to(root)} {st.st_ino} {st.st_size} {st.st_mtime_ns}".encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------ config cases
def _leaves(cls: type, prefix: str = "") -> typing.Iterator[tuple[str, dataclasses.Field, typing.Any]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = prefix + f.name
        if dataclasses.is_dataclass(tp):
            yield key, f, tp
            yield from _leaves(tp, key + ".")
        else:
            yield key, f, tp


def _base(tp: typing.Any) -> typing.Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType) and args else tp


def config_cases(study) -> list[str]:
    """Overrides every one of which the config must refuse."""
    cases = []
    for key, f, tp in _leaves(study.config):
        tp = _base(tp)
        origin = typing.get_origin(tp)
        meta = f.metadata
        if dataclasses.is_dataclass(tp):
            cases += [f"{key}=3", f"{key}=[1, 2]", f"{key}=abc"]
            continue
        if origin is list or tp is list:
            cases += [f"{key}={{a: 1}}", f"{key}=[1, [2]]" if _base(typing.get_args(tp)[0]) is str else f"{key}=[abc]"]
            if not meta.get("empty_ok"):
                cases.append(f"{key}=[]")
            item = _base(typing.get_args(tp)[0]) if typing.get_args(tp) else None
            if item in (int, float):
                cases.append(f"{key}=[.nan]")
                cases += _range_cases(key, meta, item, wrap=True)
            continue
        if tp is bool:
            cases += [f"{key}=maybe", f"{key}=[true]", f"{key}=3"]
        elif tp in (int, float):
            cases += [f"{key}=abc", f"{key}=[1]", f"{key}={{a: 1}}", f"{key}=.nan", f"{key}=", f"{key}=null"]
            if tp is int:
                cases.append(f"{key}=1.5")
            cases += _range_cases(key, meta, tp)
        elif tp is str:
            cases += [f"{key}=[a]", f"{key}={{a: 1}}"]
            if meta.get("choices"):
                cases += [f"{key}=", f"{key}=not-a-choice"]
    return cases


def _range_cases(key: str, meta: typing.Mapping, tp: type, wrap: bool = False) -> list[str]:
    vals = []
    lo, hi, gt = meta.get("min"), meta.get("max"), meta.get("gt")
    step = 1 if tp is int else 1e-6
    if lo is not None:
        vals.append(lo - step if tp is int else lo - max(abs(lo), 1) * 1e-3)
    if gt is not None:
        vals.append(gt)
    if hi is not None and not (isinstance(hi, float) and math.isinf(hi)):
        vals.append(hi + step if tp is int else hi + max(abs(hi), 1) * 1e-3)
    return [f"{key}=[{v!r}]" if wrap else f"{key}={v!r}" for v in vals]


# -------------------------------------------------------------------------------------------------- file cases
def _random_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=max(n, 64), dtype=np.uint8).tobytes()


def _wrong_kind(run: Path, path: Path) -> bytes:
    """A valid file of another format from the same run (an npz where a checkpoint belongs, and so on)."""
    for suffix in (".npz", ".pt", ".h5", ".hdf5", ".json", ".yaml", ".csv"):
        if suffix == path.suffix:
            continue
        other = next((p for p in sorted(run.rglob(f"*{suffix}")) if p.is_file() and p.name != ".lock"), None)
        if other is not None:
            return other.read_bytes()
    raise AssertionError("no file of another format in the run")


def file_cases(study, run: Path) -> list[tuple[list[str], Path, str, bytes]]:
    """(command, file, how, bytes): each file a step reads, damaged three ways, with the command that reads it."""
    with StudyRun.open(study, run, dry_run=True) as sr:
        cases = []
        targets: list[tuple[list[str], Path]] = []
        for step in study.steps.values():
            if step.applies and step.applies(sr.cfg):
                continue
            for p in sr.check_reads(step, {}):
                targets.append(([step.name] + (["--redo"] if step.cached else []), p))
        for name in ("config.yaml", "run.json", "summary.json"):
            targets.append((["run"], run / name))
    seen = set()
    for cmd, p in targets:
        if (tuple(cmd), p) in seen:
            continue
        seen.add((tuple(cmd), p))
        data = p.read_bytes()
        cases += [
            (cmd, p, "truncated", data[: len(data) // 2]),
            (cmd, p, "random bytes", _random_bytes(len(data), len(cases))),
            (cmd, p, "wrong kind", _wrong_kind(run, p)),
        ]
        if p.suffix in (".json", ".yaml"):
            cases.append((cmd, p, "a bare number", b"3\n"))
    return cases


def _check(cli, args: list, root: Path, what: str) -> None:
    before = tree_stamp(root)
    code, _, err = cli(*args)
    assert code == 2, f"{what}: exit code {code}, stderr {err!r}"
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, f"{what}: {err!r}"
    assert err.startswith("rewardlab: error: "), f"{what}: {err!r}"
    assert tree_stamp(root) == before, f"{what}: the run directory changed"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_every_bad_input_is_one_line_and_changes_nothing(name, request, cli, tmp_path):
    study = STUDIES[name]
    run = tmp_path / "run"
    shutil.copytree(request.getfixturevalue(RUNS[name]), run)
    content = tree_hash(run)
    t0 = time.perf_counter()
    n = 0
    for override in config_cases(study):
        _check(cli, [name, "run", "--out", run, override], run, f"{name} {override}")
        n += 1
    for cmd, path, how, data in file_cases(study, run):
        original = path.read_bytes()
        path.write_bytes(data)
        try:
            _check(cli, [name, *cmd, "--out", run], run, f"{name} {' '.join(cmd)} with {how} {path.relative_to(run)}")
        finally:
            path.write_bytes(original)
        n += 1
    assert tree_hash(run) == content
    print(f"{name}: {n} bad inputs refused in {time.perf_counter() - t0:.1f} s")
    assert n > 100


def test_generated_cases_cover_every_field_and_read_file():
    """The generator reaches every config leaf (so a new field gets cases without editing this file)."""
    for study in STUDIES.values():
        leaves = {k for k, f, tp in _leaves(study.config)}
        covered = {c.split("=", 1)[0] for c in config_cases(study)}
        assert leaves == covered, study.name
        assert to_dict(study.resolve("fast"))


# ------------------------------------------------------------------------------- the examples, one by one
def _one_line(code: int, err: str) -> bool:
    return code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [["foo.bar=1,2"], ["iterations=abc,xyz"], ["--preset", "turbo"], ["learner.lr=0.004,-1"], ["reward=[]"]],
)
def test_sweep_with_an_invalid_setting_exits_2_before_any_run_directory(cli, tmp_path, args):
    out = tmp_path / "sweep"
    code, _, err = cli("sweep", "irrl-skills", *args, "--seeds", "0-1", "--out", out)
    assert _one_line(code, err), err
    assert not out.exists()


def test_report_over_hand_edited_garbage_is_one_line(cli, irrl_skills_run, sweep_run, tmp_path):
    cases = [
        ("run", "config.yaml", _random_bytes(300, 1)),
        ("run", "config.yaml", b"3\n"),
        ("run", "summary.json", b"[1, 2]"),
        ("sweep", "sweep.json", b'{"study": "irrl-skills"}'),
        ("sweep", "sweep.json", b'{"study": "irrl-skills", "preset": "fast", "grid": {}, "seeds": [0], "runs": [3]}'),
        ("sweep", "learner.lr=0.004/seed0/summary.json", b"not json"),
    ]
    for i, (kind, name, data) in enumerate(cases):
        root = tmp_path / f"c{i}"
        shutil.copytree(irrl_skills_run if kind == "run" else sweep_run, root)
        (root / name).write_bytes(data)
        code, _, err = cli("report", root)
        assert _one_line(code, err) and name.split("/")[-1] in err, (name, err)
        assert not (root / "report.html").exists()


def test_file_system_refusals_are_one_line(cli, tmp_path, monkeypatch):
    code, _, err = cli("irrl-skills", "run", "--out", "/sys/rewardlab-test", *SKILLS_TINY)
    assert _one_line(code, err) and "/sys/rewardlab-test" in err, err  # a folder nobody may write to, root included
    (tmp_path / "file").write_text("x")
    code, _, err = cli("irrl-skills", "run", "--out", tmp_path / "file", *SKILLS_TINY)
    assert _one_line(code, err) and "is not a directory" in err, err
    code, _, err = cli("irrl-skills", "run", "--out", tmp_path / "file" / "run", *SKILLS_TINY)
    assert _one_line(code, err), err
    code, _, err = cli("report", tmp_path, "--output", tmp_path)
    assert _one_line(code, err) and "is a folder" in err, err

    import errno
    import os

    real = os.replace

    def full_disk(src, dst, *a, **k):
        if str(dst).endswith("state.npz"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", full_disk)
    code, _, err = cli("irrl-skills", "run", "--out", tmp_path / "full", *SKILLS_TINY)
    assert _one_line(code, err) and "No space left on device" in err and "free some space" in err, err


SKILLS_TINY = ["reward=[linear_clipping]", "iterations=2000", "eval_every=1000", "seeds=[0]"]


def test_an_expert_trained_on_another_environment_is_refused(cli, fast_run, preprocessing_run, tmp_path):
    maze, car = tmp_path / "maze", tmp_path / "car"
    shutil.copytree(fast_run, maze)
    shutil.copytree(preprocessing_run, car)
    maze_expert = (maze / "expert" / "model.pt").read_bytes()
    (maze / "expert" / "model.pt").write_bytes((car / "mountain_car" / "expert" / "model.pt").read_bytes())
    before = tree_hash(maze)
    code, _, err = cli("learned-rewards", "dataset", "--redo", "--out", maze)
    assert _one_line(code, err) and "another environment" in err, err
    assert tree_hash(maze) == before
    # the reverse: a maze expert where the unfinished mountain-car step resumes from its expert
    (car / "mountain_car" / "result.json").unlink()
    (car / "mountain_car" / "expert" / "model.pt").write_bytes(maze_expert)
    code, _, err = cli("preprocessing", "mountain-car", "--out", car)
    assert _one_line(code, err) and "another environment" in err, err


def test_a_users_file_gets_no_advice_to_delete_it(cli, fast_run, ptgm_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fast_run, run)
    bad = tmp_path / "mine.h5"
    bad.write_bytes(_random_bytes(2000, 3))
    for given, expect in [
        (bad, "cannot be read as an HDF5 file"),
        (tmp_path, "is a directory"),
        (ptgm_run / "data" / "dataset.hdf5", "not a rewardlab transition dataset"),  # HDF5 of another layout
    ]:
        before = tree_hash(run)
        code, _, err = cli("learned-rewards", "reward-model", "--redo", "--dataset", given, "--out", run)
        assert _one_line(code, err) and expect in err, err
        assert "delete" not in err and "does not exist" not in err
        assert tree_hash(run) == before
    # the ptgm data step given an HDF5 of another layout (a transition dataset) as its D4RL source
    code, _, err = cli("ptgm", "data", "--out", tmp_path / "p", f"data.source={run / 'dataset' / 'transitions.h5'}")
    assert _one_line(code, err) and "delete" not in err, err
    assert not (tmp_path / "p").exists()
