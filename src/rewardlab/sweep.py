"""Sweeps: a grid of settings times a list of seeds, each (setting, seed) its own run directory, run by the job
runner (`rewardlab.core.jobs`: a local process pool or Ray), resumable (finished runs are skipped), with failures
reported rather than fatal. A sweep receives a `Study`.

Layout of a sweep folder::

    DIR/sweep.json                     the study, preset, grid, seeds and every run's status
    DIR/<setting>/seed<k>/             a normal run directory (config.yaml, summary.json, figures/, ...)
    DIR/<setting>/seed<k>/status.json  finished | failed (with the error) | running, and the seconds it took
    DIR/aggregate.json, DIR/figures/   statistics over seeds (`rewardlab.stats`), written by `aggregate`
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

from rewardlab.core.jobs import Job, check_backend, run_jobs
from rewardlab.core.runs import read_json, write_json
from rewardlab.core.study import Study
from rewardlab.errors import RewardLabError


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


def expand(
    study: Study,
    preset: str,
    grid: dict[str, list[str]],
    seeds: Sequence[int],
    out: str | Path,
    base: Sequence[str] = (),
) -> list[Job]:
    """Every (setting, seed) of the grid as a Job, in a stable order."""
    import itertools

    keys = list(grid)
    jobs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        name = setting_name({k: v for k, v in values.items() if len(grid[k]) > 1})  # fixed keys do not name it
        for s in seeds:
            over = [*base, *(f"{k}={v}" for k, v in values.items()), study.seed_override(s)]
            jobs.append(Job(study.name, preset, name, int(s), over, str(Path(out) / name / f"seed{s}")))
    return jobs


def run_study_job(job: Job) -> None:
    """Run one sweep job in this process: open its run directory with its preset and overrides, run every step."""
    from rewardlab.core.runs import set_torch_threads
    from rewardlab.core.study import StudyRun
    from rewardlab.studies import get_study

    set_torch_threads(1)
    redo = bool(job.extra.get("redo", False))
    trust = bool(job.extra.get("trust_pickle", False))
    with StudyRun.open(get_study(job.study), job.out, job.preset, job.overrides, trust_pickle=trust) as sr:
        sr.run_all(redo=redo)


def sweep(
    study: Study,
    out: str | Path,
    preset: str = "fast",
    seeds: str | Sequence[int] = "0",
    grid: Sequence[str] = (),
    base: Sequence[str] = (),
    backend: str = "local",
    workers: int = 0,
    address: str | None = None,
    redo: bool = False,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
    trust_pickle: bool = False,
) -> dict[str, Any]:
    """Expand and run a sweep of `study`, then aggregate it. Returns the aggregate (with `dry_run`, the planned jobs:
    nothing is written). An invalid setting is an error before any run directory is made."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RewardLabError(f"'{out}' exists and is not a directory; choose another --out")
    check_backend(backend, workers)
    seed_list = parse_seeds(seeds)
    g = parse_grid(grid)
    jobs = expand(study, preset, g, seed_list, out, base)
    for j in jobs:
        j.extra["redo"] = redo
        j.extra["trust_pickle"] = trust_pickle
    for name in dict.fromkeys(j.setting for j in jobs):  # check each setting once, before any worker starts
        j = next(j for j in jobs if j.setting == name)
        try:
            study.resolve(preset, j.overrides)
        except RewardLabError as e:
            what = "the sweep's settings are" if name == "base" else f"setting {name} is"
            raise RewardLabError(f"{what} invalid: {e}") from None
    manifest = out / "sweep.json"
    spec = {"study": study.name, "preset": preset, "grid": g, "seeds": seed_list, "base": list(base)}
    if manifest.is_file() and not redo:
        old = read_json(manifest)
        if {k: old.get(k) for k in spec} != spec:
            raise RewardLabError(
                f"'{out}' holds a different sweep ({old.get('study')}, grid {old.get('grid')}, "
                f"seeds {old.get('seeds')}); use another --out, or --redo"
            )
    if dry_run:
        from rewardlab.core.jobs import job_status

        echo(f"dry run of a sweep of {study.name} in '{out}' ({backend}): nothing is written")
        for j in jobs:
            state = job_status(j)["status"]
            echo(
                f"  {j.setting}/seed{j.seed}: "
                + (
                    "skip (finished)"
                    if state == "finished" and not redo
                    else f"run with {' '.join(j.overrides) or 'the preset'}"
                )
            )
        return {"jobs": [j.out for j in jobs]}
    out.mkdir(parents=True, exist_ok=True)
    write_json(manifest, {**spec, "runs": []})
    run_jobs(
        jobs, run_study_job, backend=backend, workers=workers, address=address, redo=redo, manifest=manifest, echo=echo
    )
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
    result = {
        "study": manifest["study"],
        "preset": manifest["preset"],
        "grid": manifest["grid"],
        "seeds": manifest["seeds"],
        "status": status,
        "settings": table,
        "statistics": "mean, median and IQM over seeds with stratified bootstrap 95% intervals "
        f"({reps} resamples; Agarwal et al. 2021)",
    }
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
    """One figure per learning curve the study declares (its `curves`: metrics.csv glob in a run, tag, title), each
    (setting, variant) a line with its bootstrap band over seeds."""
    import numpy as np

    from rewardlab.core.runs import read_metrics
    from rewardlab.interpret.plots import mean_spread, plt, save_figure
    from rewardlab.studies import get_study

    curves = get_study(manifest["study"]).curves
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
            mean_spread(
                ax,
                series[0][0][:n],
                np.stack([y[:n] for _, y in series]),
                label,
                color=f"C{gi % 10}",
                spread="bootstrap",
            )
        ax.set_xlabel("step")
        ax.set_ylabel(tag.format(seed="").rstrip("/"))
        ax.set_title(f"{title}\n(mean, 95% bootstrap CI over seeds)", fontsize=10)
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, out / "figures" / f"curve{i}_{re.sub(r'[^A-Za-z0-9]+', '_', title).strip('_')}"))
    return paths


def task_scores(out: Path, manifest: dict[str, Any], data: dict[str, Any], reps: int) -> tuple[dict, list[Path]]:
    """For studies that score several tasks per run (their `task_scores`: flattened-summary patterns with one '*' for
    the task): IQM over runs and tasks with stratified bootstrap intervals, and a performance profile figure."""
    import fnmatch

    import numpy as np

    from rewardlab.interpret.plots import plt, profile_plot, save_figure
    from rewardlab.stats import performance_profile, summarize
    from rewardlab.studies import get_study

    result: dict[str, Any] = {}
    paths = []
    for pattern in get_study(manifest["study"]).task_scores:
        per: dict[str, np.ndarray] = {}
        for setting, runs in data["runs"].items():
            seeds = sorted(runs)
            tasks = sorted(set.intersection(*(set(fnmatch.filter(runs[s], pattern)) for s in seeds)))
            if tasks:
                per[setting] = np.array([[runs[s][t] for t in tasks] for s in seeds])
                result.setdefault(pattern, {})[setting] = {**summarize(per[setting], reps=reps), "tasks": tasks}
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
