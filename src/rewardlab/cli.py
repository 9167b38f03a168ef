"""The `rewardlab` command, built from the study registry: `demo`, `sweep`, `report`, `compare`, and per study
`run`, one subcommand per declared step, `status` and `print-config`. Building it imports no torch, numba or SB3: a
step imports what it needs when it runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from rewardlab.errors import RewardLabError
from rewardlab.interpret.configs import OBJECTIVES


def _help(text: str) -> str:
    """Docstrings become argparse help, which %-formats it: escape a literal '%'."""
    return text.replace("%", "%%")


def _open(study: Any, args: argparse.Namespace) -> Any:
    from rewardlab.core.study import StudyRun

    return StudyRun.open(
        study,
        args.out,
        args.preset,
        args.overrides,
        dry_run=args.dry_run,
        trust_pickle=getattr(args, "trust_pickle", False),
    )


def _print_summary(run: Any) -> None:
    print(json.dumps(run.summary(), indent=2))
    print(f"run directory: {run.root}  (report: {run.root / 'report.md'})")


def _seed_request(study: Any, overrides: Sequence[str]) -> tuple[list[int] | None, list[str]]:
    """Pull `seeds=...` (a list or a range such as 0-4) out of the overrides: for a study with one seed per run,
    those seeds run as a seed sweep; a study that batches seeds gets the list as its own setting."""
    from rewardlab.core.study import SeedMode
    from rewardlab.sweep import parse_seeds

    rest, seeds = [], None
    for o in overrides:
        key, _, value = o.partition("=")
        if key.strip() == "seeds":
            seeds = parse_seeds(value)
        else:
            rest.append(o)
    if seeds is None:
        return None, list(overrides)
    if study.seed_mode is SeedMode.BATCHED:
        return None, rest + [f"seeds=[{','.join(map(str, seeds))}]"]
    return seeds, rest


def cmd_run(args: argparse.Namespace) -> int:
    from rewardlab.studies import get_study

    study = get_study(args.study)
    seeds, args.overrides = _seed_request(study, args.overrides)
    if seeds is not None:
        from rewardlab.sweep import sweep

        res = sweep(
            study,
            args.out,
            preset=args.preset or "fast",
            seeds=seeds,
            base=args.overrides,
            redo=args.redo,
            dry_run=args.dry_run,
            trust_pickle=args.trust_pickle,
        )
        if args.dry_run:
            return 0
        print(
            f"seed sweep: {args.out}  (aggregate: {Path(args.out) / 'aggregate.json'}; "
            f"HTML report: rewardlab report {args.out})"
        )
        return 1 if set(res["status"]) - {"finished"} else 0
    sr = _open(study, args)
    plan = sr.plan(list(study.steps), redo=args.redo)  # a refusal comes before anything is written
    if args.dry_run:
        sr.print_plan(plan, "run")
        return 0
    with sr:
        sr.run_all(redo=args.redo)
    _print_summary(sr.run)
    return 0


def cmd_step(args: argparse.Namespace) -> int:
    from rewardlab.studies import get_study

    study = get_study(args.study)
    step = study.steps[args.step]
    given = {a.dest: getattr(args, a.dest) for a in step.args}
    sr = _open(study, args)
    plan = sr.plan([step.name], given, redo=args.redo, skip_inapplicable=False)  # refusals before any write
    if args.dry_run:
        sr.print_plan(plan, args.step)
        return 0
    with sr:
        result = sr.execute(step.name, given, redo=args.redo)
    print(json.dumps(result, indent=2, default=str) if isinstance(result, dict) else result)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from rewardlab.studies import get_study

    study = get_study(args.study)
    if not Path(args.out).is_dir():
        raise RewardLabError(f"'{args.out}' is not a run directory (it does not exist); give the --out of a run")
    args.dry_run = True
    sr = _open(study, args)
    kind = {
        "new": "holds no run yet",
        "legacy": "was made before the study contract; it is upgraded in place the next time a step runs there",
        "current": "",
    }[sr.state.kind]
    print(f"{study.name} run in '{sr.run.root}'" + (f" ({kind})" if kind else ""))
    for name, state, detail in sr.status():
        print(f"  {name:<14} {state:<8} {detail}".rstrip())
    return 0


def cmd_print_config(args: argparse.Namespace) -> int:
    from rewardlab.config import dump_yaml_with_help
    from rewardlab.studies import get_study

    study = get_study(args.study)
    print(dump_yaml_with_help(study.resolve(args.preset or "fast", args.overrides)), end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rewardlab.demo import list_studies, run_demo, select

    studies = select(args.only)
    if args.list:
        print("\n".join(list_studies(studies, args.preset)))
        return 0
    return run_demo(Path(args.out), studies, args.preset, redo=args.redo, dry_run=args.dry_run)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Exit code 1 when some run failed (each is reported with its error; the others ran to the end)."""
    from rewardlab.studies import get_study
    from rewardlab.sweep import sweep

    res = sweep(
        get_study(args.study),
        args.out,
        preset=args.preset,
        seeds=args.seeds,
        grid=args.grid,
        backend=args.backend,
        workers=args.workers,
        address=args.address,
        redo=args.redo,
        dry_run=args.dry_run,
        trust_pickle=args.trust_pickle,
    )
    if args.dry_run:
        return 0
    print(
        f"aggregate over seeds: {Path(args.out) / 'aggregate.json'} ({res['status']}); "
        f"HTML report: rewardlab report {args.out}"
    )
    return 1 if set(res["status"]) - {"finished"} else 0


