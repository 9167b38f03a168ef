"""PTGM: a pre-trained goal codebook, low-level policy and goal prior make long-horizon RL sample-efficient.

Reproduces the Kitchen pipeline of Yuan et al. (ICLR 2024), "Pre-Training Goal-based Models for Sample-Efficient
Reinforcement Learning", on the mini-kitchen (a fast numpy stand-in for FrankaKitchen with the same task structure):
task-agnostic scripted demonstrations, a goal codebook (t-SNE + k-means++), a goal-conditioned low-level policy and a
goal prior by behaviour cloning, and high-level discrete SAC over codes regularised towards the prior. Baselines on
the same environment and budget: flat SAC (Stable-Baselines3), PTGM without the prior, PTGM with a random codebook.
Pre-training also runs on real Kitchen data (`data.source` = a D4RL HDF5 file or a local Minari folder).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.agents.configs import CodebookConfig, FlatSACConfig, HLSACConfig, PretrainConfig
from rewardlab.config import param
from rewardlab.core.jobs import Job, run_jobs
from rewardlab.core.runs import MetricsLogger, RunDir, read_json, write_json, write_text
from rewardlab.core.study import Curve, Effect, SeedMode, Study, figure
from rewardlab.errors import RewardLabError

NAME = "ptgm"
METHODS = ("ptgm", "ptgm_no_prior", "ptgm_random_codebook", "flat_sac")
LABELS = {
    "ptgm": "PTGM",
    "ptgm_no_prior": "PTGM without prior (entropy SAC)",
    "ptgm_random_codebook": "PTGM, random codebook",
    "flat_sac": "flat SAC",
}


@dataclass
class DataConfig:
    """Offline data: the scripted mini-kitchen demonstrator, or a real dataset for pre-training."""

    source: str = param(
        "scripted",
        help="scripted (mini-kitchen demonstrator), or the path of a D4RL-layout HDF5 "
        "file or of a local Minari dataset folder (pre-training only)",
    )
    episodes: int = param(500, help="scripted episodes", min=1)
    subtasks_per_episode: int = param(4, help="subtasks each scripted episode performs", min=1, max=7)
    action_noise: float = param(0.2, help="std of the demonstrator's action noise", min=0.0, max=2.0)
    seed: int = param(0, help="seed of the demonstrator", min=0)


@dataclass
class PtgmConfig:
    """The PTGM study: data, codebook, pre-training, and RL for every method over every seed."""

    data: DataConfig = param(default_factory=DataConfig, help="offline data")
    goal_features: list[int] = param(
        default_factory=list,
        help="observation indices of the goal features; empty: "
        "the domain's (mini-kitchen: effector and the 7 "
        "objects; Kitchen: PTGM's 21, docs/originals.md)",
        min=0,
        empty_ok=True,
    )
    codebook: CodebookConfig = param(default_factory=CodebookConfig, help="goal codebook")
    pretrain: PretrainConfig = param(default_factory=PretrainConfig, help="low-level policy and prior")
    rl: HLSACConfig = param(
        default_factory=HLSACConfig,
        help="high-level SAC (env_steps, eval_every and eval_episodes also apply to flat SAC)",
    )
    flat: FlatSACConfig = param(default_factory=FlatSACConfig, help="flat SAC baseline")
    methods: list[str] = param(default_factory=lambda: list(METHODS), help="methods to run: " + ", ".join(METHODS))
    seeds: list[int] = param(default_factory=lambda: [0, 1, 2], help="RL seeds, each method runs every seed", min=0)
    device: str = param(
        "auto", help="torch device for pre-training, the high-level SAC and flat SAC: auto, cpu or cuda"
    )
    workers: int = param(0, help="RL runs in parallel processes (0: one per core)", min=0)

    def validate(self) -> None:
        if not self.methods:
            raise RewardLabError("methods is empty; give at least one of " + ", ".join(METHODS))
        for m in self.methods:
            if m not in METHODS:
                raise RewardLabError(f"unknown method '{m}'; choose from {', '.join(METHODS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise RewardLabError(f"seeds must be distinct and non-empty, got {self.seeds}")
        self.codebook.validate()
        if self.rl.k != self.pretrain.horizon:
            raise RewardLabError(
                f"rl.k ({self.rl.k}) must equal pretrain.horizon ({self.pretrain.horizon}): the "
                "low-level policy is trained on goals up to k steps ahead"
            )
        from rewardlab.core.runs import check_device_name

        check_device_name(self.device)


study = Study(
    NAME,
    PtgmConfig,
    SeedMode.BATCHED,
    paper="Yuan et al. (ICLR 2024), Pre-Training Goal-based Models for Sample-Efficient Reinforcement Learning",
    doc=__doc__,
    curves=[Curve("rl/*/seed*/metrics.csv", "eval/subtasks", "Mini-kitchen: subtasks completed")],
    ignore=("device", "workers"),
    demo_seconds=83,  # the demo preset on 2 CPU cores (python -m benchmarks demo)
)


def _scripted_only(cfg: PtgmConfig) -> str | None:
    return (
        None
        if cfg.data.source == "scripted"
        else "RL runs on the mini-kitchen only; with a real dataset "
        "(data.source) the study runs the data, codebook and pretrain steps"
    )


def _source_file(cfg: PtgmConfig) -> dict[str, str]:
    return {} if cfg.data.source == "scripted" else {"data.source": cfg.data.source}


def _device(cfg: PtgmConfig) -> str:
    from rewardlab.core.runs import resolve_device

    return resolve_device(cfg.device)


# ----------------------------------------------------------------------------------------------------- domain
def _domain(cfg: PtgmConfig, obs_dim: int) -> tuple[list[int], int, int]:
    """Goal-feature indices and the observation/action widths the pipeline expects."""
    from rewardlab.envs import mini_kitchen as mk

    if cfg.data.source == "scripted":
        goal = cfg.goal_features or list(mk.GOAL_IDX)
        dims = (mk.OBS_DIM, mk.ACT_DIM)
    else:
        from rewardlab.envs.franka_kitchen import KITCHEN_ACT_DIM, KITCHEN_GOAL_IDX, KITCHEN_OBS_DIM

        goal = cfg.goal_features or list(KITCHEN_GOAL_IDX)
        dims = (KITCHEN_OBS_DIM, KITCHEN_ACT_DIM)
    if max(goal) >= dims[0] or min(goal) < 0:
        raise RewardLabError(f"goal_features {goal} do not fit {dims[0]}-d observations")
    return goal, *dims


def load_dataset(cfg: PtgmConfig, run: RunDir):
    from rewardlab.data.offline import read_d4rl

    return read_d4rl(run.path("data", "dataset.hdf5"))


# ----------------------------------------------------------------------------------------------------- steps
def _check_source(cfg: PtgmConfig) -> None:
    """A D4RL-layout file given as data.source must have that layout."""
    path = Path(cfg.data.source).expanduser()
    if cfg.data.source != "scripted" and path.is_file():
        from rewardlab.data.offline import check_d4rl

        check_d4rl(path)


@study.step("data", uses=["data"], inputs=_source_file, check=_check_source)
def step_data(cfg: PtgmConfig, run: RunDir) -> dict[str, Any]:
    """Write the offline dataset (`data/dataset.hdf5`, D4RL layout): scripted demos, or a copy of a real dataset."""
    from rewardlab.data.offline import read_d4rl, write_d4rl

    src = cfg.data.source
    if src == "scripted":
        from rewardlab.data.kitchen_demos import DemoConfig, scripted_demos

        ds = scripted_demos(
            DemoConfig(
                episodes=cfg.data.episodes,
                subtasks_per_episode=cfg.data.subtasks_per_episode,
                action_noise=cfg.data.action_noise,
                seed=cfg.data.seed,
            )
        )
    else:
        path = Path(src).expanduser()
        if path.is_file():
            ds = read_d4rl(path)
        elif path.is_dir():
            from rewardlab.data.minari import read_minari

            ds = read_minari(path)
        else:
            raise RewardLabError(f"data.source '{src}' is neither 'scripted' nor an existing file or folder")
    goal, obs_dim, act_dim = _domain(cfg, ds.obs_dim)
    ds.check_dims(obs_dim, act_dim, "the mini-kitchen pipeline" if src == "scripted" else "the Kitchen pipeline")
    write_d4rl(run.path("data", "dataset.hdf5"), ds)
    b = ds.episode_bounds()
    # which objects each episode moved past the completion threshold (coverage of the subtasks)
    result = {
        "steps": len(ds),
        "episodes": len(b),
        "mean_episode_length": float((b[:, 1] - b[:, 0]).mean()),
        "obs_dim": ds.obs_dim,
        "act_dim": ds.act_dim,
        "source": src,
    }
    if src == "scripted":
        from rewardlab.envs.mini_kitchen import AGENT_DIM, N_OBJ, OBJECTS, THRESHOLD

        final_q = ds.observations[b[:, 1] - 1, AGENT_DIM : AGENT_DIM + N_OBJ]
        result["episodes_completing"] = {o: int(v) for o, v in zip(OBJECTS, (final_q > 1 - THRESHOLD).sum(0))}
        result["dropped_episodes_solving_the_task"] = ds.meta.get("dropped_episodes_solving_the_task", 0)
    run.update_summary(dataset_steps=len(ds), dataset_episodes=len(b))
    return result


@study.step("codebook", uses=["goal_features", "codebook"], after=["data"], reads=["data/dataset.hdf5"])
def step_codebook(cfg: PtgmConfig, run: RunDir) -> dict[str, Any]:
    """Build the goal codebook (`codebook/codebook.npz`) and the random-codebook ablation's (`codebook/random.npz`)."""
    from rewardlab.agents.ptgm import build_codebook

    ds = load_dataset(cfg, run)
    goal, _, _ = _domain(cfg, ds.obs_dim)
    t0 = time.perf_counter()
    cb = build_codebook(ds, goal, cfg.codebook)
    seconds = time.perf_counter() - t0
    cb.save(run.path("codebook", "codebook.npz"))
    rnd = build_codebook(ds, goal, CodebookConfig(**{**asdict(cfg.codebook), "method": "random"}))
    rnd.save(run.path("codebook", "random.npz"))
    sizes = np.bincount(cb.assignment, minlength=cb.n) if cb.assignment is not None else None
    return {
        "codes": cb.n,
        "goal_dim": len(goal),
        "sampled_states": int(len(range(cfg.codebook.offset, len(ds), cfg.codebook.stride))),
        "seconds": seconds,
        "cluster_sizes": sizes.tolist() if sizes is not None else None,
    }


