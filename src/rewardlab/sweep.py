"""Sweeps: a grid of settings times a list of seeds, each (setting, seed) its own run directory, run on a local
process pool or on Ray, resumable (finished runs are skipped), with failures reported rather than fatal.

Layout of a sweep folder::

    DIR/sweep.json                     the study, preset, grid, seeds and every run's status
    DIR/<setting>/seed<k>/             a normal run directory (config.yaml, summary.json, figures/, ...)
    DIR/<setting>/seed<k>/status.json  finished | failed (with the error) | running, and the seconds it took
    DIR/aggregate.json, DIR/figures/   statistics over seeds (`rewardlab.stats`), written by `aggregate`
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from rewardlab.errors import RewardLabError
from rewardlab.runs import available_cores, read_json, write_json

BACKENDS = ("local", "ray")


@dataclass
class Job:
    """One run of a sweep: a study at one setting and one seed, in its own directory."""

    study: str
    preset: str
    setting: str
    seed: int
    overrides: list[str]
    out: str
    extra: dict[str, Any] = field(default_factory=dict)


def parse_seeds(text: str | int | Sequence[int]) -> list[int]:
    """'0-9', '0,3,7', '0-4,10', '5', or a list: the distinct seeds, in order."""
    if isinstance(text, int):
        return [text]
    if not isinstance(text, str):
        items = [int(s) for s in text]
    else:
        items = []
        for part in text.strip().strip("[]").split(","):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                if b < a:
                    raise RewardLabError(f"seed range '{part}' runs backwards; write it low-high, e.g. 0-9")
                items += list(range(a, b + 1))
            elif re.fullmatch(r"\d+", part):
                items.append(int(part))
            else:
                raise RewardLabError(f"cannot read seeds '{text}'; use e.g. 0-9, 0,3,7 or 0-4,10")
    if not items:
        raise RewardLabError("no seeds given; use e.g. --seeds 0-4")
    if len(set(items)) != len(items):
        raise RewardLabError(f"seeds repeat in '{text}'")
    return items


def _split_values(text: str) -> list[str]:
    """'a,b,[1,2]' -> ['a', 'b', '[1,2]']: commas inside brackets belong to the value."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{("
        depth -= ch in "]})"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [v.strip() for v in out]


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """['lr=1e-3,1e-4', 'k=10'] -> {'lr': ['1e-3', '1e-4'], 'k': ['10']}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise RewardLabError(f"cannot read '{item}'; write a setting as key=value or key=v1,v2,...")
        if key in ("seed", "seeds"):
            raise RewardLabError(f"give seeds with --seeds, not as '{item}'")
        if key in grid:
            raise RewardLabError(f"'{key}' is given twice")
        vals = _split_values(values)
        if any(not v for v in vals) or len(set(vals)) != len(vals):
            raise RewardLabError(f"'{item}': values must be non-empty and distinct")
        grid[key] = vals
    return grid


def setting_name(values: dict[str, str]) -> str:
    """A folder name for one point of the grid ('base' when nothing varies)."""
    if not values:
        return "base"
    name = ",".join(f"{k}={v}" for k, v in values.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)


def seed_field(config_cls: type) -> str:
    """A study config's seed setting: 'seed' (one seed per run) or 'seeds' (seeds batched inside one run)."""
    names = {f.name for f in fields(config_cls)}
    for name in ("seed", "seeds"):
        if name in names:
            return name
    raise RewardLabError(f"config {config_cls.__name__} has no seed setting")


def seed_override(study: str, seed: int) -> str:
    """The override that makes one run of `study` use `seed`: its `seed` field, or `seeds=[seed]` for the studies
    that batch seeds inside one run."""
    from rewardlab.cli import _study

    return f"seed={seed}" if seed_field(_study(study).CONFIG) == "seed" else f"seeds=[{seed}]"


def expand(study: str, preset: str, grid: dict[str, list[str]], seeds: Sequence[int], out: str | Path,
           base: Sequence[str] = ()) -> list[Job]:
    """Every (setting, seed) of the grid as a Job, in a stable order."""
    import itertools

    keys = list(grid)
    jobs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        name = setting_name({k: v for k, v in values.items() if len(grid[k]) > 1})  # fixed keys do not name it
        for s in seeds:
            over = [*base, *(f"{k}={v}" for k, v in values.items()), seed_override(study, s)]
            jobs.append(Job(study, preset, name, int(s), over, str(Path(out) / name / f"seed{s}")))
    return jobs


def job_status(job: Job) -> dict[str, Any]:
    """The run's status.json, or {'status': 'pending'}."""
    p = Path(job.out) / "status.json"
    if p.is_file():
        try:
            return read_json(p)
        except RewardLabError:
            pass
    return {"status": "pending"}