def cmd_report(args: argparse.Namespace) -> int:
    from rewardlab.report import write_report

    path = write_report(args.dir, args.output, dry_run=args.dry_run)
    print(f"report: {path}" + (" (dry run: not written)" if args.dry_run else ""))
    return 0


def _reward_arg(name: str, env: str, trust_pickle: bool) -> Any:
    """A reward net from a file, or `true:NAME` (the environment's own reward) when no such file exists."""
    from rewardlab.interpret.distances import true_reward
    from rewardlab.rewards.io import load_reward

    if name.startswith("true:") and not Path(name).exists():
        return true_reward(env, name.removeprefix("true:"))
    return load_reward(name, trust_pickle=trust_pickle)


def cmd_preprocess(args: argparse.Namespace) -> int:
    """Preprocess one reward file on an environment and write the shaped net."""
    from rewardlab.interpret.distances import check_spaces, env_kind

    env_kind(args.env)
    if args.samples < 16:
        raise RewardLabError(f"--samples must be at least 16, got {args.samples}")
    out = Path(args.out)
    if out.is_dir():
        raise RewardLabError(f"--out '{out}' is a directory; give a file name such as {out / 'preprocessed.pt'}")
    if out.resolve() == Path(args.reward).resolve():
        raise RewardLabError(f"--out '{out}' is the input file; give another name (the input is never overwritten)")
    net = _reward_arg(args.reward, args.env, args.trust_pickle)
    check_spaces([net], [args.reward], args.env)
    if args.dry_run:
        print(f"dry run: {args.objective} preprocessing of {args.reward} on {args.env}; would write {out}")
        return 0
    from rewardlab.core.modules import save_module
    from rewardlab.interpret.distances import compare_rewards
    from rewardlab.interpret.preprocess import preprocess_reward

    shaped, info = preprocess_reward(net, args.env, args.objective, samples=args.samples, seed=args.seed)
    dist = compare_rewards([net, shaped], args.env, samples=512, seed=args.seed)  # a check: 512 suffice for ~0
    info["epic_to_input"] = float(dist["distance"][0, 1])
    info["input"] = args.reward
    out.parent.mkdir(parents=True, exist_ok=True)
    save_module(out, shaped, meta={"preprocessing": info})
    print(
        f"{args.objective} on {args.env} ({info['method']}, {info['transitions']} transitions): "
        f"{info['objective_before']:.4f} -> {info['objective_after']:.4f}; EPIC distance from the input "
        f"{info['epic_to_input']:.2e} ({dist['mode']})"
    )
    print(f"written: {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """EPIC or DARD distances between reward nets (files, or `true:NAME` for the environment's own reward)."""
    from rewardlab.interpret.distances import compare_rewards, env_kind

    if len(args.rewards) < 2:
        raise RewardLabError(f"compare needs at least two rewards, got {len(args.rewards)}; give two or more files")
    env_kind(args.env)
    if args.samples < 2:
        raise RewardLabError(f"--samples must be at least 2, got {args.samples}")
    nets = [_reward_arg(r, args.env, args.trust_pickle) for r in args.rewards]
    stems = [r if r.startswith("true:") else Path(r).stem for r in args.rewards]
    names = stems if len(set(stems)) == len(stems) else list(args.rewards)
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise RewardLabError(f"--out '{out}' is a directory; give a JSON file name such as {out / 'compare.json'}")
    if args.dry_run:
        from rewardlab.interpret.distances import check_spaces

        check_spaces(nets, names, args.env)
        mode = "exact" if env_kind(args.env)[0] == "maze" else f"sampled ({args.samples} transitions)"
        print(
            f"dry run: {args.method.upper()} distances of {len(nets)} rewards on {args.env}, {mode}; nothing is written"
        )
        if out is not None:
            print(f"  would write {out}" + (f" and {out.with_suffix('.png')}" if len(nets) > 2 else ""))
        return 0
    res = compare_rewards(nets, args.env, args.method, samples=args.samples, seed=args.seed, names=names)
    what = args.method.upper()
    print(f"{what} distance on {args.env} ({res['mode']}; coverage: {res['coverage']}; gamma {res['gamma']})")
    d, lo, hi = res["distance"], res["ci_low"], res["ci_high"]
    ci = f"{100 * res['confidence']:.0f}% bootstrap interval" if lo is not None else ""
    if len(nets) == 2:
        print(f"{names[0]} vs {names[1]}: {d[0, 1]:.4f}" + (f"  ({ci} {lo[0, 1]:.4f} to {hi[0, 1]:.4f})" if ci else ""))
    else:
        width = max(8, *(len(n) for n in names))
        print(" " * width + "".join(f"  {n:>{width}}" for n in names))
        for i, n in enumerate(names):
            print(f"{n:<{width}}" + "".join(f"  {v:>{width}.4f}" for v in d[i]))
        if ci:
            print(f"({ci}s in the JSON file)" if out is not None else f"({ci}s: give --out FILE.json)")
    if out is not None:
        from rewardlab.core.runs import write_json

        res["files"] = list(args.rewards)
        if len(nets) > 2:
            from rewardlab.interpret.distances import distance_heatmap

            png = distance_heatmap(
                d, names, out.with_suffix(".png"), f"{what} distance, {args.env}", f"{what} distance"
            )
            res["heatmap"] = str(png)
        write_json(out, res)
        print(f"written: {out}" + (f" and {res['heatmap']}" if "heatmap" in res else ""))
    return 0


def _trust_pickle(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow reading files that run code when loaded (Stable-Baselines3 zips, pickles) made elsewhere or by "
        "an older rewardlab, and convert them once to the safe formats; only for files you trust",
    )


def _dry_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="parse, resolve the config, check inputs exist and are readable, print what would run; "
        "write nothing (exit code 0, or 2 with the problem)",
    )


def build_parser() -> argparse.ArgumentParser:
    from rewardlab.studies import STUDIES

    p = argparse.ArgumentParser(prog="rewardlab", description="Reward-centric reinforcement learning toolkit.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser(
        "demo",
        help="run every study's miniature (about 10 minutes on 2 CPU cores) and write one report",
        description="Run every study's `demo` preset (the smallest settings that still show its paper's effect; no "
        "download, no GPU), one progress line per study (each study's own output goes to OUT/<study>/demo.log), "
        "and write OUT/report.md and OUT/report.html, which open with each paper's effect and our number.",
    )
    d.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    d.add_argument("--preset", default="demo", help="preset to run for every study (default: demo)")
    d.add_argument("--only", metavar="STUDY[,STUDY]", help="run only these studies (comma-separated)")
    d.add_argument("--list", action="store_true", help="list the studies, their demo times and effects; run nothing")
    d.add_argument("--redo", action="store_true", help="recompute finished steps instead of reusing them")
    _dry_run(d)
    d.set_defaults(func=cmd_demo, overrides=None)

    sw = sub.add_parser(
        "sweep",
        help="run a study over a grid of settings and seeds, each its own run; resumable",
        description="Expand key=v1,v2 settings times --seeds into runs DIR/<setting>/seed<k>, run "
        "them on a local process pool or on Ray, skip finished runs, report failed ones, "
        "then aggregate over seeds (mean, IQM, stratified bootstrap 95%% intervals).",
    )
    sw.add_argument("study", choices=list(STUDIES), help="the study to sweep")
    sw.add_argument(
        "grid",
        nargs="*",
        metavar="key=v1,v2",
        help="settings to vary (or fix), e.g. rl.lr=0.001,0.0003; a list value keeps its brackets",
    )
    sw.add_argument("--preset", default="fast", help="preset every run starts from (default: fast)")
    sw.add_argument("--seeds", default="0", help="seeds, e.g. 0-9 or 0,3,7 (default: 0)")
    sw.add_argument("--out", required=True, help="sweep folder")
    sw.add_argument(
        "--backend", default="local", choices=["local", "ray"], help="local process pool (default) or Ray (extra `ray`)"
    )
    sw.add_argument("--workers", type=int, default=0, help="runs at once (0: one per core)")
    sw.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (e.g. auto or ray://host:10001); default: start a local one",
    )
    sw.add_argument("--redo", action="store_true", help="rerun finished runs too")
    _trust_pickle(sw)
    _dry_run(sw)
    sw.set_defaults(func=cmd_sweep, overrides=None)

    rp = sub.add_parser("report", help="write a static HTML report over a run or sweep folder (opens from disk)")
    rp.add_argument("dir", help="a run directory, a sweep folder, or a folder holding several")
    rp.add_argument("--output", default=None, help="HTML file to write (default: DIR/report.html)")
    _dry_run(rp)
    rp.set_defaults(func=cmd_report, overrides=None)

    cp = sub.add_parser(
        "compare",
        help="EPIC or DARD distance between reward functions (0: same up to shaping and scale; 1: opposite)",
        description="Pairwise EPIC (Gleave et al. 2021) or DARD (Wulfe et al. 2022) distances between saved reward "
        "nets, or `true:NAME` for the environment's own reward (mazes: true:goal, true:path-dense, ...; mountain car: "
        "true:unshaped, true:dense, ...). Exact on the tabular mazes; sampled on the shaped mountain car (coverage: "
        "states uniform over the observation box, uniform actions, the car's dynamics), with a bootstrap 95% "
        "interval. Prints the distance (two rewards) or the matrix; --out writes JSON, and a heatmap PNG beside it for "
        "three or more rewards.",
    )
    cp.add_argument("rewards", nargs="*", metavar="REWARD", help="two or more reward files (or true:NAME)")
    cp.add_argument("--env", required=True, help="environment id, e.g. rewardlab/EmptyMaze10-v0")
    cp.add_argument("--method", default="epic", choices=["epic", "dard"], help="distance (default: epic)")
    cp.add_argument(
        "--samples", type=int, default=4096, help="coverage transitions when sampled (default: 4096; exact: unused)"
    )
    cp.add_argument("--seed", type=int, default=0, help="seed of the samples and the bootstrap (default: 0)")
    cp.add_argument("--out", default=None, help="JSON file to write (and FILE.png, the heatmap, for 3+ rewards)")
    _trust_pickle(cp)
    _dry_run(cp)
    cp.set_defaults(func=cmd_compare, overrides=None)

    pp = sub.add_parser(
        "preprocess",
        help="shape any reward file to be sparse or smooth without changing what it asks for (Jenner & Gleave 2022)",
        description="Preprocess a saved reward net (a rewardlab file, or with --trust-pickle an imitation one) on an "
        "environment: potential shaping that minimises the objective. L1 objectives are solved exactly (an LP with a "
        "canonical tie-break, so every shaping of a reward gives the same output): a tabular potential on the mazes, "
        "a linear one on mountain car; log objectives with Adam. Writes the shaped net (a rewardlab reward file, "
        "usable by `rewardlab compare`) and prints the objective before and after and the EPIC distance from the "
        "input (about 0: preprocessing is shaping).",
    )
    pp.add_argument("reward", metavar="REWARD", help="a reward file (or true:NAME, the environment's own reward)")
    pp.add_argument("--env", required=True, help="environment id, e.g. rewardlab/EmptyMaze10-v0")
    pp.add_argument(
        "--objective",
        default="sparse_l1",
        choices=list(OBJECTIVES),
        help="what to minimise (default: sparse_l1)",
    )
    pp.add_argument("--out", required=True, help="reward file to write (.pt)")
    pp.add_argument(
        "--samples", type=int, default=20_000, help="mountain car: transitions to shape on (mazes: every transition)"
    )
    pp.add_argument("--seed", type=int, default=0, help="seed of the samples and of Adam (default: 0)")
    _trust_pickle(pp)
    _dry_run(pp)
    pp.set_defaults(func=cmd_preprocess, overrides=None)

    for name, study in STUDIES.items():
        sp = sub.add_parser(
            name,
            help=_help(study.summary_line),
            description=_help(study.doc),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        ssub = sp.add_subparsers(dest="step", required=True, metavar="STEP")

        def common(q: argparse.ArgumentParser, out: bool = True, redo: bool = True) -> None:
            q.add_argument(
                "--preset",
                default=None,
                help="preset name (fast, paper) or a YAML file; default: the run's saved config, else fast",
            )
            if out:
                q.add_argument("--out", required=True, help="run directory")
            if redo:
                q.add_argument(
                    "--redo",
                    action="store_true",
                    help="remake finished (or stale) outputs; the old ones are kept until the new are complete",
                )
                _trust_pickle(q)
            _dry_run(q)
            q.add_argument(
                "overrides",
                nargs="*",
                metavar="key=value",
                help="config overrides (anywhere on the line), e.g. expert.ppo.total_timesteps=20000",
            )

        r = ssub.add_parser("run", help="run every step end to end and write summary.json and report.md")
        common(r)
        r.set_defaults(func=cmd_run, study=name)
        for step in study.steps.values():
            q = ssub.add_parser(step.name, help=_help(step.help), description=_help((step.fn.__doc__ or "").strip()))
            common(q)
            for a in step.args:
                q.add_argument(a.flag, dest=a.dest, default=None, metavar=a.metavar, help=_help(a.help))
            q.set_defaults(func=cmd_step, study=name, step=step.name)
        st = ssub.add_parser(
            "status", help="each step of a run directory: done, stale (and which settings changed), partial or missing"
        )
        common(st, redo=False)
        st.set_defaults(func=cmd_status, study=name)
        c = ssub.add_parser(
            "print-config", help="print the resolved config as YAML, each setting's help and bounds beside it"
        )
        common(c, out=False, redo=False)
        c.set_defaults(func=cmd_print_config, study=name)
    return p


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, accepting key=value settings anywhere on the line (argparse alone takes them only in one run)."""
    args, extra = parser.parse_known_args(argv)
    settings = [e for e in extra if "=" in e and not e.startswith("-")]
    unknown = [e for e in extra if e not in settings]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if settings:
        if args.command == "sweep":
            args.grid = [*args.grid, *settings]
        elif getattr(args, "overrides", None) is not None:
            args.overrides = [*args.overrides, *settings]
        else:
            parser.error(f"unrecognized arguments: {' '.join(settings)}")
    return args


def _os_error(e: OSError) -> str:
    """An OSError as one line: what the file system said, about which path, and what to do."""
    import errno

    where = f" ('{e.filename}')" if e.filename else ""
    what = e.strerror or str(e) or type(e).__name__
    fix = {
        errno.ENOSPC: "free some space or write elsewhere (--out); finished steps are kept, rerun to resume",
        errno.EDQUOT: "free some space or write elsewhere (--out); finished steps are kept, rerun to resume",
        errno.EROFS: "write to a writable folder (--out)",
        errno.EACCES: "write to a folder you may write to (--out), or fix its permissions",
        errno.EPERM: "write to a folder you may write to (--out), or fix its permissions",
        errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
        errno.EISDIR: "the path is a folder where a file belongs; choose another path",
    }.get(e.errno or 0, "check the path and the disk, then rerun")
    return f"the file system refused: {what}{where}; {fix}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user mistakes print one line and exit with code 2."""
    try:
        parser = build_parser()
        args = _parse(parser, argv)
        rc = args.func(args)
    except RewardLabError as e:
        print(f"rewardlab: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the output went to a program that stopped reading (e.g. `| head`)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # the file system refused: read-only, full, permissions, a path of the wrong kind
        print(f"rewardlab: error: {_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "rewardlab: interrupted; finished steps and checkpoints are kept, rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