@study.step(
    "pretrain",
    uses=["pretrain", "methods"],
    after=["codebook"],
    reads=lambda cfg: ["data/dataset.hdf5", "codebook/codebook.npz"] + _random_files(cfg, "codebook/random.npz"),
)
def step_pretrain(cfg: PtgmConfig, run: RunDir) -> dict[str, Any]:
    """Behaviour-clone the low-level policy and train the goal prior (`pretrain/`; the random codebook gets its own
    prior, the low-level policy is shared)."""
    from rewardlab.agents.ptgm import Codebook, load_pretrained, pretrain
    from rewardlab.core.runs import set_torch_threads

    set_torch_threads(1)
    device = _device(cfg)
    ds = load_dataset(cfg, run)
    cb = Codebook.load(run.path("codebook", "codebook.npz"))
    with MetricsLogger(run.step_dir("pretrain")) as log:
        main = pretrain(ds, cb, cfg.pretrain, run.step_dir("pretrain"), log=lambda s, r: log.log(s, **r), device=device)
    low, _ = load_pretrained(run.path("pretrain", "pretrain.pt"), map_location=device)
    need_random = "ptgm_random_codebook" in cfg.methods
    res = {"main": {k: v for k, v in main.items() if k != "history"}, "history": main["history"]}
    if need_random:
        rnd_dir = run.step_dir("pretrain") / "random_codebook"
        with MetricsLogger(rnd_dir) as log:
            rnd = pretrain(
                ds,
                Codebook.load(run.path("codebook", "random.npz")),
                cfg.pretrain,
                rnd_dir,
                log=lambda s, r: log.log(s, **r),
                low_from=low,
                device=device,
            )
        res["random_codebook_prior"] = {k: v for k, v in rnd.items() if k not in ("history", "low_nll")}
    run.update_summary(low_level_val_nll=main["low_nll"], prior_val_accuracy=main["prior_acc"])
    return res


