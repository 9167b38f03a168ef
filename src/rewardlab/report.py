"""`rewardlab report DIR`: one static HTML page over any run directory, sweep folder, or folder holding several:
each study's figures, its summary numbers beside the paper's where the study has them, the configs, and the status
of every run. No server: the page and its images open from disk (image paths are relative to the page)."""

from __future__ import annotations

import fnmatch
import html
import os
import time
from pathlib import Path
from typing import Any

from rewardlab.core.runs import read_json, write_text
from rewardlab.errors import RewardLabError
from rewardlab.sweep import aggregate, flatten_numbers

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;
color:#1d1d1f;background:#fff}
h1{border-bottom:2px solid #345;padding-bottom:.3em}h2{margin-top:2em;color:#234}h3{color:#345}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ccd;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#eef2f7}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.finished{color:#175e1f;font-weight:600}.failed{color:#a11;font-weight:600}.running,.pending,.interrupted{color:#a60}
figure{display:inline-block;margin:.5em;max-width:48%;vertical-align:top}
figure img{max-width:100%;border:1px solid #dde}
figcaption{font-size:.8em;color:#555}pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.8em}
nav a{margin-right:1em}.muted{color:#666;font-size:.9em}
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _study_of(run: Path) -> str | None:
    """A run's study (its run.json, else what older runs record; see `rewardlab.studies.study_of_run`)."""
    from rewardlab.studies import study_of_run

    study = study_of_run(run)
    return study.name if study else None


def _paper(study: str | None, summary: dict[str, Any], config: dict[str, Any]) -> dict[str, tuple[float, str]]:
    from rewardlab.studies import STUDIES

    if study not in STUDIES:
        return {}
    return STUDIES[study].paper_numbers(summary, config)


def _effect(run: Path) -> Any:
    """The paper's effect measured on a run (its study's `effect` hook), or None."""
    from rewardlab.studies import STUDIES

    study = _study_of(run)
    if study not in STUDIES or not (run / "summary.json").is_file():
        return None
    return STUDIES[study].effect(read_json(run / "summary.json"), _config(run))


def _overview(runs: list[Path], root: Path) -> str:
    """One row per run whose study declares its paper's effect: the effect, our number, the paper's, and whether ours
    agrees with the paper's direction; then what to look at in each."""
    rows, looks = [], []
    for r in runs:
        eff = _effect(r)
        if eff is None:
            continue
        title = r.relative_to(root).as_posix() if r != root else root.name
        css = {True: "finished", False: "failed", None: "pending"}[eff.holds]
        rows.append(
            f"<tr><td><a href='#{html.escape(title)}'>{html.escape(title)}</a></td><td>{html.escape(eff.effect)}</td>"
            f"<td>{html.escape(eff.ours)}</td><td>{html.escape(eff.paper)}</td>"
            f"<td class='{css}'>{eff.verdict}</td></tr>"
        )
        looks.append(f"<li><b>{html.escape(title)}</b>: {html.escape(eff.look)}</li>")
    if not rows:
        return ""
    return (
        "<h2 id='overview'>Overview</h2><table><tr><th>run</th><th>the paper's effect</th><th>ours</th>"
        "<th>paper</th><th>agrees with the paper</th></tr>" + "".join(rows) + "</table>"
        "<p class='muted'>What to look at:</p><ul>" + "".join(looks) + "</ul>"
    )


def _paper_for(key: str, paper: dict[str, tuple[float, str]]) -> tuple[float, str] | None:
    for pat, val in paper.items():
        if fnmatch.fnmatch(key, pat):
            return val
    return None


def _config(run: Path) -> dict[str, Any]:
    import yaml

    p = run / "config.yaml"
    try:
        return yaml.safe_load(p.read_text()) or {} if p.is_file() else {}
    except yaml.YAMLError:
        return {}


def _figures(folder: Path, page: Path) -> str:
    figs = sorted((folder / "figures").glob("*.png")) if (folder / "figures").is_dir() else []
    if not figs:
        return "<p class='muted'>No figures.</p>"
    return "".join(
        f"<figure><a href='{html.escape(os.path.relpath(f, page.parent))}'><img loading='eager' "
        f"src='{html.escape(os.path.relpath(f, page.parent))}' alt='{html.escape(f.stem)}'></a>"
        f"<figcaption>{html.escape(f.stem)}</figcaption></figure>"
        for f in figs
    )


def _status_of(run: Path) -> str:
    st = run / "status.json"
    if st.is_file():
        try:
            return str(read_json(st).get("status", "unknown"))
        except RewardLabError:
            return "unreadable"
    if (run / "summary.json").is_file() and _study_of(run):
        return "finished"
    return "incomplete"


def _run_section(run: Path, page: Path, title: str) -> str:
    study = _study_of(run)
    summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    config = _config(run)
    paper = _paper(study, summary, config)
    flat = flatten_numbers(summary)
    steps = sorted(p.parent.relative_to(run).as_posix() for p in run.rglob("result.json"))
    status = _status_of(run)
    out = [
        f"<h2 id='{html.escape(title)}'>{html.escape(title)}</h2>",
        f"<p>Study <b>{html.escape(study or 'unknown')}</b> · status <span class='{status}'>{status}</span> · "
        f"finished steps: {html.escape(', '.join(steps) or 'none')}</p>",
    ]
    if flat:
        has_paper = any(_paper_for(k, paper) for k in flat)
        out.append(
            "<table><tr><th>figure</th><th>value</th>"
            + ("<th>paper</th><th>source</th>" if has_paper else "")
            + "</tr>"
        )
        for k, v in flat.items():
            row = f"<tr><td>{html.escape(k)}</td><td class='num'>{_fmt(v)}</td>"
            if has_paper:
                p = _paper_for(k, paper)
                row += f"<td class='num'>{_fmt(p[0])}</td><td>{html.escape(p[1])}</td>" if p else "<td></td><td></td>"
            out.append(row + "</tr>")
        out.append("</table>")
        if not paper:
            out.append(
                "<p class='muted'>The paper gives no number to compare with here (docs/originals.md lists what "
                "each paper reports).</p>"
            )
    out.append(_figures(run, page))
    if (run / "report.md").is_file():
        out.append(f"<p><a href='{html.escape(os.path.relpath(run / 'report.md', page.parent))}'>report.md</a></p>")
    if (run / "config.yaml").is_file():
        out.append(
            f"<details><summary>config</summary><pre>{html.escape((run / 'config.yaml').read_text())}</pre></details>"
        )
    return "\n".join(out)


def _sweep_section(folder: Path, page: Path, title: str) -> str:
    agg = aggregate(folder)
    manifest = read_json(folder / "sweep.json")
    out = [
        f"<h2 id='{html.escape(title)}'>{html.escape(title)} (sweep)</h2>",
        f"<p>Study <b>{html.escape(agg['study'])}</b>, preset <b>{html.escape(agg['preset'])}</b>, seeds "
        f"{html.escape(', '.join(map(str, agg['seeds'])))}, grid {html.escape(str(agg['grid']) or '{}')}. "
        f"Runs: {html.escape(', '.join(f'{v} {k}' for k, v in agg['status'].items()))}. "
        f"<span class='muted'>{html.escape(agg['statistics'])}</span></p>",
    ]
    first = next(
        (folder / r["setting"] / f"seed{r['seed']}" for r in manifest["runs"] if r.get("status") == "finished"), None
    )
    paper = {}
    if first is not None:
        summary = read_json(first / "summary.json") if (first / "summary.json").is_file() else {}
        paper = _paper(agg["study"], summary, _config(first))
    for setting, d in agg["settings"].items():
        figs = d["figures"]
        if not figs:
            continue
        has_paper = any(_paper_for(k, paper) for k in figs)
        out.append(
            f"<h3>{html.escape(setting)}: {len(d['seeds'])} seeds</h3><table><tr><th>figure</th><th>mean</th>"
            "<th>95% CI</th><th>IQM</th><th>95% CI</th><th>per seed</th>"
            + ("<th>paper</th>" if has_paper else "")
            + "</tr>"
        )
        for k, s in figs.items():
            row = (
                f"<tr><td>{html.escape(k)}</td><td class='num'>{_fmt(s['mean'])}</td>"
                f"<td class='num'>[{_fmt(s['mean_ci_low'])}, {_fmt(s['mean_ci_high'])}]</td>"
                f"<td class='num'>{_fmt(s['iqm'])}</td>"
                f"<td class='num'>[{_fmt(s['iqm_ci_low'])}, {_fmt(s['iqm_ci_high'])}]</td>"
                f"<td class='num'>{', '.join(_fmt(v) for v in s['values'])}</td>"
            )
            if has_paper:
                p = _paper_for(k, paper)
                row += f"<td class='num' title='{html.escape(p[1])}'>{_fmt(p[0])}</td>" if p else "<td></td>"
            out.append(row + "</tr>")
        out.append("</table>")
    for pattern, by in agg.get("task_scores", {}).items():
        out.append(
            f"<h3>Across tasks: {html.escape(pattern)}</h3><table><tr><th>setting</th><th>runs x tasks</th>"
            "<th>IQM</th><th>95% stratified bootstrap CI</th><th>mean</th></tr>"
        )
        for setting, s in by.items():
            out.append(
                f"<tr><td>{html.escape(setting)}</td><td>{s['runs']} x {s['tasks'] and len(s['tasks'])}</td>"
                f"<td class='num'>{_fmt(s['iqm'])}</td><td class='num'>[{_fmt(s['iqm_ci_low'])}, "
                f"{_fmt(s['iqm_ci_high'])}]</td><td class='num'>{_fmt(s['mean'])}</td></tr>"
            )
        out.append("</table>")
    out.append(_figures(folder, page))
    out.append(
        "<h3>Runs</h3><table><tr><th>setting</th><th>seed</th><th>status</th><th>seconds</th><th>error</th>"
        "<th>figures</th></tr>"
    )
    for r in manifest["runs"]:
        run = folder / r["setting"] / f"seed{r['seed']}"
        st = r.get("status", "pending")
        n_figs = len(list((run / "figures").glob("*.png"))) if (run / "figures").is_dir() else 0
        link = (
            f"<a href='{html.escape(os.path.relpath(run / 'report.md', page.parent))}'>report.md</a> ({n_figs} figures)"
            if (run / "report.md").is_file()
            else ""
        )
        out.append(
            f"<tr><td>{html.escape(r['setting'])}</td><td>{r['seed']}</td><td class='{st}'>{st}</td>"
            f"<td class='num'>{_fmt(r.get('seconds', ''))}</td><td>{html.escape(r.get('error', ''))}</td>"
            f"<td>{link}</td></tr>"
        )
    out.append("</table>")
    if first is not None:
        out.append(
            f"<details><summary>config of {html.escape(str(first.relative_to(folder)))} (the others differ "
            f"by their setting and seed)</summary><pre>{html.escape((first / 'config.yaml').read_text())}"
            "</pre></details>"
        )
    return "\n".join(out)


def find_items(root: Path) -> tuple[list[Path], list[Path]]:
    """(sweep folders, run directories not inside a sweep) under root, root included. A job manifest inside a run
    (ptgm's `rl/sweep.json`) is part of that run, not a sweep."""

    def in_run(folder: Path) -> bool:
        return any((p / "config.yaml").is_file() for p in [folder, *folder.parents] if root in [p, *p.parents])

    sweeps = sorted(p.parent for p in root.rglob("sweep.json") if not in_run(p.parent))
    if (root / "sweep.json").is_file() and root in sweeps:
        sweeps = [root] + [s for s in sweeps if s != root]
    runs = []
    for cfg in sorted(root.rglob("config.yaml"), key=lambda p: (len(p.parts), str(p))):  # parents first
        run = cfg.parent
        if any(run == s or s in run.parents for s in sweeps):
            continue
        if any(r in run.parents for r in runs):  # a study's nested folders are part of its run
            continue
        runs.append(run)
    return sweeps, runs


def _damaged(path: Path, problem: str) -> RewardLabError:
    return RewardLabError(
        f"cannot report on '{path}': {problem}; restore it, or report on a folder that leaves its run out"
    )


def check_items(sweeps: list[Path], runs: list[Path]) -> None:
    """Every file the report reads must be what rewardlab wrote: one clear error for the first that is not."""
    from rewardlab.core.files import file_problem

    def check(path: Path) -> None:
        if path.exists():
            problem = file_problem(path)
            if problem:
                raise _damaged(path, problem)

    for r in runs:
        check(r / "config.yaml")
        check(r / "summary.json")
    for s in sweeps:
        manifest = s / "sweep.json"
        check(manifest)
        data = read_json(manifest)
        entries = data.get("runs")
        keys = ("study", "preset", "grid", "seeds")
        if not isinstance(entries, list) or any(k not in data for k in keys):
            raise _damaged(manifest, "it is not a sweep manifest (study, preset, grid, seeds and runs)")
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("setting"), str) or not isinstance(e.get("seed"), int):
                raise _damaged(manifest, f"its runs entry {str(e)[:60]!r} has no setting and seed")
            if e.get("status") != "finished":  # a failed run is reported with its error, whatever its files hold
                continue
            check(s / e["setting"] / f"seed{e['seed']}" / "summary.json")
            check(s / e["setting"] / f"seed{e['seed']}" / "config.yaml")


def write_report(root: str | os.PathLike, output: str | os.PathLike | None = None, dry_run: bool = False) -> Path:
    """Write the HTML report over `root` (default `root/report.html`) and return its path (with `dry_run`, only
    say what it would cover)."""
    root = Path(root)
    if not root.is_dir():
        raise RewardLabError(f"'{root}' is not a folder; give a run directory or a sweep folder")
    page = Path(output) if output else root / "report.html"
    if page.is_dir():
        raise RewardLabError(f"--output '{page}' is a folder; give the HTML file to write, e.g. {page / 'report.html'}")
    sweeps, runs = find_items(root)
    if not sweeps and not runs:
        raise RewardLabError(f"'{root}' holds no run (config.yaml) or sweep (sweep.json); run a study there first")
    check_items(sweeps, runs)
    if dry_run:
        for s in sweeps:
            print(f"  sweep {s}")
        for r in runs:
            print(f"  run   {r} ({_study_of(r) or 'unknown study'})")
        return page
    sections, nav = [], []
    for s in sweeps:
        title = s.relative_to(root).as_posix() if s != root else root.name
        sections.append(_sweep_section(s, page, title))
        nav.append(title)
    for r in runs:
        title = r.relative_to(root).as_posix() if r != root else root.name
        sections.append(_run_section(r, page, title))
        nav.append(title)
    overview = _overview(runs, root)
    if overview:
        nav.insert(0, "overview")
    body = (
        "<nav>"
        + "".join(f"<a href='#{html.escape(t)}'>{html.escape(t)}</a>" for t in nav)
        + "</nav>"
        + overview
        + "\n".join(sections)
    )
    doc = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>rewardlab report: "
        f"{html.escape(root.name)}</title><style>{CSS}</style></head><body>"
        f"<h1>rewardlab report: {html.escape(root.resolve().name)}</h1>"
        f"<p class='muted'>{len(sweeps)} sweeps, {len(runs)} runs · written "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime())} by <code>rewardlab report</code></p>"
        f"{body}</body></html>\n"
    )
    page.parent.mkdir(parents=True, exist_ok=True)
    write_text(page, doc)
    return page
