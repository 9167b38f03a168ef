"""The `rewardlab` command: `demo`, and per study `run`, one subcommand per step, and `print-config`."""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from rewardlab.errors import RewardLabError


def _help(text: str) -> str:
    """Docstrings become argparse help, which %-formats it: escape a literal '%'."""
    return text.replace("%", "%%")


def _study(name: str) -> ModuleType:
    from rewardlab.studies import STUDIES

    return importlib.import_module(STUDIES[name])


def _resolve_config(study: ModuleType, preset: str | None, out: Path | None, overrides: Sequence[str]) -> Any:
    from rewardlab.config import resolve

    if preset is None:
        saved = out / "config.yaml" if out is not None else None
        preset = str(saved) if saved is not None and saved.is_file() else "fast"
    return resolve(study.CONFIG, study.NAME, preset, overrides)


def _open_run(study: ModuleType, args: argparse.Namespace) -> tuple[Any, Any]:
    from rewardlab.runs import RunDir

    cfg = _resolve_config(study, args.preset, Path(args.out), args.overrides)
    run = RunDir(args.out)
    run.save_config(cfg, check_compatible=not args.redo)
    return cfg, run


def _print_summary(run: Any) -> None:
    import json

    print(json.dumps(run.summary(), indent=2))
    print(f"run directory: {run.root}  (report: {run.root / 'report.md'})")


def _seed_request(study: ModuleType, overrides: Sequence[str]) -> tuple[list[int] | None, list[str]]:
    """Pull `seeds=...` (a list or a range such as 0-4) out of the overrides of a study whose config has a single
    `seed`: those seeds run as a seed sweep. Studies with their own `seeds` list get it, ranges expanded."""
    from rewardlab.sweep import parse_seeds, seed_field

    rest, seeds = [], None
    for o in overrides:
        key, _, value = o.partition("=")
        if key.strip() == "seeds":
            seeds = parse_seeds(value)
        else:
            rest.append(o)
    if seeds is None:
        return None, list(overrides)
    if seed_field(study.CONFIG) == "seeds":  # the study runs its seeds together in one run
        return None, rest + [f"seeds=[{','.join(map(str, seeds))}]"]
    return seeds, rest


def cmd_run(args: argparse.Namespace) -> int | None:
    study = _study(args.study)
    seeds, args.overrides = _seed_request(study, args.overrides)
    if seeds is not None:
        from rewardlab.sweep import sweep

        res = sweep(args.study, args.out, preset=args.preset or "fast", seeds=seeds, base=args.overrides,
                    redo=args.redo)
        print(f"seed sweep: {args.out}  (aggregate: {Path(args.out) / 'aggregate.json'}; "
              f"HTML report: rewardlab report {args.out})")
        return 1 if set(res["status"]) - {"finished"} else 0
    cfg, run = _open_run(study, args)
    study.run_all(cfg, run, redo=args.redo)
    _print_summary(run)


def cmd_step(args: argparse.Namespace) -> None:
    study = _study(args.study)
    cfg, run = _open_run(study, args)
    fn = study.STEP_FUNCS[args.step]
    kwargs = {}
    params = inspect.signature(fn).parameters
    if "redo" in params:
        kwargs["redo"] = args.redo
    for extra in study.STEP_ARGS.get(args.step, {}):
        kwargs[extra] = getattr(args, extra)
    result = fn(cfg, run, **kwargs)
    import json

    if isinstance(result, dict):
        print(json.dumps(result, indent=2, default=str))
    else:
        print(result)


def cmd_print_config(args: argparse.Namespace) -> None:
    from rewardlab.config import dump_yaml

    study = _study(args.study)
    cfg = _resolve_config(study, args.preset or "fast", None, args.overrides)
    print(dump_yaml(cfg), end="")


def cmd_demo(args: argparse.Namespace) -> None:
    from rewardlab.runs import RunDir, write_text
    from rewardlab.studies import STUDIES

    root = RunDir(args.out)
    t0 = time.time()
    lines = ["# rewardlab demo", "", f"Every study's `{args.preset}` preset, run by `rewardlab demo`.", ""]
    for name in STUDIES:
        study = _study(name)
        overrides = study.demo_overrides() if hasattr(study, "demo_overrides") else []
        sub = argparse.Namespace(preset=args.preset, out=str(root.root / name), overrides=overrides, redo=args.redo)
        print(f"== {name}: {study.__doc__.strip().splitlines()[0]}", flush=True)
        cfg, run = _open_run(study, sub)
        summary = study.run_all(cfg, run, redo=args.redo)
        lines += [f"## {name}", "", study.__doc__.strip().splitlines()[0], "",
                  f"Report: [{name}/report.md]({name}/report.md)", ""]
        if overrides:
            lines += [f"Run with `{' '.join(overrides)}` (see its report for why).", ""]
        lines += ["| figure | value |", "|---|---|"]
        for k, v in summary.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                lines.append(f"| {k} | {v:.4g} |")
        figs = sorted((run.root / "figures").glob("*.png"))
        lines += [""] + [f"![{p.stem}]({name}/figures/{p.name})" for p in figs] + [""]
    lines.append(f"Total wall time: {time.time() - t0:.0f} s")
    write_text(root.root / "report.md", "\n".join(lines) + "\n")
    from rewardlab.report import write_report

    html_page = write_report(root.root)
    print(f"demo report: {root.root / 'report.md'} (and as one HTML page: {html_page})")


