"""Reward preprocessing for interpretability: tabular mazes (and shaped mountain car).

Reproduces Jenner & Gleave (2022), "Preprocessing Reward Functions for Interpretability" (arXiv 2203.13553):
potential shaping r' = r - c + gamma*Phi(s') - Phi(s) trained to make a reward sparse or smooth without
changing its optimal policies. Beyond the original: tabular L1 objectives solved exactly by linear
programming, interpretability measured (sparsity, smoothness, shaping invariance, optimal policy preserved),
and correct shaping of the antidense/random tables (the original's only behind `legacy_shaping=true`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardlab.config import param
from rewardlab.envs.tabular_maze import GAMMA, MAZES, REWARD_KINDS, SHAPINGS, MazeSpec, maze_spec, reward_table
from rewardlab.errors import RewardLabError
from rewardlab.interpret.metrics import invariance_gap, same_optimal_policy, smoothness, sparsity
from rewardlab.interpret.preprocess import (OBJECTIVES, PreprocessConfig, preprocess_tabular_adam, shaped_net_from_lp,
                                            solve_lp, tabular_pairs)
from rewardlab.learn.preferences import PreferenceConfig, learn_tabular_reward
from rewardlab.rewards.nets import save_reward_net
from rewardlab.rewards.tabular import TabularRewardNet
from rewardlab.runs import RunDir, read_json, set_torch_threads, write_json

NAME = "preprocessing"


@dataclass
class TabularStudyConfig:
    """Which tabular mazes, base rewards and shapings to preprocess."""

    mazes: list[str] = param(default_factory=lambda: list(MAZES), help="tabular mazes")
    rewards: list[str] = param(default_factory=lambda: list(REWARD_KINDS), help="base rewards: goal, path")
    shapings: list[str] = param(default_factory=lambda: list(SHAPINGS),
                                help="shapings of each base reward: unshaped, dense, antidense, random")
    legacy_shaping: bool = param(False, help="copy the original's antidense/random tables (a state offset, not "
                                             "shaping) and its goal-row overwrite after shaping")
    learned_mazes: list[str] = param(default_factory=lambda: ["EmptyMaze4", "EmptyMaze10"],
                                     help="mazes whose rewards are also learned from preferences and preprocessed")


@dataclass
class PreprocessingConfig:
    """Reward preprocessing for interpretability (Jenner & Gleave 2022)."""

    seed: int = param(0, help="master seed", min=0)
    gamma: float = param(GAMMA, help="discount of the shaping and of value iteration", min=0.0, max=1.0)
    tabular: TabularStudyConfig = param(default_factory=TabularStudyConfig, help="tabular mazes")
    preprocess: PreprocessConfig = param(default_factory=PreprocessConfig, help="shaping optimisation")
    preferences: PreferenceConfig = param(default_factory=PreferenceConfig, help="preference-learned rewards")

    def validate(self) -> None:
        """Check names of mazes, rewards and shapings."""
        for m in self.tabular.mazes + self.tabular.learned_mazes:
            maze_spec(m)
        for r in self.tabular.rewards:
            if r not in REWARD_KINDS:
                raise RewardLabError(f"unknown reward '{r}'; choose one of {', '.join(REWARD_KINDS)}")
        for s in self.tabular.shapings:
            if s not in SHAPINGS:
                raise RewardLabError(f"unknown shaping '{s}'; choose one of {', '.join(SHAPINGS)}")


CONFIG = PreprocessingConfig


def _done(run: RunDir, step: str) -> dict[str, Any] | None:
    path = run.root / step / "result.json"
    return read_json(path) if path.exists() else None


def _models(cfg: PreprocessingConfig, spec: MazeSpec) -> dict[tuple[str, str, str], np.ndarray]:
    """Reward tables to preprocess: (source, reward, shaping) -> R[s, s'], ground truth and learned."""
    t = cfg.tabular
    out = {}
    for reward in t.rewards:
        for shaping in t.shapings:
            R = reward_table(spec, reward, shaping, cfg.gamma, t.legacy_shaping)
            out[("true", reward, shaping)] = R
            if spec.name in t.learned_mazes:
                net = learn_tabular_reward(spec.next_state, R, cfg.preferences, seed=cfg.seed)
                out[("learned", reward, shaping)] = net.table.detach().numpy().astype(np.float64)
    return out


def preprocess_maze(cfg: PreprocessingConfig, run: RunDir, maze: str) -> dict[str, Any]:
    """Preprocess every reward model of one maze with every objective; save models, measure, plot."""
    from rewardlab.interpret.heatmaps import action_rewards, heatmap_grid

    spec = maze_spec(maze)
    s, _, s2 = spec.all_transitions()
    dones = np.zeros(len(s), dtype=bool)
    pairs = tabular_pairs(s, s2)
    models = _models(cfg, spec)
    keys = list(models)
    tables = np.stack([models[k] for k in keys])
    raw = tables[:, s, s2]  # (K, N)
    results: dict[str, dict[str, np.ndarray]] = {"unmodified": {"phi": np.zeros((len(keys), spec.n_states)),
                                                               "shift": np.zeros(len(keys)), "shaped": raw}}
    timings = {}
    for obj in cfg.preprocess.objectives:
        t0 = time.perf_counter()
        if obj.endswith("l1") and cfg.preprocess.l1_solver == "lp":
            sols = [solve_lp(raw[i], s, s2, dones, spec.n_states, cfg.gamma, obj, pairs) for i in range(len(keys))]
            results[obj] = {k: np.stack([x[k] for x in sols]) for k in ("phi", "shift", "shaped")}
        else:
            res = preprocess_tabular_adam(tables, s, s2, dones, pairs, obj, cfg.gamma, cfg.preprocess,
                                          desc=f"{maze} {obj}")
            results[obj] = res
        timings[obj] = time.perf_counter() - t0
    # save one model per objective plus the unmodified one
    out_dir = run.root / "models" / maze
    for i, (src, reward, shaping) in enumerate(keys):
        base = TabularRewardNet.from_table(models[(src, reward, shaping)])
        for obj, res in results.items():
            net = shaped_net_from_lp(base, spec.n_states, cfg.gamma, res["phi"][i], float(res["shift"][i]))
            save_reward_net(out_dir / f"{reward}_{shaping}_{src}.{obj}.pt", net,
                            {"maze": maze, "reward": reward, "shaping": shaping, "source": src, "objective": obj,
                             "gamma": cfg.gamma, "legacy_shaping": cfg.tabular.legacy_shaping})
    # metrics
    per_model: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for i, (src, reward, shaping) in enumerate(keys):
        scale = float(np.abs(raw[i]).max()) or 1.0
        entry = {}
        for obj, res in results.items():
            r = res["shaped"][i]
            shaped_table = models[(src, reward, shaping)] - res["shift"][i] + cfg.gamma * res["phi"][i][None, :] \
                - res["phi"][i][:, None]
            entry[obj] = {**sparsity(r, scale), "smoothness": smoothness(r, pairs),
                          "policy_preserved": same_optimal_policy(spec.next_state, models[(src, reward, shaping)],
                                                                  shaped_table, cfg.gamma)}
        per_model[f"{reward}/{shaping}/{src}"] = entry
    for src in sorted({k[0] for k in keys}):
        for reward in cfg.tabular.rewards:
            idx = [i for i, k in enumerate(keys) if k[0] == src and k[1] == reward]
            block = {}
            for obj in cfg.preprocess.objectives:
                before = [per_model[f"{reward}/{keys[i][2]}/{src}"]["unmodified"] for i in idx]
                after = [per_model[f"{reward}/{keys[i][2]}/{src}"][obj] for i in idx]
                mean = lambda xs, k: float(np.mean([x[k] for x in xs]))  # noqa: E731
                block[obj] = {
                    "sparsity_before": mean(before, "sparsity"), "sparsity_after": mean(after, "sparsity"),
                    "mean_abs_before": mean(before, "mean_abs"), "mean_abs_after": mean(after, "mean_abs"),
                    "smoothness_before": mean(before, "smoothness"), "smoothness_after": mean(after, "smoothness"),
                    "invariance_gap_before": invariance_gap([raw[i] for i in idx]),
                    "invariance_gap_after": invariance_gap([results[obj]["shaped"][i] for i in idx],
                                                           center=obj.startswith("smooth")),
                    "policy_preserved": all(x["policy_preserved"] for x in after),
                }
            summary[f"{reward}/{src}"] = block
            cols = ["unmodified"] + list(cfg.preprocess.objectives)
            values = {(keys[i][2], c): action_rewards(spec, results[c]["shaped"][i]) for i in idx for c in cols}
            heatmap_grid(spec, [keys[i][2] for i in idx], cols, values,
                         run.figures / f"heatmap_{maze}_{reward}_{src}.png",
                         f"{maze}, {reward} reward ({'ground truth' if src == 'true' else 'learned from preferences'})",
                         center=[c for c in cols if c.startswith("smooth")])
    result = {"summary": summary, "per_model": per_model, "seconds": timings, "n_transitions": int(len(s)),
              "n_pairs": int(len(pairs))}
    write_json(run.root / "tabular" / maze / "result.json", result)
    return result


def step_tabular(cfg: PreprocessingConfig, run: RunDir, redo: bool = False) -> dict[str, Any]:
    """Ground-truth and preference-learned rewards on the tabular mazes, preprocessed with every objective."""
    out = {}
    for maze in cfg.tabular.mazes:
        path = run.root / "tabular" / maze / "result.json"
        out[maze] = read_json(path) if path.exists() and not redo else preprocess_maze(cfg, run, maze)
    run.update_summary(tabular={m: r["summary"] for m, r in out.items()})
    write_json(run.root / "tabular" / "result.json", {m: r["summary"] for m, r in out.items()})
    return {m: r["summary"] for m, r in out.items()}


def step_report(cfg: PreprocessingConfig, run: RunDir) -> Any:
    """Write `report.md` with every figure and number of the run."""
    from rewardlab.runs import write_text

    s = run.summary()
    lines = ["# Reward preprocessing for interpretability", "",
             "Reproduces Jenner & Gleave (2022), *Preprocessing Reward Functions for Interpretability*.", "",
             "Sparsity: fraction of transitions with |r'| <= 1% of the original max |r| (higher is sparser). "
             "Smoothness: mean |r'_i - r'_j| over adjacent transition pairs (lower is smoother). Invariance gap: "
             "the largest difference between the preprocessed versions of the four shapings of one base reward "
             "(0 means preprocessing undid the shaping completely; smooth objectives compared mean-centred). "
             "Policy preserved: value iteration gives the same optimal actions before and after, in every state.", ""]
    for maze, blocks in s.get("tabular", {}).items():
        lines += [f"## {maze}", ""]
        for key, block in blocks.items():
            reward, src = key.split("/")
            lines += [f"### {reward} reward, {'ground truth' if src == 'true' else 'learned from preferences'}", "",
                      "| objective | sparsity before → after | mean abs | smoothness | invariance gap | policy preserved |",
                      "|---|---|---|---|---|---|"]
            for obj, m in block.items():
                lines.append(f"| {obj} | {m['sparsity_before']:.3f} → {m['sparsity_after']:.3f} | "
                             f"{m['mean_abs_before']:.3g} → {m['mean_abs_after']:.3g} | "
                             f"{m['smoothness_before']:.3g} → {m['smoothness_after']:.3g} | "
                             f"{m['invariance_gap_before']:.3g} → {m['invariance_gap_after']:.3g} | "
                             f"{'yes' if m['policy_preserved'] else 'NO'} |")
            lines += ["", f"![{maze} {key}](figures/heatmap_{maze}_{reward}_{src}.png)", ""]
    path = run.root / "report.md"
    write_text(path, "\n".join(lines) + "\n")
    return path


def run_all(cfg: PreprocessingConfig, run: RunDir, redo: bool = False) -> dict[str, Any]:
    """Every step in order; finished steps are reused unless `redo`."""
    set_torch_threads()
    t0 = time.time()
    step_tabular(cfg, run, redo)
    step_report(cfg, run)
    return run.update_summary(study=NAME, last_run_seconds=time.time() - t0)


STEP_FUNCS = {"tabular": step_tabular, "report": step_report}
STEP_ARGS: dict[str, Any] = {}