def run_study_job(job: Job) -> dict[str, Any]:
    """Run one study job in this process: resolve its config, run every step, record the outcome in status.json.
    Any error is caught and recorded; the caller gets the status either way."""
    from rewardlab.cli import _study
    from rewardlab.config import resolve
    from rewardlab.runs import RunDir, set_torch_threads

    set_torch_threads(1)
    return _recorded(job, lambda: _run_study(job, _study, resolve, RunDir))


def _run_study(job: Job, _study: Callable, resolve: Callable, RunDir: type) -> None:
    study = _study(job.study)
    cfg = resolve(study.CONFIG, study.NAME, job.preset, job.overrides)
    redo = bool(job.extra.get("redo", False))
    run = RunDir(job.out)
    run.save_config(cfg, check_compatible=not redo)
    study.run_all(cfg, run, redo=redo)


def _recorded(job: Job, body: Callable[[], Any]) -> dict[str, Any]:
    """Run body() with status.json written before (running) and after (finished or failed)."""
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    base = {"setting": job.setting, "seed": job.seed, "host": socket.gethostname(), "pid": os.getpid(),
            "started": t0}
    write_json(out / "status.json", {**base, "status": "running"})
    try:
        body()
        status = {**base, "status": "finished", "seconds": time.time() - t0}
    except KeyboardInterrupt:
        write_json(out / "status.json", {**base, "status": "interrupted", "seconds": time.time() - t0})
        raise
    except BaseException as e:  # a failing run is recorded, never fatal to the sweep
        msg = str(e) if isinstance(e, RewardLabError) else f"{type(e).__name__}: {e}"
        (out / "error.txt").write_text(traceback.format_exc())
        status = {**base, "status": "failed", "error": msg, "seconds": time.time() - t0}
    write_json(out / "status.json", status)
    return status


def _local(jobs: list[Job], fn: Callable[[Job], dict], workers: int, on_done: Callable) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(fn, j): j for j in jobs}
        for f in as_completed(futures):
            job = futures[f]
            try:
                on_done(job, f.result())
            except BrokenProcessPool as e:  # a worker died (killed, out of memory): the run is failed
                on_done(job, {"status": "failed", "error": f"worker process died: {e}"})