def _random_files(cfg: PtgmConfig, *paths: str) -> list[str]:
    return list(paths) if "ptgm_random_codebook" in cfg.methods else []


def _pretrained_files(cfg: PtgmConfig) -> list[str]:
    """What the hierarchical methods load: codebooks and pre-trained models."""
    if all(m == "flat_sac" for m in cfg.methods):
        return []
    return ["codebook/codebook.npz", "pretrain/pretrain.pt"] + _random_files(
        cfg, "codebook/random.npz", "pretrain/random_codebook/pretrain.pt"
    )


def rl_job(job: Job) -> None:
    """One (method, seed) RL run, in a worker process of the job runner; writes `rl/<method>/seed<seed>/result.json`.
    A run finished by a rewardlab older than the job runner (result.json, no status.json) counts as finished."""
    out = Path(job.out)
    if (out / "result.json").is_file():
        return
    from rewardlab.config import from_dict
    from rewardlab.core.runs import set_torch_threads
    from rewardlab.envs.mini_kitchen import KitchenSpec

    set_torch_threads(1)
    cfg = from_dict(PtgmConfig, job.extra["config"])
    device = _device(cfg)
    run = RunDir(job.extra["root"])
    method, seed = job.setting, job.seed
    spec = KitchenSpec()
    t0 = time.time()
    with MetricsLogger(out) as log:
        logf = lambda s, r: log.log(s, **r)  # noqa: E731
        if method == "flat_sac":
            from rewardlab.agents.flat_sac import train_flat_sac

            res = train_flat_sac(
                cfg.flat,
                spec,
                cfg.rl.env_steps,
                out,
                seed,
                cfg.rl.eval_every,
                cfg.rl.eval_episodes,
                log=logf,
                trust_pickle=bool(job.extra.get("trust_pickle")),
                device=device,
            )
        else:
            from rewardlab.agents.hl_sac import train_hl

            low, prior, cb, rl = _method_models(cfg, run, method, device)
            res = train_hl(rl, low, prior, cb, spec, out, seed, log=logf, device=device)
    res["wall_seconds"] = time.time() - t0
    write_json(out / "result.json", res)


