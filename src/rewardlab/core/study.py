"""The study contract: what a study declares, and the one engine that runs its steps in a run directory.

A study is a `Study` object: its name, config dataclass, seed mode and paper, and its steps in order, each
declared with `@study.step(...)`: the config fields it uses, the steps it comes after, the folders it owns, the
command-line arguments it takes. The engine (`StudyRun`) owns what every step used to write by hand:

- **reuse**: a finished step (its `<folder>/result.json` exists) made with the same config is not run again;
- **fingerprints**: each step's record in `run.json` holds the values of the config fields it uses, together with
  those of the steps it comes after (and their arguments); a step whose values changed is *stale*: it is remade
  with `--redo`, or refused with one line that names the keys that changed, never silently mixed with the rest;
- **redo without loss**: `--redo` moves the step's old outputs aside and puts them back if the new attempt fails
  or is interrupted;
- **finishing**: the result is written atomically as `<folder>/result.json`, then the record, then `config.yaml`
  (the config the last successful step ran under);
- **one process per run directory**: an OS lock for the whole session (`RunDir.lock`).

Run directories made before this contract (no `run.json`) are upgraded in place the first time a command opens
them: their `config.yaml` is taken as the config that made every finished step.

Optional hooks have written defaults: learning `curves` and `task_scores` for sweeps (empty), `paper_numbers`
(none), `demo_overrides` (none) and `effect` (none: the paper's effect measured on a run, the row of the report's
overview); a study replaces the last three with `@study.hook`. `rewardlab demo` runs every study's `demo` preset
(its `demo.yaml`: the smallest settings that still show the paper's effect), which the study declares with the
seconds it takes (`demo_seconds`, measured), for the demo's estimate of the time left.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import typing
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

from rewardlab.core.files import a_format, file_problem, format_name
from rewardlab.core.runs import RunDir, read_json, write_json, write_text
from rewardlab.errors import RewardLabError

RECORD = "run.json"
HOOKS = ("paper_numbers", "demo_overrides", "effect")
FORMAT = 1
_MISSING = object()


class SeedMode(str, Enum):
    """How a study takes seeds: one per run (a `seed: int` setting; a sweep runs one run per seed), or several
    trained side by side in one run (a `seeds: list[int]` setting)."""

    PER_RUN = "per_run"
    BATCHED = "batched"


SEED_FIELDS = {SeedMode.PER_RUN: ("seed", int), SeedMode.BATCHED: ("seeds", list[int])}


@dataclass(frozen=True)
class Arg:
    """A command-line argument of one step (beside --out, --preset, --redo and overrides).

    adhoc: when given, the step runs on that input as a one-off (e.g. `test --ckpt PATH`): nothing is reused or
    recorded. replaces: when given, these earlier steps are not needed (e.g. `reward-model --dataset PATH`).
    An argument whose metavar is PATH names a file that is checked before the step starts (and by `--dry-run`):
    `check(path, cfg)` raises RewardLabError when the file is not what the step reads under the config."""

    flag: str
    help: str
    metavar: str = "PATH"
    adhoc: bool = False
    replaces: tuple[str, ...] = ()
    check: Callable[[str, Any], None] | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


class Effect(NamedTuple):
    """A paper's effect measured on a run: what the paper shows (`effect`), our figure (`ours`, formatted, with what
    it is), whether it agrees with the paper's direction (`holds`; None when the run lacks what it needs), the
    paper's figure with the budget it was reached at (`paper`), and one sentence on what to look at (`look`)."""

    effect: str
    ours: str
    holds: bool | None
    paper: str
    look: str

    @property
    def verdict(self) -> str:
        """The overview's word for `holds`: pass, FAIL or not measured."""
        return {True: "pass", False: "FAIL", None: "not measured"}[self.holds]


def figure(summary: dict[str, Any], key: str) -> float | None:
    """A number in a nested summary by dotted key (`a.b.c`), or None when absent or not a number."""
    v: Any = summary
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class Curve(NamedTuple):
    """A learning curve a sweep aggregates over seeds: metrics.csv files matching `pattern` in a run, the metric
    `tag` in them ({seed} stands for the run's seed), and the figure's title."""

    pattern: str
    tag: str
    title: str


