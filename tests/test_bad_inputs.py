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
}
COUNTS: dict[str, int] = {}


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
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
            targets.append((["status"], run / name))
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
    before = tree_hash(root)
    code, _, err = cli(*args)
    assert code == 2, f"{what}: exit code {code}, stderr {err!r}"
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, f"{what}: {err!r}"
    assert err.startswith("rewardlab: error: "), f"{what}: {err!r}"
    assert tree_hash(root) == before, f"{what}: the run directory changed"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_every_bad_input_is_one_line_and_changes_nothing(name, request, cli, tmp_path):
    study = STUDIES[name]
    run = tmp_path / "run"
    shutil.copytree(request.getfixturevalue(RUNS[name]), run)
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
    COUNTS[name] = n
    print(f"{name}: {n} bad inputs refused")
    assert n > 20


def test_generated_cases_cover_every_field_and_read_file():
    """The generator reaches every config leaf (so a new field gets cases without editing this file)."""
    for study in STUDIES.values():
        leaves = {k for k, f, tp in _leaves(study.config)}
        covered = {c.split("=", 1)[0] for c in config_cases(study)}
        assert leaves == covered, study.name
        assert to_dict(study.resolve("fast"))