@study.step(
    "rl",
    uses=["rl", "flat", "methods", "seeds"],
    after=["pretrain"],
    applies=_scripted_only,
    reads=lambda cfg: _pretrained_files(cfg),
)
def step_rl(cfg: PtgmConfig, run: RunDir) -> dict[str, Any]:
    """RL on the mini-kitchen for every method and seed, as jobs of the job runner (`rl/sweep.json`, a
    `status.json` per run): finished runs are skipped, an interrupted one resumes from its checkpoint, and a failing
    one is reported without stopping the others."""
    from rewardlab.config import to_dict

    _device(cfg)  # a device this machine lacks is refused here, in one line, not once per run
    extra = {"config": to_dict(cfg), "root": str(run.root), "trust_pickle": run.trust_pickle}
    jobs = [
        Job(NAME, "", m, s, [], str(run.root / "rl" / m / f"seed{s}"), extra) for m in cfg.methods for s in cfg.seeds
    ]
    manifest = run.path("rl", "sweep.json")
    write_json(manifest, {"study": NAME, "step": "rl", "methods": cfg.methods, "seeds": cfg.seeds, "runs": []})
    statuses = run_jobs(jobs, rl_job, workers=cfg.workers, manifest=manifest, label="ptgm rl")
    failures = {
        f"{j.setting}/seed{j.seed}": statuses[j.out].get("error", statuses[j.out]["status"])
        for j in jobs
        if statuses[j.out].get("status") != "finished"
    }
    if failures:
        lines = "; ".join(f"{k}: {v}" for k, v in failures.items())
        raise RewardLabError(
            f"{len(failures)} of {len(jobs)} RL runs failed ({lines}); the others are kept, "
            "rerun the step to retry the failed ones"
        )
    results = {(j.setting, j.seed): read_json(Path(j.out) / "result.json") for j in jobs}
    final = {m: {str(s): results[(m, s)]["final_subtasks"] for s in cfg.seeds} for m in cfg.methods}
    means = {m: float(np.mean(list(v.values()))) for m, v in final.items()}
    summary = {
        "final_mean_subtasks": means,
        "final_subtasks": final,
        "env_steps_run": {m: int(min(results[(m, s)]["env_steps"] for s in cfg.seeds)) for m in cfg.methods},
    }
    if "ptgm" in means and "flat_sac" in means:
        summary["ptgm_over_flat_sac"] = means["ptgm"] / means["flat_sac"] if means["flat_sac"] > 0 else None
    run.update_summary(**summary)
    return {
        **summary,
        "runs": {f"{m}/seed{s}": {k: v for k, v in r.items() if k != "history"} for (m, s), r in results.items()},
    }