@dataclass
class Step:
    """One declared step of a study (see `Study.step`)."""

    name: str
    fn: Callable[..., Any]
    uses: tuple[str, ...] | str
    after: tuple[str, ...] | Callable[[Any], Sequence[str]]
    outputs: tuple[str, ...]
    cached: bool
    applies: Callable[[Any], str | None] | None
    inputs: Callable[[Any], dict[str, str]] | None
    args: tuple[Arg, ...]
    reads: Callable[[Any], Sequence[str]] | tuple[str, ...] = ()
    check: Callable[[Any], None] | None = None

    @property
    def help(self) -> str:
        """The first line of the step function's docstring."""
        return (self.fn.__doc__ or self.name).strip().splitlines()[0]

    @property
    def folder(self) -> str:
        """The folder holding the step's result.json."""
        return self.outputs[0]

    def deps(self, cfg: Any, args: dict[str, Any]) -> list[str]:
        """The steps this one needs, under this config and these arguments."""
        after = list(self.after(cfg) if callable(self.after) else self.after)
        for a in self.args:
            if args.get(a.dest) is not None:
                after = [s for s in after if s not in a.replaces]
        return after


class Study:
    """A declared study. See the module docstring and docs/extending.md."""

    def __init__(
        self,
        name: str,
        config: type,
        seeds: SeedMode,
        paper: str,
        doc: str,
        *,
        curves: Sequence[Curve] = (),
        task_scores: Sequence[str] = (),
        ignore: Sequence[str] = ("device",),
        torch_threads: int | None = None,
        legacy_renames: dict[str, str] | None = None,
        presets: str | os.PathLike | None = None,
        demo_seconds: float = 60.0,
        needs: Callable[[], None] | None = None,
    ):
        """name: the CLI name; config: the config dataclass (presets in configs/<name>/); seeds: the seed mode;
        paper: the paper reproduced; doc: the study's description (its first line is the one-line help);
        curves, task_scores: what a sweep aggregates; ignore: dotted config keys that never change a result
        (devices, worker counts), left out of fingerprints; torch_threads: torch threads for the study's steps
        (None leaves torch alone); legacy_renames: config keys renamed since older run directories were made;
        presets: the folder of its preset YAML files (default: rewardlab/configs/<name with _ for ->/);
        demo_seconds: what its `demo` preset takes on 2 CPU cores (measured), for the demo's estimate of time left;
        needs: a check that raises RewardLabError (naming the install command) when this machine lacks an optional
        runtime the study needs; `rewardlab demo` then skips the study with that line."""
        self.name = name
        self.config = config
        self.seed_mode = SeedMode(seeds)
        self.paper = paper
        self.doc = doc.strip()
        self.curves = [Curve(*c) for c in curves]
        self.task_scores = list(task_scores)
        self.ignore = tuple(ignore)
        self.torch_threads = torch_threads
        self.legacy_renames = dict(legacy_renames or {})
        self.presets = Path(presets) if presets is not None else None
        self.demo_seconds = float(demo_seconds)
        self.needs = needs
        self.steps: dict[str, Step] = {}
        seed_name, seed_type = SEED_FIELDS[self.seed_mode]
        hints = typing.get_type_hints(config)
        if hints.get(seed_name) != seed_type:
            raise TypeError(
                f"study {name}: {self.seed_mode.value} seeds need a `{seed_name}: "
                f"{getattr(seed_type, '__name__', seed_type)}` field in {config.__name__}"
            )
        other = "seeds" if seed_name == "seed" else "seed"
        if other in hints:
            raise TypeError(f"study {name}: {config.__name__} has both `seed` and `seeds`; keep one")

    # ------------------------------------------------------------------------------------------------ declare
    def step(
        self,
        name: str,
        *,
        uses: Sequence[str] | str = (),
        after: Sequence[str] | Callable = (),
        outputs: Sequence[str] | None = None,
        cached: bool = True,
        applies: Callable[[Any], str | None] | None = None,
        inputs: Callable[[Any], dict[str, str]] | None = None,
        args: Sequence[Arg] = (),
        reads: Sequence[str] | Callable[[Any], Sequence[str]] = (),
        check: Callable[[Any], None] | None = None,
    ) -> Callable[[Callable], Callable]:
        """Declare the decorated function `fn(cfg, run, **args) -> dict` as the next step.

        uses: the config fields whose values the step's result depends on ('*' for all); after: the steps it
        needs (a list, or a function of the config); outputs: the folders it owns, its result.json in the
        first (default: its name with '_' for '-'); cached: False for steps rebuilt on every run (figures,
        reports); applies: a function of the config returning why the step does not apply (skipped by `run`),
        or None; inputs: a function of the config returning {setting: path} of files it reads from outside the
        run directory; args: its command-line arguments; reads: the files it reads from earlier steps (paths in
        the run directory, globs allowed; or a function of the config returning them): each is checked to read as
        its format before the step starts; check: a function of the config that raises RewardLabError when the
        step's inputs are not what it reads (a file's layout), called before the step starts."""

        def deco(fn: Callable) -> Callable:
            if name in self.steps:
                raise TypeError(f"study {self.name}: step '{name}' is declared twice")
            unknown = [a for a in ([] if callable(after) else after) if a not in self.steps]
            if unknown:
                raise TypeError(f"study {self.name}: step '{name}' comes after undeclared steps {unknown}")
            uncached = [a for a in ([] if callable(after) else after) if not self.steps[a].cached]
            if uncached:
                raise TypeError(f"study {self.name}: step '{name}' comes after {uncached}, which keep no result")
            known = {f.name for f in fields(self.config)}
            if uses != "*" and any(u not in known for u in uses):
                raise TypeError(
                    f"study {self.name}: step '{name}' uses unknown config fields {[u for u in uses if u not in known]}"
                )
            self.steps[name] = Step(
                name,
                fn,
                uses if uses == "*" else tuple(uses),
                after if callable(after) else tuple(after),
                tuple(outputs or (name.replace("-", "_"),)),
                cached,
                applies,
                inputs,
                tuple(args),
                reads if callable(reads) else tuple(reads),
                check,
            )
            return fn

        return deco

    def hook(self, fn: Callable) -> Callable:
        """Replace a default hook (`paper_numbers`, `demo_overrides`, `effect`) with the decorated function of that
        name."""
        if fn.__name__ not in HOOKS:
            raise TypeError(f"unknown study hook '{fn.__name__}'; hooks: {', '.join(HOOKS)}")
        setattr(self, fn.__name__, fn)
        return fn

    # ---------------------------------------------------------------------------------------- default hooks
    def paper_numbers(self, summary: dict[str, Any], config: dict[str, Any]) -> dict[str, tuple[float, str]]:
        """The paper's figures to show beside a run's summary: {summary key pattern: (value, source)}."""
        return {}

    def demo_overrides(self) -> list[str]:
        """Settings `rewardlab demo` adds to the `demo` preset on this machine."""
        return []

    def effect(self, summary: dict[str, Any], config: dict[str, Any]) -> Effect | None:
        """The paper's effect measured on a run (its summary and config), or None when the study declares none."""
        return None

    def resolve(self, preset: str | dict[str, Any], overrides: Sequence[str] = ()) -> Any:
        """The config of a preset name (or YAML file, or dict of settings) with key=value overrides applied."""
        from rewardlab.config import resolve

        return resolve(self.config, self.name, preset, overrides, self.presets)

    # ------------------------------------------------------------------------------------------------- seeds
    @property
    def seed_field(self) -> str:
        """The study's seed setting: 'seed' or 'seeds'."""
        return SEED_FIELDS[self.seed_mode][0]

    def seed_override(self, seed: int) -> str:
        """The override that makes one run use `seed`."""
        return f"seed={seed}" if self.seed_mode is SeedMode.PER_RUN else f"seeds=[{seed}]"

    @property
    def summary_line(self) -> str:
        return self.doc.splitlines()[0]

    def __repr__(self) -> str:
        return f"Study({self.name!r}, steps={list(self.steps)})"


