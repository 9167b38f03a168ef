"""`rewardlab demo`: every study's miniature (its `demo` preset) run in turn, one progress line per study on the
terminal (each study's own output and any library warning go to its `demo.log`), and one report that opens with an
overview: per study, the paper's effect, our number, and whether it agrees with the paper's direction."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, TextIO

from rewardlab.config import to_dict
from rewardlab.core.runs import write_json, write_text
from rewardlab.errors import RewardLabError

PRESET = "demo"


def select(only: str | None) -> dict[str, Any]:
    """The studies the demo runs: all of them, or those named in `only` (comma-separated), in the registry's order."""
    from rewardlab.studies import STUDIES

    if not only:
        return dict(STUDIES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in STUDIES]
    if unknown or not names:
        raise RewardLabError(
            f"--only names unknown studies {unknown or [only]}; choose from {', '.join(STUDIES)} (comma-separated)"
        )
    return {n: s for n, s in STUDIES.items() if n in names}


def list_studies(studies: dict[str, Any], preset: str) -> list[str]:
    """One line per study: its name, the seconds its demo takes, the effect it shows, and whether it can run here."""
    lines = []
    for name, study in studies.items():
        eff = study.effect({}, {})
        what = eff.effect if eff else study.summary_line
        why = _missing(study)
        lines.append(f"{name:<16} ~{study.demo_seconds:>4.0f} s  {what}" + (f"  [skipped here: {why}]" if why else ""))
    total = sum(s.demo_seconds for s in studies.values() if not _missing(s))
    lines.append(f"{'total':<16} ~{total:>4.0f} s on 2 CPU cores (preset `{preset}`)")
    return lines


def preset_of(study: Any, preset: str) -> str:
    """The preset the demo runs for a study: `preset`, or `fast` for a study that ships no `demo` preset."""
    from rewardlab.config import preset_names

    if preset == PRESET and PRESET not in preset_names(study.name, study.presets):
        return "fast"
    return preset


def _missing(study: Any) -> str | None:
    """Why this machine cannot run the study (an optional runtime missing), or None."""
    if study.needs is None:
        return None
    try:
        study.needs()
    except RewardLabError as e:
        return str(e)
    return None


def _fmt_s(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


class _Line:
    """The one progress line of the study running: elapsed, and the time left estimated from the studies' measured
    demo times; redrawn each second on a terminal, printed once when the study ends otherwise."""

    def __init__(self, out: TextIO, label: str, expected: float, after: float, t_start: float):
        self.out, self.label, self.expected, self.after, self.t_start = out, label, expected, after, t_start
        self.t0 = time.time()
        self.tty = out.isatty()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True) if self.tty else None

    def text(self) -> str:
        now = time.time()
        left = max(0.0, self.expected - (now - self.t0)) + self.after
        return f"{self.label}  {_fmt_s(now - self.t0)} (demo: {_fmt_s(now - self.t_start)}, about {_fmt_s(left)} left)"

    def _loop(self) -> None:
        while not self.stop.wait(1.0):
            self.out.write("\r\033[K" + self.text())
            self.out.flush()

    def __enter__(self) -> _Line:
        if self.thread:
            self.out.write(self.text())
            self.out.flush()
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.stop.is_set():
            return
        self.stop.set()
        if self.thread:
            self.thread.join()
            self.out.write("\r\033[K")
            self.out.flush()

    def done(self, message: str) -> None:
        """Replace the live line with the study's last one."""
        self._stop()
        self.out.write(f"{self.label}  {message}\n")
        self.out.flush()