def _method_models(cfg: PtgmConfig, run: RunDir, method: str, device: str = "cpu") -> tuple[Any, Any, Any, Any]:
    """A hierarchical method's pre-trained low level and prior (on `device`), codebook, and its high-level SAC
    config."""
    from rewardlab.agents.ptgm import Codebook, load_pretrained

    random_cb = method == "ptgm_random_codebook"
    low, prior = load_pretrained(run.path("pretrain", "pretrain.pt"), map_location=device)
    if random_cb:
        _, prior = load_pretrained(run.path("pretrain", "random_codebook", "pretrain.pt"), map_location=device)
    cb = Codebook.load(run.path("codebook", "random.npz" if random_cb else "codebook.npz"))
    return low, prior, cb, HLSACConfig(**{**asdict(cfg.rl), "use_prior": method != "ptgm_no_prior"})


def _final_policy_kitchens(cfg: PtgmConfig, run: RunDir, method: str, seed: int, episodes: int, device: str = "cpu"):
    """The kitchens at the end of `episodes` stochastic episodes of one run's final policy (its nets on `device`)."""
    from rewardlab.envs.mini_kitchen import KitchenSpec

    out = run.root / "rl" / method / f"seed{seed}"
    spec = KitchenSpec()
    if method == "flat_sac":
        from rewardlab.agents.flat_sac import load_flat_sac, rollout_policy
        from rewardlab.envs.mini_kitchen import VectorMiniKitchen

        if not any((out / f).exists() for f in ("flat_sac.pt", "flat_sac.zip")):
            raise RewardLabError(f"no flat SAC model in '{out}'; run the `rl` step first")
        kitchen = VectorMiniKitchen(1, spec, 0)
        model = load_flat_sac(
            out / "flat_sac.pt",
            spaces=(kitchen.single_observation_space, kitchen.single_action_space),
            trust_pickle=run.trust_pickle,
            config=cfg.flat,
            device=device,
        )
        return rollout_policy(lambda o: model.predict(o, deterministic=False)[0], spec, episodes, 20_000 + seed)
    import torch

    from rewardlab.agents.hl_sac import Hierarchy, HighLevelSAC, rollout
    from rewardlab.core.runs import load_checkpoint

    low, prior, cb, rl = _method_models(cfg, run, method, device)
    agent = HighLevelSAC(rl, prior, low.obs_dim, seed, device)
    agent.load_state_dict(load_checkpoint(out / "hl_sac.pt")["agent"])
    torch.manual_seed(seed)
    return rollout(agent, Hierarchy(low, cb, rl.k, rl.low_deterministic, device), spec, episodes, 20_000 + seed)