def cmd_sweep(args: argparse.Namespace) -> int:
    """Exit code 1 when some run failed (each is reported with its error; the others ran to the end)."""
    from rewardlab.sweep import sweep

    res = sweep(args.study, args.out, preset=args.preset, seeds=args.seeds, grid=args.grid, backend=args.backend,
                workers=args.workers, address=args.address, redo=args.redo)
    print(f"aggregate over seeds: {Path(args.out) / 'aggregate.json'} ({res['status']}); "
          f"HTML report: rewardlab report {args.out}")
    return 1 if set(res["status"]) - {"finished"} else 0


def cmd_report(args: argparse.Namespace) -> None:
    from rewardlab.report import write_report

    path = write_report(args.dir, args.output)
    print(f"report: {path}")


def build_parser() -> argparse.ArgumentParser:
    from rewardlab.studies import STUDIES

    p = argparse.ArgumentParser(prog="rewardlab", description="Reward-centric reinforcement learning toolkit.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="run the fast preset of every study and write one report",
                       description="Run the `fast` preset of every study (no download, no GPU) and write "
                                   "OUT/report.md linking each study's figures and numbers.")
    d.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    d.add_argument("--preset", default="fast", help="preset to run for every study (default: fast)")
    d.add_argument("--redo", action="store_true", help="recompute finished steps instead of reusing them")
    d.set_defaults(func=cmd_demo)

    sw = sub.add_parser("sweep", help="run a study over a grid of settings and seeds, each its own run; resumable",
                        description="Expand key=v1,v2 settings times --seeds into runs DIR/<setting>/seed<k>, run "
                                    "them on a local process pool or on Ray, skip finished runs, report failed ones, "
                                    "then aggregate over seeds (mean, IQM, stratified bootstrap 95%% intervals).")
    sw.add_argument("study", choices=list(STUDIES), help="the study to sweep")
    sw.add_argument("grid", nargs="*", metavar="key=v1,v2",
                    help="settings to vary (or fix), e.g. rl.lr=0.001,0.0003; a list value keeps its brackets")
    sw.add_argument("--preset", default="fast", help="preset every run starts from (default: fast)")
    sw.add_argument("--seeds", default="0", help="seeds, e.g. 0-9 or 0,3,7 (default: 0)")
    sw.add_argument("--out", required=True, help="sweep folder")
    sw.add_argument("--backend", default="local", choices=["local", "ray"],
                    help="local process pool (default) or Ray (extra `ray`)")
    sw.add_argument("--workers", type=int, default=0, help="runs at once (0: one per core)")
    sw.add_argument("--address", default=None,
                    help="Ray cluster to join (e.g. auto or ray://host:10001); default: start a local one")
    sw.add_argument("--redo", action="store_true", help="rerun finished runs too")
    sw.set_defaults(func=cmd_sweep)

    rp = sub.add_parser("report", help="write a static HTML report over a run or sweep folder (opens from disk)")
    rp.add_argument("dir", help="a run directory, a sweep folder, or a folder holding several")
    rp.add_argument("--output", default=None, help="HTML file to write (default: DIR/report.html)")
    rp.set_defaults(func=cmd_report)

    for name in STUDIES:
        study = _study(name)
        sp = sub.add_parser(name, help=_help(study.__doc__.strip().splitlines()[0]), description=_help(study.__doc__))
        ssub = sp.add_subparsers(dest="step", required=True, metavar="STEP")

        def common(q: argparse.ArgumentParser, out_required: bool = True) -> None:
            q.add_argument("--preset", default=None,
                           help="preset name (fast, paper) or a YAML file; default: the run's saved config, else fast")
            if out_required:
                q.add_argument("--out", required=True, help="run directory")
                q.add_argument("--redo", action="store_true",
                               help="recompute (and overwrite) finished outputs instead of reusing them")
            q.add_argument("overrides", nargs="*", metavar="key=value",
                           help="config overrides, e.g. expert.ppo.total_timesteps=20000")

        r = ssub.add_parser("run", help="run every step end to end and write summary.json and report.md")
        common(r)
        r.set_defaults(func=cmd_run, study=name)
        for step, fn in study.STEP_FUNCS.items():
            q = ssub.add_parser(step, help=_help((fn.__doc__ or "").strip().splitlines()[0]))
            common(q)
            for extra, (flag, kw) in study.STEP_ARGS.get(step, {}).items():
                q.add_argument(flag, dest=extra, **kw)
            q.set_defaults(func=cmd_step, study=name, step=step)
        c = ssub.add_parser("print-config", help="print the resolved config as YAML")
        common(c, out_required=False)
        c.set_defaults(func=cmd_print_config, study=name)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user mistakes print one line and exit with code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except RewardLabError as e:
        print(f"rewardlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rewardlab: interrupted; finished steps and checkpoints are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