def _ray(jobs: list[Job], fn: Callable[[Job], dict], workers: int, address: str | None, on_done: Callable) -> None:
    try:
        import ray
    except ImportError as e:
        raise RewardLabError("the ray backend needs Ray: pip install 'rewardlab[ray]'") from e
    started = not ray.is_initialized()
    if started:
        path = os.pathsep.join(os.path.abspath(p or ".") for p in sys.path)
        env = {"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
        kw: dict[str, Any] = {"runtime_env": env, "log_to_driver": False, "include_dashboard": False,
                              "ignore_reinit_error": True}
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=workers, **kw)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        refs = {remote.remote(j): j for j in jobs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            job = refs[done[0]]
            try:
                on_done(job, ray.get(done[0]))
            except Exception as e:  # the worker itself failed (killed, out of memory)
                on_done(job, {"status": "failed", "error": f"ray task failed: {type(e).__name__}: {e}"})
    finally:
        if started:
            ray.shutdown()


def run_jobs(jobs: Sequence[Job], fn: Callable[[Job], dict] = run_study_job, backend: str = "local",
             workers: int = 0, address: str | None = None, redo: bool = False, manifest: Path | None = None,
             echo: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Run every job not yet finished (all of them if `redo`); returns {run dir: status}. `fn` runs one job in a
    worker and must be importable (a module-level function). A failed run is reported and the others go on."""
    if backend not in BACKENDS:
        raise RewardLabError(f"unknown backend '{backend}'; choose from {', '.join(BACKENDS)}")
    if workers < 0:
        raise RewardLabError(f"workers must be >= 0 (0: one per core), got {workers}")
    statuses = {j.out: job_status(j) for j in jobs}
    todo = [j for j in jobs if redo or statuses[j.out].get("status") != "finished"]
    skipped = len(jobs) - len(todo)
    echo(f"sweep: {len(jobs)} runs, {skipped} already finished, {len(todo)} to run ({backend})")

    def save() -> None:
        if manifest is not None:
            data = read_json(manifest) if manifest.is_file() else {}
            data["runs"] = [{**{k: v for k, v in asdict(j).items() if k != "extra"}, **statuses[j.out]}
                            for j in jobs]
            write_json(manifest, data)

    def on_done(job: Job, status: dict) -> None:
        statuses[job.out] = status
        line = f"  {status['status']:>8}  {job.setting}/seed{job.seed}  ({status.get('seconds', 0):.1f} s)"
        if status["status"] == "failed":
            line += f": {status.get('error', '')}"
        echo(line)
        save()

    save()
    if todo:
        n = min(workers or available_cores(), len(todo))
        if backend == "local":
            _local(todo, fn, n, on_done)
        else:
            _ray(todo, fn, n, address, on_done)
    failed = [j for j in jobs if statuses[j.out].get("status") != "finished"]
    echo(f"sweep: {len(jobs) - len(failed)} of {len(jobs)} runs finished"
         + (f"; {len(failed)} failed: " + ", ".join(f"{j.setting}/seed{j.seed}" for j in failed) if failed else ""))
    return statuses


def sweep(study: str, out: str | Path, preset: str = "fast", seeds: str | Sequence[int] = "0",
          grid: Sequence[str] = (), base: Sequence[str] = (), backend: str = "local", workers: int = 0,
          address: str | None = None, redo: bool = False, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Expand and run a sweep of `study`, then aggregate it. Returns the aggregate."""
    from rewardlab.cli import _study
    from rewardlab.config import resolve

    out = Path(out)
    seed_list = parse_seeds(seeds)
    g = parse_grid(grid)
    jobs = expand(study, preset, g, seed_list, out, base)
    for j in jobs:
        j.extra["redo"] = redo
    st = _study(study)
    for name in dict.fromkeys(j.setting for j in jobs):  # check each setting once, before any worker starts
        j = next(j for j in jobs if j.setting == name)
        try:
            resolve(st.CONFIG, st.NAME, preset, j.overrides)
        except RewardLabError as e:
            echo(f"  setting {name} is invalid, its runs will fail: {e}")
    manifest = out / "sweep.json"
    spec = {"study": study, "preset": preset, "grid": g, "seeds": seed_list, "base": list(base)}
    if manifest.is_file() and not redo:
        old = read_json(manifest)
        if {k: old.get(k) for k in spec} != spec:
            raise RewardLabError(f"'{out}' holds a different sweep ({old.get('study')}, grid {old.get('grid')}, "
                                 f"seeds {old.get('seeds')}); use another --out, or --redo")
    out.mkdir(parents=True, exist_ok=True)
    write_json(manifest, {**spec, "runs": []})
    run_jobs(jobs, backend=backend, workers=workers, address=address, redo=redo, manifest=manifest, echo=echo)
    return aggregate(out)


# ---------------------------------------------------------------------------------------------------------- stats


def flatten_numbers(d: Any, seed: int | None = None, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a summary as {'a.b': value}. A level keyed by the run's own seed alone (the per-seed tables
    of studies that batch seeds) is dropped, so the same key lines up across the runs of a sweep."""
    out: dict[str, float] = {}
    if isinstance(d, dict):
        if seed is not None and list(d) == [str(seed)]:
            return flatten_numbers(d[str(seed)], seed, prefix)
        for k, v in d.items():
            out.update(flatten_numbers(v, seed, f"{prefix}{k}."))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix.rstrip(".")] = float(d)
    return out


# timing figures vary from machine to machine and are not results
_SKIP = re.compile(r"(seconds|per_second|_time|wall)", re.I)


def collect(out: str | Path) -> dict[str, Any]:
    """The sweep's runs grouped by setting: {setting: {seed: flattened summary}} for finished runs."""
    out = Path(out)
    manifest = read_json(out / "sweep.json")
    by: dict[str, dict[int, dict[str, float]]] = {}
    for r in manifest["runs"]:
        if r.get("status") != "finished":
            continue
        summ = out / r["setting"] / f"seed{r['seed']}" / "summary.json"
        if summ.is_file():
            by.setdefault(r["setting"], {})[int(r["seed"])] = flatten_numbers(read_json(summ), int(r["seed"]))
    return {"manifest": manifest, "runs": by}


def aggregate(out: str | Path, reps: int = 2000) -> dict[str, Any]:
    """Mean, IQM and stratified bootstrap 95% intervals over the seeds of each setting, for every numeric summary
    figure; learning curves with interval bands; written to aggregate.json and figures/."""
    from rewardlab.stats import summarize

    out = Path(out)
    data = collect(out)
    manifest = data["manifest"]
    table: dict[str, dict[str, Any]] = {}
    for setting, runs in data["runs"].items():
        keys = sorted(set.intersection(*(set(v) for v in runs.values()))) if runs else []
        table[setting] = {"seeds": sorted(runs), "figures": {}}
        for k in keys:
            if _SKIP.search(k):
                continue
            vals = [runs[s][k] for s in sorted(runs)]
            table[setting]["figures"][k] = {**summarize(vals, reps=reps), "values": vals}
    status = {}
    for r in manifest["runs"]:
        status[r.get("status", "pending")] = status.get(r.get("status", "pending"), 0) + 1
    result = {"study": manifest["study"], "preset": manifest["preset"], "grid": manifest["grid"],
              "seeds": manifest["seeds"], "status": status, "settings": table,
              "statistics": "mean, median and IQM over seeds with stratified bootstrap 95% intervals "
                            f"({reps} resamples; Agarwal et al. 2021)"}
    figs = curve_figures(out, manifest)
    result["task_scores"], profiles = task_scores(out, manifest, data, reps)
    result["figures"] = [str(p.relative_to(out)) for p in figs + profiles]
    write_json(out / "aggregate.json", result)
    return result


def _variant(rel: Path, pattern: str) -> str:
    """The parts of a matched path that the glob's wildcards stand for, seed folders left out (e.g. the method)."""
    pat = Path(pattern).parts
    return "/".join(p for p, q in zip(rel.parts, pat) if p != q and not re.fullmatch(r"seed\d+", p))


def curve_figures(out: Path, manifest: dict[str, Any]) -> list[Path]:
    """One figure per learning curve the study declares (`CURVES`: (metrics.csv glob in a run, tag, title)), each
    (setting, variant) a line with its bootstrap band over seeds."""
    import numpy as np

    from rewardlab.cli import _study
    from rewardlab.interpret.plots import mean_spread, plt, save_figure
    from rewardlab.runs import read_metrics

    curves = getattr(_study(manifest["study"]), "CURVES", [])
    finished = [r for r in manifest["runs"] if r.get("status") == "finished"]
    paths = []
    for i, (pattern, tag, title) in enumerate(curves):
        groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for r in finished:
            run = out / r["setting"] / f"seed{r['seed']}"
            for csv in sorted(run.glob(pattern)):
                m = read_metrics(csv)
                key = tag.format(seed=r["seed"])
                if key in m and len(m[key][0]):
                    variant = _variant(csv.relative_to(run), pattern)
                    label = " ".join(x for x in (r["setting"] if r["setting"] != "base" else "", variant) if x)
                    groups.setdefault(label or "base", []).append(m[key])
        if not groups:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for gi, (label, series) in enumerate(groups.items()):
            n = min(len(x) for x, _ in series)
            mean_spread(ax, series[0][0][:n], np.stack([y[:n] for _, y in series]), label, color=f"C{gi % 10}",
                        spread="bootstrap")
        ax.set_xlabel("step")
        ax.set_ylabel(tag.format(seed="").rstrip("/"))
        ax.set_title(f"{title}\n(mean, 95% bootstrap CI over seeds)", fontsize=10)
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, out / "figures" / f"curve{i}_{re.sub(r'[^A-Za-z0-9]+', '_', title).strip('_')}"))
    return paths