@study.step(
    "diagnose",
    after=["rl"],
    applies=_scripted_only,
    reads=lambda cfg: (
        _pretrained_files(cfg)
        + [
            f"rl/{m}/seed{s}/{'flat_sac.pt' if m == 'flat_sac' else 'hl_sac.pt'}"
            for m in cfg.methods
            for s in cfg.seeds
        ]
    ),
)
def step_diagnose(cfg: PtgmConfig, run: RunDir) -> dict[str, Any]:
    """Which subtasks each method's final policies complete (100 fresh stochastic episodes per run), and whether
    the pre-trained low level can reach each target subtask at all from a fresh kitchen and once the other three
    targets are done (best code held for 6 high-level steps)."""
    from rewardlab.core.runs import set_torch_threads
    from rewardlab.envs.mini_kitchen import KitchenSpec

    set_torch_threads(1)
    device = _device(cfg)
    tasks = KitchenSpec().tasks
    rates: dict[str, dict[str, float]] = {}
    for m in cfg.methods:
        done = np.concatenate([~_final_policy_kitchens(cfg, run, m, s, 100, device).remaining for s in cfg.seeds])
        rates[m] = {t: float(v) for t, v in zip(tasks, done.mean(0))} | {"mean_subtasks": float(done.sum(1).mean())}
    reach = last_subtask_reach(cfg, run, device)
    return {"subtask_completion_rate": rates, "episodes_per_run": 100, "low_level_reach": reach}


def last_subtask_reach(cfg: PtgmConfig, run: RunDir, device: str = "cpu") -> dict[str, dict[str, float]]:
    """Per target subtask: the best code's success rate from a fresh kitchen and from one where the other three
    targets are already open (the situation of a last subtask), with the pre-trained codebook and low level (on
    `device`)."""
    from rewardlab.agents.hl_sac import Hierarchy, code_reach
    from rewardlab.envs.mini_kitchen import KitchenSpec

    if cfg.data.source != "scripted":
        return {}
    low, _, cb, rl = _method_models(cfg, run, "ptgm", device)
    hier = Hierarchy(low, cb, rl.k, rl.low_deterministic, device)
    spec = KitchenSpec()
    out = {}
    for t in spec.tasks:
        others = tuple(o for o in spec.tasks if o != t)
        fresh = code_reach(hier, spec, t, (), seed=1)
        last = code_reach(hier, spec, t, others, seed=2)
        out[t] = {
            "fresh": float(fresh.max()),
            "after_other_targets": float(last.max()),
            "best_code_fresh": int(fresh.argmax()),
            "best_code_after": int(last.argmax()),
        }
    return out


