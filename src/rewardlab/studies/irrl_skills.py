"""Internally rewarded RL, skill discovery: four-room gridworld, discriminator rewards, DISDAIN, effective skills.

Reproduces the skill-discovery study of Li et al. (ICML 2023), "Internally Rewarded Reinforcement Learning" (the
DISDAIN Colab setup): tabular skills rewarded by a final-state discriminator with the log, linear (clipped or not)
or accuracy reward, and clipped log plus the DISDAIN ensemble-disagreement bonus; skills learned are measured as
effective skills exp(mean unclipped log reward). Beyond the original: a library instead of an import-time script,
a CPU implementation (numba) hundreds of times faster than the original JAX code on a CPU, and several seeds in one
batched computation.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.agents.configs import SKILL_REWARDS, SkillConfig
from rewardlab.config import param
from rewardlab.core.runs import MetricsLogger, RunDir, atomic_path, progress, write_text
from rewardlab.core.study import Curve, Effect, SeedMode, Study
from rewardlab.envs.four_rooms import four_rooms
from rewardlab.errors import RewardLabError

NAME = "irrl-skills"
METHODS = SKILL_REWARDS + ("disdain",)
# Skills learned (of 104) at 30M iterations on the large grid, read off the project site's curves (docs/originals.md).
PAPER_SKILLS = {"linear_clipping": 86.5, "disdain": 89.0, "log_clipping": 30.0, "accuracy": 40.0}


@dataclass
class IrrlSkillsConfig:
    """Skill discovery on the four-room grid: which rewards, how long, how many seeds."""

    reward: list[str] = param(
        default_factory=lambda: ["linear_clipping", "log_clipping", "disdain", "accuracy"],
        help="reward types to run, each over every seed: log_clipping, log_noclipping, "
        "linear_clipping, linear_noclipping, accuracy, or disdain (clipped log with an "
        "ensemble of 2 and bonus weight 20)",
    )
    seeds: list[int] = param(default_factory=lambda: [1], help="seeds, trained together in one batched run", min=0)
    iterations: int = param(40_000_000, help="SGD iterations per run", min=0)
    eval_every: int = param(100_000, help="iterations between evaluations (the original's chunk)", min=1)
    learner: SkillConfig = param(default_factory=SkillConfig, help="learner (its `reward` is set per run)")
    disdain_ensemble: int = param(2, help="ensemble size of the disdain runs", min=2, max=16)
    disdain_weight: float = param(20.0, help="bonus weight of the disdain runs", min=0.0)

    def validate(self) -> None:
        if not self.reward:
            raise RewardLabError("reward is empty; give at least one reward type")
        for r in self.reward:
            if r not in METHODS:
                raise RewardLabError(f"unknown reward '{r}'; choose from {', '.join(METHODS)}")
        if not self.seeds:
            raise RewardLabError("seeds is empty; give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise RewardLabError(f"seeds repeat: {self.seeds}")
        self.learner.validate()


study = Study(
    NAME,
    IrrlSkillsConfig,
    SeedMode.BATCHED,
    paper="Li et al. (ICML 2023), Internally Rewarded Reinforcement Learning (skill discovery)",
    doc=__doc__,
    curves=[Curve("train/*/metrics.csv", "effective_skills/seed{seed}", "Four rooms: effective skills")],
    demo_seconds=19,  # the demo preset on 2 CPU cores (python -m benchmarks demo)
)


@study.hook
def paper_numbers(summary: dict[str, Any], config: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """The paper's effective skills beside ours (large grid only: the small grid has no published figure)."""
    if config.get("learner", {}).get("grid") != "large":
        return {}
    return {
        f"final_effective_skills.{m}.*": (v, "paper, large grid at 30M iterations (project site's curves)")
        for m, v in PAPER_SKILLS.items()
    }


def method_config(cfg: IrrlSkillsConfig, method: str) -> SkillConfig:
    """The learner settings of one reward type."""
    base = asdict(cfg.learner)
    if method == "disdain":
        return SkillConfig(
            **{**base, "reward": "log_clipping", "ensemble": cfg.disdain_ensemble, "bonus_weight": cfg.disdain_weight}
        )
    return SkillConfig(**{**base, "reward": method})


def _save_state(path: Path, learner: Any, extra: dict[str, np.ndarray]) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **learner.state_dict(), **extra)