@contextlib.contextmanager
def _captured(log: Path) -> Iterator[None]:
    """The study's own output (prints, progress bars, library warnings) into `log` instead of the terminal."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f, warnings.catch_warnings():
        warnings.simplefilter("default")

        def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
            f.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = show
        with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            yield


def _effect_row(name: str, study: Any, summary: dict[str, Any], config: dict[str, Any]) -> tuple[str, Any]:
    eff = study.effect(summary, config)
    if eff is None:
        return f"| {name} | {study.summary_line} | (no effect declared) | | |", None
    return f"| [{name}](#{name}) | {eff.effect} | {eff.ours} | {eff.paper} | {eff.verdict} |", eff


def run_demo(
    root: Path,
    studies: dict[str, Any],
    preset: str = PRESET,
    redo: bool = False,
    dry_run: bool = False,
    out: TextIO | None = None,
) -> int:
    """Run each study's `preset` in `root/<study>`, then write `root/report.md` (overview first) and the HTML page."""
    from rewardlab.core.study import StudyRun

    out = out or sys.stdout
    if root.exists() and not root.is_dir():
        raise RewardLabError(f"'{root}' exists and is not a directory; choose another --out")
    skipped = {n: why for n, s in studies.items() if (why := _missing(s))}
    todo = {n: s for n, s in studies.items() if n not in skipped}
    checked = {  # every study's settings (and what they need installed) before any runs
        name: StudyRun.open(study, root / name, preset_of(study, preset), study.demo_overrides(), dry_run=True)
        for name, study in todo.items()
    }
    if dry_run:
        for name, sr in checked.items():
            sr.print_plan(sr.plan(list(todo[name].steps), redo=redo), f"{name} run")
        for name, why in skipped.items():
            print(f"{name}: skipped ({why})", file=out)
        print(f"then: {root / 'report.md'} and {root / 'report.html'}", file=out)
        return 0
    for name, why in skipped.items():
        print(f"{name}: skipped, {why}", file=out)
    if not todo:
        return 0
    t_start = time.time()
    overview = ["| study | the paper's effect | ours | paper | agrees |", "|---|---|---|---|---|"]
    details: list[str] = []
    looks: list[str] = []
    seconds: dict[str, float] = {}
    effects: dict[str, Any] = {}
    names = list(todo)
    for i, (name, study) in enumerate(todo.items()):
        after = sum(todo[n].demo_seconds for n in names[i + 1 :])
        overrides = study.demo_overrides()
        label = f"[{i + 1}/{len(todo)}] {name:<16}"
        t0 = time.time()
        with _Line(out, label, study.demo_seconds, after, t_start) as line:
            sr = StudyRun.open(study, root / name, preset_of(study, preset), overrides)
            try:
                with _captured(root / name / "demo.log"), sr:
                    summary = sr.run_all(redo=redo)
            except BaseException:
                line.done(f"failed after {_fmt_s(time.time() - t0)}; its output: {root / name / 'demo.log'}")
                raise
        seconds[name] = time.time() - t0
        row, eff = _effect_row(name, study, summary, to_dict(sr.cfg))
        overview.append(row)
        line.done(f"{_fmt_s(seconds[name])}" + (f": {eff.ours}" if eff else ""))
        if eff:
            effects[name] = eff
            looks.append(f"- **{name}**: {eff.look}")
        details += [f"## {name}", "", study.summary_line, "", f"Report: [{name}/report.md]({name}/report.md)", ""]
        used = f"Preset `{preset_of(study, preset)}`" + (f", with `{' '.join(overrides)}`" if overrides else "")
        details += [used + ".", ""]
        details += ["| figure | value |", "|---|---|"]
        for k, v in summary.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                details.append(f"| {k} | {v:.4g} |")
        figs = sorted((sr.run.root / "figures").glob("*.png"))
        details += [""] + [f"![{p.stem}]({name}/figures/{p.name})" for p in figs] + [""]
    total = time.time() - t_start
    lines = [
        "# rewardlab demo",
        "",
        f"Each study's miniature (its `{preset}` preset), run by `rewardlab demo`. These are miniatures: a paper's "
        "figure is shown beside ours only with the budget it was reached at.",
        "",
        *overview,
        "",
        "What to look at:",
        "",
        *looks,
        "",
    ]
    if skipped:
        lines += [f"Skipped: {n} ({why})." for n, why in skipped.items()] + [""]
    lines += [f"Wall time: {_fmt_s(total)} (" + ", ".join(f"{n} {s:.0f} s" for n, s in seconds.items()) + ").", ""]
    write_text(root / "report.md", "\n".join(lines + details) + "\n")
    write_json(
        root / "demo.json",
        {
            "preset": preset,
            "seconds": seconds,
            "total_seconds": total,
            "skipped": skipped,
            "effects": {n: e._asdict() for n, e in effects.items()},
        },
    )
    from rewardlab.report import write_report

    page = write_report(root)
    print(f"demo: {_fmt_s(total)}; report: {root / 'report.md'} (and as one HTML page: {page})", file=out)
    return 0