@study.step("figures", cached=False, after=["rl"], applies=_scripted_only)
def step_figures(cfg: PtgmConfig, run: RunDir) -> list[str]:
    """Subtasks completed against environment steps (mean and 95% interval over seeds, every method on one plot)
    and the codebook in its t-SNE plane."""
    from rewardlab.core.runs import read_metrics
    from rewardlab.interpret.plots import mean_spread, plt, save_figure

    out = []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, m in enumerate(cfg.methods):
        curves = []
        for s in cfg.seeds:
            path = run.root / "rl" / m / f"seed{s}" / "metrics.csv"
            if not path.exists():
                raise RewardLabError(f"no RL metrics for {m} seed {s}; run the `rl` step first")
            curves.append(read_metrics(path)["eval/subtasks"])
        n = min(len(c[0]) for c in curves)
        mean_spread(ax, curves[0][0][:n], [c[1][:n] for c in curves], LABELS[m], color=f"C{i}", spread="ci95")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("subtasks completed (of 4)")
    ax.set_ylim(-0.1, 4.1)
    ax.set_title("Mini-kitchen: subtasks completed (mean, 95% CI over seeds)")
    ax.legend(fontsize=7, loc="upper left")
    out.append(str(save_figure(fig, run.figures / "subtasks.png")))
    from rewardlab.agents.ptgm import Codebook

    cb = Codebook.load(run.path("codebook", "codebook.npz"))
    if cb.embedding is not None:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(cb.embedding[:, 0], cb.embedding[:, 1], c=cb.assignment % 20, cmap="tab20", s=2, alpha=0.5)
        # the codes: the sampled state nearest each cluster centre (indices are dataset rows; map to sample order)
        samples = np.arange(
            cfg.codebook.offset, cfg.codebook.offset + cfg.codebook.stride * len(cb.embedding), cfg.codebook.stride
        )
        pos = np.searchsorted(samples, cb.indices)
        ax.scatter(cb.embedding[pos, 0], cb.embedding[pos, 1], marker="x", color="k", s=30, label="codes")
        ax.set_title(f"Goal codebook: t-SNE of goal features, {cb.n} k-means++ clusters")
        ax.legend(fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        out.append(str(save_figure(fig, run.figures / "codebook_tsne.png", pdf=False)))
    return out


@study.step("report", cached=False)
def step_report(cfg: PtgmConfig, run: RunDir) -> Path:
    """Write `report.md`."""
    rl = run.step_result("rl") or {}
    data = run.step_result("data") or {}
    pre = run.step_result("pretrain") or {}
    lines = [
        f"# {NAME}",
        "",
        __doc__.strip().splitlines()[0],
        "",
        f"Data: {data.get('episodes', '?')} episodes, {data.get('steps', '?')} steps ({cfg.data.source}). "
        f"Codebook: N = {cfg.codebook.n_codes} ({cfg.codebook.method}). Pre-training: {cfg.pretrain.steps:,} steps "
        f"(low-level validation NLL {pre.get('main', {}).get('low_nll', float('nan')):.3f}, prior validation "
        f"accuracy {pre.get('main', {}).get('prior_acc', float('nan')):.3f}). High level: k = {cfg.rl.k}, "
        f"{cfg.rl.env_steps:,} environment steps per run, seeds {cfg.seeds}.",
        "",
        "| method | subtasks completed per seed | mean |",
        "|---|---|---|",
    ]
    for m, per in rl.get("final_subtasks", {}).items():
        lines.append(
            f"| {LABELS[m]} | {', '.join(f'{v:.2f}' for v in per.values())} | {rl['final_mean_subtasks'][m]:.2f} |"
        )
    if rl.get("ptgm_over_flat_sac"):
        lines += ["", f"PTGM completes {rl['ptgm_over_flat_sac']:.1f}x as many subtasks as flat SAC."]
    diag = run.step_result("diagnose")
    if diag:
        rates = diag["subtask_completion_rate"]
        tasks = [t for t in next(iter(rates.values())) if t != "mean_subtasks"]
        lines += [
            "",
            f"Completion rate of each subtask by the final policies ({diag['episodes_per_run']} fresh "
            "episodes per seed):",
            "",
            "| method | " + " | ".join(tasks) + " | mean subtasks |",
            "|---|" + "---|" * (len(tasks) + 1),
        ]
        for m, r in rates.items():
            lines.append(
                f"| {LABELS[m]} | " + " | ".join(f"{r[t]:.2f}" for t in tasks) + f" | {r['mean_subtasks']:.2f} |"
            )
        if diag.get("low_level_reach"):
            reach = diag["low_level_reach"]
            lines += [
                "",
                "Can the pre-trained low level reach each subtask at all? Best code's success rate, the code "
                "held for 6 high-level steps, from a fresh kitchen and from one where the other three targets "
                "are done (the last subtask of an episode). A subtask that no code reaches last caps what any "
                "high-level policy can score:",
                "",
                "| subtask | from a fresh kitchen | after the other three |",
                "|---|---|---|",
            ]
            lines += [f"| {t} | {r['fresh']:.2f} | {r['after_other_targets']:.2f} |" for t, r in reach.items()]
    lines.append("")
    for p in sorted(run.figures.glob("*.png")):
        lines += [f"![{p.stem}](figures/{p.name})", ""]
    path = run.root / "report.md"
    write_text(path, "\n".join(lines))
    return path


@study.hook
def effect(summary: dict[str, Any], config: dict[str, Any]) -> Effect:
    """PTGM (pre-trained goals, a goal prior, a low-level policy) completes more subtasks than flat SAC."""
    ptgm, flat = figure(summary, "final_mean_subtasks.ptgm"), figure(summary, "final_mean_subtasks.flat_sac")
    measured = ptgm is not None and flat is not None
    steps = figure(summary, "env_steps_run.ptgm")
    return Effect(
        "PTGM completes more subtasks than flat SAC at the same number of environment steps",
        f"subtasks (of 4): PTGM {ptgm:.2f}, flat SAC {flat:.2f}" + (f" after {steps:,.0f} steps" if steps else "")
        if measured
        else "not measured",
        (ptgm > flat) if measured else None,
        "PTGM above SAC (Yuan et al. 2024, Kitchen, curves to about 1.5M steps; no numbers published)",
        "figures/subtasks.png: PTGM's curve leaves flat SAC's behind from the first evaluations.",
    )