def train_method(cfg: IrrlSkillsConfig, run: RunDir, method: str, threads: int = 0) -> dict[str, Any]:
    """Train every seed of one reward type (resuming from its `state.npz`), evaluating every `eval_every`.

    threads: threads for its seeds (0: one per core).
    """
    from rewardlab.agents.skills import SkillLearner

    lcfg = method_config(cfg, method)
    world = four_rooms(lcfg.grid)
    folder = run.step_dir("train") / method
    learner = SkillLearner(lcfg, world, cfg.seeds, threads=threads)
    state_path = folder / "state.npz"
    snaps: dict[str, np.ndarray] = {}
    seconds = 0.0
    if state_path.exists():
        try:
            with np.load(state_path) as z:
                state = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise RewardLabError(f"'{state_path}' is corrupt ({e}); rerun with --redo") from None
        learner.load_state_dict(state)
        snaps = {k: v for k, v in state.items() if k.startswith("occ_")}
        seconds = float(state.get("train_seconds", 0.0))
    mid = (cfg.iterations // 2) // cfg.eval_every * cfg.eval_every
    with MetricsLogger(folder) as log:
        if learner.iterations == 0:
            ev = learner.evaluate()
            snaps.update(occ_init_all=ev["occupancy"], occ_init_final=ev["final_occupancy"])
            log.log(0, **{f"effective_skills/seed{s}": v for s, v in zip(cfg.seeds, ev["effective_skills"])})
        bar = progress(total=cfg.iterations, initial=learner.iterations, desc=f"{method}")
        while learner.iterations < cfg.iterations:
            n = min(cfg.eval_every, cfg.iterations - learner.iterations)
            t0 = time.perf_counter()
            stats = learner.train(n)
            seconds += time.perf_counter() - t0
            ev = learner.evaluate()
            it = learner.iterations
            row = {f"effective_skills/seed{s}": v for s, v in zip(cfg.seeds, ev["effective_skills"])}
            for k, vals in stats.items():
                row.update({f"{k}/seed{s}": v for s, v in zip(cfg.seeds, vals)})
            log.log(it, **row)
            if it == mid:
                snaps.update(occ_mid_all=ev["occupancy"], occ_mid_final=ev["final_occupancy"])
            if it >= cfg.iterations:
                snaps.update(occ_end_all=ev["occupancy"], occ_end_final=ev["final_occupancy"])
            _save_state(state_path, learner, {**snaps, "train_seconds": np.array(seconds)})
            bar.update(n)
            bar.set_postfix(skills=f"{ev['effective_skills'].mean():.1f}")
        bar.close()
    final = learner.evaluate(max(lcfg.eval_batch_size, 1024))
    if "occ_end_all" not in snaps:
        snaps.update(occ_end_all=final["occupancy"], occ_end_final=final["final_occupancy"])
        _save_state(state_path, learner, {**snaps, "train_seconds": np.array(seconds)})
    greedy = learner.greedy_skills()
    return {
        "effective_skills": {str(s): float(v) for s, v in zip(cfg.seeds, final["effective_skills"])},
        "skills_learned": {str(s): int(v) for s, v in zip(cfg.seeds, greedy["skills_learned"])},
        "distinct_final_states": {str(s): int(v) for s, v in zip(cfg.seeds, greedy["distinct_final_states"])},
        "mean_effective_skills": float(final["effective_skills"].mean()),
        "iterations": learner.iterations,
        "seconds": seconds,
        "seed_iterations_per_second": (learner.iterations * len(cfg.seeds) / seconds if seconds else None),
        "states": world.n_states,
        "skills": lcfg.skills,
    }


@study.step("train", uses="*")
def step_train(cfg: IrrlSkillsConfig, run: RunDir) -> dict[str, Any]:
    """Train every reward type over every seed (one batched computation per reward type; resumes from the saved
    state of each)."""
    # Reward types run side by side when there are more cores than seeds (the kernels release the GIL).
    from concurrent.futures import ThreadPoolExecutor

    from rewardlab.core.runs import available_cores

    cores = available_cores()
    parallel = max(1, min(len(cfg.reward), cores // len(cfg.seeds)))
    per_method = max(1, cores // parallel)
    with ThreadPoolExecutor(parallel) as pool:
        futures = {m: pool.submit(train_method, cfg, run, m, per_method) for m in cfg.reward}
        results = {m: f.result() for m, f in futures.items()}
    run.update_summary(
        final_effective_skills={m: r["effective_skills"] for m, r in results.items()},
        skills_learned={m: r["skills_learned"] for m, r in results.items()},
        iterations_run=max(r["iterations"] for r in results.values()),
        seed_iterations_per_second={m: r["seed_iterations_per_second"] for m, r in results.items()},
    )
    return {"runs": results}


@study.step(
    "figures",
    cached=False,
    after=["train"],
    reads=lambda cfg: [f"train/{m}/{f}" for m in cfg.reward for f in ("state.npz", "metrics.csv")],
)
def step_figures(cfg: IrrlSkillsConfig, run: RunDir) -> list[str]:
    """Effective skills against iterations (mean and spread over seeds) and state-occupancy heatmaps."""
    from matplotlib.colors import LogNorm

    from rewardlab.core.runs import read_metrics
    from rewardlab.interpret.plots import mean_spread, plt, save_figure

    out = []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = {m: f"C{i}" for i, m in enumerate(cfg.reward)}  # a reward's curve and its paper value share a colour
    for m in cfg.reward:
        path = run.root / "train" / m / "metrics.csv"
        if not path.exists():
            raise RewardLabError(f"no training metrics for '{m}'; run the `train` step first")
        met = read_metrics(path)
        curves = [met[f"effective_skills/seed{s}"] for s in cfg.seeds if f"effective_skills/seed{s}" in met]
        n = min(len(c[0]) for c in curves)
        mean_spread(ax, curves[0][0][:n], [c[1][:n] for c in curves], m, color=colors[m], spread="minmax")
    world = four_rooms(cfg.learner.grid)
    if cfg.learner.grid == "large" and cfg.learner.skills == 128:
        for m, v in PAPER_SKILLS.items():
            if m in cfg.reward:
                ax.scatter([30e6], [v], marker="x", s=40, color=colors[m], label=f"paper at 30M: {m}")
    ax.axhline(world.n_states, color="gray", ls=":", lw=0.8, label=f"ceiling ({world.n_states} states)")
    ax.set_xlabel("iterations (SGD steps of 32 trajectories)")
    ax.set_ylabel("effective skills exp(mean log reward)")
    ax.set_title(f"Skills learned, {cfg.learner.grid} grid, K={cfg.learner.skills} (min-max over seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the curves fill the axes
    out.append(str(save_figure(fig, run.figures / "effective_skills.png")))
    for m in cfg.reward:
        with np.load(run.root / "train" / m / "state.npz") as z:
            occ = {k: z[k] for k in z.files if k.startswith("occ_")}
        cols = [c for c in ("init", "mid", "end") if f"occ_{c}_all" in occ]
        fig, axes = plt.subplots(2, len(cols), figsize=(2.6 * len(cols), 5.2), squeeze=False)
        for j, c in enumerate(cols):
            for i, kind in enumerate(("all", "final")):
                grid = world.to_grid(np.maximum(occ[f"occ_{c}_{kind}"][0], 1e-4))
                im = axes[i, j].imshow(grid, cmap="viridis", norm=LogNorm(1e-3, 1e-1))
                axes[i, j].set_title(f"{c}: {'all steps' if kind == 'all' else 'final states'}", fontsize=8)
                axes[i, j].axis("off")
        fig.colorbar(im, ax=axes, shrink=0.7, label="state frequency (seed %d)" % cfg.seeds[0])
        fig.suptitle(f"State occupancy, {m}")
        out.append(str(save_figure(fig, run.figures / f"occupancy_{m}.png", pdf=False)))
    return out


@study.step("report", cached=False)
def step_report(cfg: IrrlSkillsConfig, run: RunDir) -> Path:
    """Write `report.md`."""
    res = run.step_result("train") or {"runs": {}}
    world = four_rooms(cfg.learner.grid)
    lines = [
        f"# {NAME}",
        "",
        __doc__.strip().splitlines()[0],
        "",
        f"Grid `{cfg.learner.grid}` ({world.n_states} states), K = {cfg.learner.skills} skills, seeds "
        f"{cfg.seeds}, {cfg.iterations:,} iterations of {cfg.learner.batch_size} trajectories.",
        "",
        "Effective skills = exp(mean unclipped log reward) over evaluation trajectories (epsilon 0.001); skills "
        "learned = skills whose greedy trajectory ends where the discriminator decodes that skill.",
        "",
        "| reward | effective skills per seed | mean | skills learned per seed | paper (large grid, 30M) | "
        "seed-iterations/s |",
        "|---|---|---|---|---|---|",
    ]
    for m, r in res["runs"].items():
        per = ", ".join(f"{v:.1f}" for v in r["effective_skills"].values())
        paper = PAPER_SKILLS.get(m, "") if cfg.learner.grid == "large" else ""
        rate = r["seed_iterations_per_second"]
        learned = ", ".join(str(v) for v in r.get("skills_learned", {}).values())
        lines.append(
            f"| {m} | {per} | {r['mean_effective_skills']:.1f} | {learned} | {paper} | "
            f"{f'{rate:,.0f}' if rate else ''} |"
        )
    lines.append("")
    for p in sorted(run.figures.glob("*.png")):
        lines += [f"![{p.stem}](figures/{p.name})", ""]
    path = run.root / "report.md"
    write_text(path, "\n".join(lines))
    return path


def _mean_skills(summary: dict[str, Any], method: str) -> float | None:
    v = (summary.get("final_effective_skills") or {}).get(method)
    if isinstance(v, dict):
        v = [x for x in v.values() if isinstance(x, (int, float))]
        return float(np.mean(v)) if v else None
    return float(v) if isinstance(v, (int, float)) else None


@study.hook
def effect(summary: dict[str, Any], config: dict[str, Any]) -> Effect:
    """The clipped linear reward discovers more skills than the clipped log one (less biased, lower variance)."""
    lin, log = _mean_skills(summary, "linear_clipping"), _mean_skills(summary, "log_clipping")
    measured = lin is not None and log is not None
    return Effect(
        "the clipped linear reward discovers more skills than the clipped log reward",
        f"effective skills: linear {lin:.1f}, log {log:.1f}" if measured else "not measured",
        (lin > log) if measured else None,
        f"linear {PAPER_SKILLS['linear_clipping']:.0f}, log {PAPER_SKILLS['log_clipping']:.0f} (Li et al. 2023, "
        "large grid, 30M iterations)",
        "figures/effective_skills.png: the linear curve rises above the log one, which plateaus.",
    )