def task_scores(out: Path, manifest: dict[str, Any], data: dict[str, Any], reps: int) -> tuple[dict, list[Path]]:
    """For studies that score several tasks per run (`TASK_SCORES`: flattened-summary patterns with one '*' for
    the task): IQM over runs and tasks with stratified bootstrap intervals, and a performance profile figure."""
    import fnmatch

    import numpy as np

    from rewardlab.cli import _study
    from rewardlab.interpret.plots import plt, profile_plot, save_figure
    from rewardlab.stats import performance_profile, summarize

    result: dict[str, Any] = {}
    paths = []
    for pattern in getattr(_study(manifest["study"]), "TASK_SCORES", []):
        per: dict[str, np.ndarray] = {}
        for setting, runs in data["runs"].items():
            seeds = sorted(runs)
            tasks = sorted(set.intersection(*(set(fnmatch.filter(runs[s], pattern)) for s in seeds)))
            if tasks:
                per[setting] = np.array([[runs[s][t] for t in tasks] for s in seeds])
                result.setdefault(pattern, {})[setting] = {
                    **summarize(per[setting], reps=reps), "tasks": tasks}
        if not per:
            continue
        allv = np.concatenate([v.ravel() for v in per.values()])
        taus = np.linspace(allv.min(), allv.max(), 60) if allv.max() > allv.min() else np.array([allv.min()])
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, (setting, x) in enumerate(per.items()):
            prof, lo, hi = performance_profile(x, taus, reps=reps)
            profile_plot(ax, taus, prof, lo, hi, f"{setting} ({x.shape[0]} seeds x {x.shape[1]} tasks)", f"C{i % 10}")
        ax.set_xlabel(f"score tau ({pattern})")
        ax.set_title("Performance profile (95% stratified bootstrap CI)", fontsize=10)
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, out / "figures" / f"profile_{re.sub(r'[^A-Za-z0-9]+', '_', pattern)}"))
    return result, paths