# ------------------------------------------------------------------------------------------------ records
def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {'a.b': value}; lists stay values."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def fingerprint(signature: dict[str, Any]) -> str:
    """A short hash of a step's signature."""
    return hashlib.sha256(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_record(root: str | os.PathLike) -> dict[str, Any] | None:
    """A run directory's run.json, or None (a run made before the study contract, or not a run)."""
    path = Path(root) / RECORD
    if not path.is_file():
        return None
    rec = read_json(path)
    if not isinstance(rec, dict) or not isinstance(rec.get("steps"), dict):
        raise RewardLabError(f"'{path}' is not a rewardlab run record; restore it from a backup or use another --out")
    return rec


def _fmt_changes(changes: list[tuple[str, Any, Any]]) -> str:
    def val(v: Any) -> str:
        return "unset" if v is _MISSING else json.dumps(v, default=str)

    parts = [f"{k}: {val(a)} there, {val(b)} now" for k, a, b in changes[:4]]
    more = f"; and {len(changes) - 4} more" if len(changes) > 4 else ""
    return "; ".join(parts) + more


@dataclass
class RunState:
    """What a run directory holds, read without changing it."""

    kind: str  # new | current | legacy
    config: dict[str, Any] | None
    record: dict[str, Any]


def _load_yaml_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise RewardLabError(
            f"'{path}' is not valid YAML ({str(e).splitlines()[0]}); restore it or use another --out"
        ) from None
    if not isinstance(data, dict):
        raise RewardLabError(f"'{path}' is not a config (a mapping of settings); restore it or use another --out")
    return data


def rename_keys(config: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """Apply {old dotted key: new dotted key} renames to a nested config dict (in a copy)."""
    import copy

    config = copy.deepcopy(config)
    for old, new in renames.items():
        *path, last = old.split(".")
        node = config
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            value = node.pop(last)
            *npath, nlast = new.split(".")
            target = config
            for p in npath:
                target = target.setdefault(p, {})
            target[nlast] = value
    return config


def inspect_run(study: Study, root: Path) -> RunState:
    """Read a run directory's state (nothing is written)."""
    cfg_path = root / "config.yaml"
    record = read_record(root) if root.is_dir() else None
    summary = root / "summary.json"
    if summary.exists():
        fix = "restore it, or remake the steps with --redo"
        if not isinstance(read_json(summary, fix=fix), dict):
            raise RewardLabError(f"'{summary}' is not a run summary (a JSON mapping); {fix}")
    if record is not None:
        if record.get("study") != study.name:
            raise RewardLabError(
                f"'{root}' holds a run of study '{record.get('study')}', not {study.name}; use another --out"
            )
        return RunState("current", _load_yaml_config(cfg_path) if cfg_path.is_file() else None, record)
    if not cfg_path.is_file():
        return RunState("new", None, {"steps": {}})
    config = rename_keys(_load_yaml_config(cfg_path), study.legacy_renames)
    known = {f.name for f in fields(study.config)}
    if not set(config) <= known or study.seed_field not in config:
        raise RewardLabError(
            f"'{root}' holds a run that is not of study {study.name} (its config.yaml has "
            f"{', '.join(sorted(config))}); use another --out"
        )
    return RunState("legacy", config, {"steps": {}})


def resolve_config(study: Study, state: RunState, preset: str | None, overrides: Sequence[str]) -> Any:
    """The run's config: a preset (or YAML file) when given, else the run's saved config, else `fast`; then the
    overrides."""
    if preset is None and state.config is not None:
        return study.resolve(state.config, overrides)
    return study.resolve(preset or "fast", overrides)


class StudyRun:
    """A study's config applied to one run directory: plans, checks and runs its steps. Open it with
    `StudyRun.open(...)` as a context manager (it holds the directory's lock unless `dry_run`)."""

    def __init__(
        self, study: Study, cfg: Any, run: RunDir, state: RunState, dry_run: bool = False, config_source: str = ""
    ):
        from rewardlab.config import to_dict

        self.study, self.cfg, self.run, self.dry_run = study, cfg, run, dry_run
        self.config_source = config_source  # where the config came from, for messages
        self.state = state
        self.records: dict[str, dict[str, Any]] = state.record["steps"]
        self._defaults = flatten(to_dict(study.config()))
        self._current = flatten(json.loads(json.dumps(to_dict(cfg), default=str)))
        if state.kind == "legacy":  # every finished step was made with the saved config
            from rewardlab.config import from_dict

            old = StudyRun(study, from_dict(study.config, state.config), run, RunState("new", None, {"steps": {}}))
            for step in study.steps.values():
                if step.cached and old.finished(step):
                    sig = old.signature(step, {})
                    self.records[step.name] = {
                        "fingerprint": fingerprint(sig),
                        "config": sig,
                        "args": {},
                        "status": "finished",
                        "upgraded": True,
                    }

    def print_plan(self, plan: list[tuple[str, str]], what: str) -> None:
        """Print what a dry run of `what` would do, step by step (`plan` from `self.plan`)."""
        print(
            f"dry run of `{what}` in '{self.run.root}' ({self.state.kind} run directory, config from "
            f"{self.config_source}): nothing is written"
        )
        for name, action in plan:
            print(f"  {name:<14} {action}")

    @classmethod
    def open(
        cls,
        study: Study,
        out: str | os.PathLike,
        preset: str | None = None,
        overrides: Sequence[str] = (),
        *,
        dry_run: bool = False,
        trust_pickle: bool = False,
    ) -> "StudyRun":
        """Resolve the config for a run directory (upgrading a run made before the study contract, unless
        `dry_run`). `trust_pickle` lets its steps read (and convert once) files that run code when loaded: SB3 zips
        and pickles made elsewhere or by an older rewardlab."""
        run = RunDir(out, trust_pickle=trust_pickle)
        state = inspect_run(study, run.root)
        cfg = resolve_config(study, state, preset, overrides)
        source = (
            f"preset {preset}" if preset else "the run's config.yaml" if state.config is not None else "preset fast"
        )
        return cls(study, cfg, run, state, dry_run, source + (f" with {' '.join(overrides)}" if overrides else ""))

    # ---------------------------------------------------------------------------------------------- session
    def __enter__(self) -> "StudyRun":
        if self.dry_run:
            return self
        self._lock = self.run.lock()
        self._lock.__enter__()
        try:
            self._restore_interrupted_redos()
            if self.state.kind != "current":
                from rewardlab import __version__
                from rewardlab.config import dump_yaml, from_dict

                rec = {
                    "study": self.study.name,
                    "rewardlab_version": __version__,
                    "format": FORMAT,
                    "created": time.time(),
                    "steps": self.records,
                }
                if self.state.kind == "legacy":
                    rec["upgraded"] = {"from": "a run directory made before the study contract", "at": time.time()}
                    write_text(
                        self.run.root / "config.yaml", dump_yaml(from_dict(self.study.config, self.state.config))
                    )
                else:
                    write_text(self.run.root / "config.yaml", dump_yaml(self.cfg))
                self.state = RunState("current", self.state.config, rec)
                self._save()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.dry_run:
            self._lock.__exit__(*exc)

    def _save(self) -> None:
        self.state.record["steps"] = self.records
        write_json(self.run.root / RECORD, self.state.record)

    # ------------------------------------------------------------------------------------------ fingerprints
    def _own(self, step: Step, args: dict[str, Any]) -> dict[str, Any]:
        names = [f.name for f in fields(self.study.config)] if step.uses == "*" else list(step.uses)
        sig = {
            k: v
            for k, v in self._current.items()
            if k.split(".")[0] in names and not any(k == i or k.startswith(i + ".") for i in self.study.ignore)
        }
        for a in step.args:
            if not a.adhoc and args.get(a.dest) is not None:
                sig[f"{step.name} {a.flag}"] = str(args[a.dest])
        return sig

    def recorded_args(self, name: str) -> dict[str, Any]:
        return dict(self.records.get(name, {}).get("args", {}))

    def signature(self, step: Step, args: dict[str, Any]) -> dict[str, Any]:
        """The config values (and arguments) a step's result depends on, its earlier steps' included."""
        sig: dict[str, Any] = {}
        for dep in step.deps(self.cfg, args):
            sig.update(self.signature(self.study.steps[dep], self.recorded_args(dep)))
        sig.update(self._own(step, args))
        return sig

    def changes(self, step: Step, args: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """(key, value it was made with, value now) for every key that differs from the step's record."""
        rec = self.records.get(step.name)
        if rec is None:
            return []
        made, now = rec["config"], self.signature(step, args)
        out = []
        for k in sorted(set(made) | set(now)):
            a, b = made.get(k, _MISSING), now.get(k, _MISSING)
            if a is _MISSING and b == self._defaults.get(k, _MISSING):
                continue  # a setting added to rewardlab since the step was made, at its default
            if b is _MISSING and " --" not in k:
                continue  # a setting rewardlab no longer has
            if a != b:
                out.append((k, a, b))
        return out

    def finished(self, step: Step) -> bool:
        return (self.run.root / step.folder / "result.json").is_file()

    # ------------------------------------------------------------------------------------------------ checks
    def _cmd(self, step: str, redo: bool = False) -> str:
        return f"rewardlab {self.study.name} {step}{' --redo' if redo else ''} --out {self.run.root}"

    def check(self, step: Step, args: dict[str, Any], redo: bool, will_make: frozenset[str] = frozenset()) -> str:
        """What running the step now would do: reuse, run, resume or redo; a refusal raises RewardLabError."""
        reason = step.applies(self.cfg) if step.applies else None
        if reason:
            raise RewardLabError(f"step `{step.name}` does not apply to this config: {reason}")
        for dep in step.deps(self.cfg, args):
            if dep in will_make:
                continue
            up = self.study.steps[dep]
            if not self.finished(up):
                raise RewardLabError(
                    f"the `{dep}` step has not finished in '{self.run.root}'; run the `{dep}` step "
                    f"first ({self._cmd(dep)})"
                )
            ch = self.changes(up, self.recorded_args(dep))
            if ch:
                raise RewardLabError(
                    f"the `{dep}` step in '{self.run.root}' was made with a different config "
                    f"({_fmt_changes(ch)}); remake it first ({self._cmd(dep, True)} ...) or pass "
                    "--redo to `run`"
                )
        if not step.cached:
            return "run"
        if redo:
            return "redo"
        ch = self.changes(step, args)
        if self.finished(step):
            if ch:
                raise RewardLabError(
                    f"step `{step.name}` in '{self.run.root}' was made with a different config "
                    f"({_fmt_changes(ch)}); pass --redo to remake it (the steps after it then "
                    "need remaking too), or use another --out"
                )
            return "reuse"
        if ch:
            raise RewardLabError(
                f"'{self.run.root}' holds unfinished `{step.name}` work made with a different "
                f"config ({_fmt_changes(ch)}); rerun with the settings it was started with to "
                "resume it, pass --redo to discard it, or use another --out"
            )
        return "resume" if step.name in self.records or (self.run.root / step.folder).exists() else "run"

    def check_inputs(self, step: Step, args: dict[str, Any]) -> dict[str, str]:
        """The files the step reads from outside the run directory: each must exist and be readable."""
        files = dict(step.inputs(self.cfg)) if step.inputs else {}
        files.update({a.flag: args[a.dest] for a in step.args if a.metavar == "PATH" and args.get(a.dest)})
        for label, path in files.items():
            if not path:
                continue
            p = Path(path).expanduser()
            if not p.exists():
                raise RewardLabError(f"{label} '{path}' does not exist")
            if not os.access(p, os.R_OK) or (p.is_dir() and not os.access(p, os.X_OK)):
                raise RewardLabError(f"{label} '{path}' is not readable")
            if format_name(p) != "file":  # a named format: it must read as one
                problem = file_problem(p)
                if problem:
                    raise RewardLabError(
                        f"{label} '{path}' cannot be read as {a_format(p)}: {problem}; give another file"
                    )
        for a in step.args:
            if a.check is not None and args.get(a.dest):
                a.check(str(Path(args[a.dest]).expanduser()), self.cfg)
        if step.check is not None:
            step.check(self.cfg)
        return {k: v for k, v in files.items() if v}

    def _producer(self, path: str) -> str | None:
        """The step whose outputs hold a run-directory path."""
        top = Path(path).parts[0]
        return next((s.name for s in self.study.steps.values() if top in s.outputs), None)

    def check_reads(self, step: Step, args: dict[str, Any], will_make: frozenset[str] = frozenset()) -> list[Path]:
        """The files the step reads from earlier steps (its `reads`): each must read as its format. Those of steps
        about to be made (`will_make`) or replaced by an argument (e.g. `--dataset`) are not checked."""
        patterns = step.reads(self.cfg) if callable(step.reads) else step.reads
        replaced = {s for a in step.args if args.get(a.dest) is not None for s in a.replaces}
        checked = []
        for pattern in patterns:
            producer = self._producer(pattern)
            if producer in replaced or producer in will_make:
                continue
            paths = (
                sorted(self.run.root.glob(pattern)) if any(c in pattern for c in "*?[") else [self.run.root / pattern]
            )
            for p in paths:
                if not p.exists() and p.suffix == ".pt" and p.with_suffix(".zip").is_file():
                    continue  # an SB3 zip of an older run: its loader converts it (with --trust-pickle) or says why not
                problem = file_problem(p)
                if problem:
                    fix = (
                        f"remake it with `{self._cmd(producer, redo=True)}`"
                        if producer
                        else "restore it or remake this run"
                    )
                    raise RewardLabError(f"'{p}' cannot be read as {a_format(p)}: {problem}; {fix}")
                checked.append(p)
        return checked

    def plan(
        self,
        names: Sequence[str],
        args: dict[str, Any] | None = None,
        redo: bool = False,
        skip_inapplicable: bool = True,
    ) -> list[tuple[str, str]]:
        """(step, action) for the steps in order, as running them now would do; a refusal raises."""
        out, will_make = [], set()
        for name in names:
            step = self.study.steps[name]
            reason = step.applies(self.cfg) if step.applies else None
            if reason and skip_inapplicable:
                out.append((name, f"skip ({reason})"))
                continue
            a = self._args(step, args or {})
            if self._adhoc(step, a):
                self.check_inputs(step, a)
                out.append((name, "run (one-off, not recorded)"))
                continue
            action = self.check(step, a, redo, frozenset(will_make))
            if action != "reuse":
                self.check_inputs(step, a)
                self.check_reads(step, a, frozenset(will_make))
                will_make.add(name)
            out.append((name, action))
        return out

    # --------------------------------------------------------------------------------------------- execution
    def _args(self, step: Step, given: dict[str, Any]) -> dict[str, Any]:
        return {a.dest: given.get(a.dest) for a in step.args}

    def _adhoc(self, step: Step, args: dict[str, Any]) -> bool:
        return any(a.adhoc and args.get(a.dest) is not None for a in step.args)

    def execute(self, name: str, args: dict[str, Any] | None = None, redo: bool = False) -> Any:
        """Run one step (reusing, resuming or redoing it as `check` says) and return its result."""
        if self.dry_run:
            raise RuntimeError("a dry run executes nothing")
        step = self.study.steps[name]
        args = self._args(step, args or {})
        self._threads()
        if self._adhoc(step, args):  # a one-off on the given input: nothing reused or recorded
            self.check_inputs(step, args)
            self.check_reads(step, args)
            return step.fn(self.cfg, self.run, **args)
        action = self.check(step, args, redo)
        if action == "reuse":
            return self.run.step_result(step.folder)
        self.check_inputs(step, args)
        self.check_reads(step, args)
        if not step.cached:
            return step.fn(self.cfg, self.run, **args)
        sig = self.signature(step, args)
        previous = self.records.get(name)
        aside = self._move_aside(step) if action == "redo" else None
        self.records[name] = {
            "fingerprint": fingerprint(sig),
            "config": sig,
            "args": {k: str(v) for k, v in args.items() if v is not None},
            "status": "running",
            "started": time.time(),
            **({"previous": previous} if aside is not None else {}),
        }
        self._save()
        try:
            t0 = time.time()
            result = step.fn(self.cfg, self.run, **args)
            write_json(self.run.root / step.folder / "result.json", result if result is not None else {})
        except BaseException:
            if aside is not None:  # put the old result back as it was
                self._restore(step, aside)
            elif not any(p.is_file() for f in step.outputs for p in (self.run.root / f).rglob("*")):
                self.records.pop(name, None)  # nothing was made: no unfinished work to resume
                self._save()
            raise
        from rewardlab import __version__
        from rewardlab.config import dump_yaml

        self.records[name].pop("previous", None)
        self.records[name].update(
            status="finished", finished=time.time(), seconds=time.time() - t0, rewardlab_version=__version__
        )
        self._save()
        write_text(self.run.root / "config.yaml", dump_yaml(self.cfg))
        if aside is not None:
            self._discard(aside)
        return result

    def run_all(self, redo: bool = False) -> dict[str, Any]:
        """Every step in order (those that do not apply to the config skipped); finished steps are reused unless
        `redo`. Refusals (stale steps) are raised before anything runs."""
        names = list(self.study.steps)
        self.plan(names, redo=redo)
        t0 = time.time()
        for name in names:
            step = self.study.steps[name]
            if step.applies and step.applies(self.cfg):
                continue
            self.execute(name, redo=redo)
        return self.run.update_summary(study=self.study.name, last_run_seconds=time.time() - t0)

    def status(self) -> list[tuple[str, str, str]]:
        """(step, state, detail) for every step: done, stale (the keys that changed), partial (unfinished, resumes),
        missing, off (does not apply), or rebuilt (not cached: figures, reports)."""
        out = []
        for name, step in self.study.steps.items():
            reason = step.applies(self.cfg) if step.applies else None
            if reason:
                out.append((name, "off", reason))
                continue
            if not step.cached:
                out.append((name, "rebuilt", "made anew on every run"))
                continue
            rec = self.records.get(name, {})
            if not self.finished(step) and (self._aside_dir(step) / "outputs").is_dir():
                out.append(
                    (
                        name,
                        "aside",
                        "an interrupted --redo moved the finished result aside; the next command here puts it back",
                    )
                )
                continue
            ch = self.changes(step, self.recorded_args(name))
            if self.finished(step):
                out.append(
                    (name, "stale", _fmt_changes(ch))
                    if ch
                    else (
                        name,
                        "done",
                        f"fingerprint {rec.get('fingerprint', '?')}"
                        + (" (upgraded from an older run directory)" if rec.get("upgraded") else ""),
                    )
                )
            elif rec or (self.run.root / step.folder).exists():
                out.append((name, "partial", ("stale: " + _fmt_changes(ch)) if ch else "unfinished; resumes"))
            else:
                out.append((name, "missing", ""))
        return out

    def _threads(self) -> None:
        if self.study.torch_threads:
            from rewardlab.core.runs import set_torch_threads

            set_torch_threads(self.study.torch_threads)

    # ------------------------------------------------------------------------------------------ redo safely
    def _aside_dir(self, step: Step) -> Path:
        return self.run.root / ".redo" / step.name

    def _move_aside(self, step: Step) -> Path:
        """Move the step's outputs (and copies of summary.json and config.yaml) to .redo/<step>."""
        aside = self._aside_dir(step)
        if aside.exists():
            shutil.rmtree(aside)
        (aside / "_files").mkdir(parents=True)
        for f in ("summary.json", "config.yaml"):
            if (self.run.root / f).is_file():
                shutil.copy2(self.run.root / f, aside / "_files" / f)
        for folder in step.outputs:
            src = self.run.root / folder
            if src.exists():
                dst = aside / "outputs" / folder
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
        return aside

    def _restore(self, step: Step, aside: Path) -> None:
        """Put back what `_move_aside` moved, and the step's previous record."""
        for folder in step.outputs:
            new = self.run.root / folder
            if new.exists():
                shutil.rmtree(new)
            if (aside / "outputs" / folder).exists():
                new.parent.mkdir(parents=True, exist_ok=True)
                os.replace(aside / "outputs" / folder, new)
        for f in ("summary.json", "config.yaml"):
            if (aside / "_files" / f).is_file():
                with open(aside / "_files" / f) as fh:
                    write_text(self.run.root / f, fh.read())
        rec = self.records.get(step.name)
        if rec is not None and rec.get("status") == "running":
            if rec.get("previous") is None:
                self.records.pop(step.name)
            else:
                self.records[step.name] = rec["previous"]
            self._save()
        self._discard(aside)

    def _discard(self, aside: Path) -> None:
        shutil.rmtree(aside, ignore_errors=True)
        if aside.parent.is_dir() and not any(aside.parent.iterdir()):
            aside.parent.rmdir()

    def _restore_interrupted_redos(self) -> None:
        """A redo killed before it finished left the old outputs in .redo/<step>: put them back."""
        root = self.run.root / ".redo"
        if not root.is_dir():
            return
        for aside in root.iterdir():
            step = self.study.steps.get(aside.name)
            if step is not None and not self.finished(step):
                self._restore(step, aside)
            else:
                self._discard(aside)


__all__ = [
    "Arg",
    "Curve",
    "SeedMode",
    "Step",
    "Study",
    "StudyRun",
    "fingerprint",
    "flatten",
    "inspect_run",
    "read_record",
    "resolve_config",
]
