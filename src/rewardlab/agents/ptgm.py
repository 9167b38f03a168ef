"""PTGM pre-training (Yuan et al., ICLR 2024): goal codebook, cosine labels, hindsight windows, low-level policy, prior.

- `build_codebook`: goal features of every `stride`-th dataset state (from `offset`), t-SNE to 2-D, k-means++ with N
  clusters in that plane, and per cluster the real sample nearest its centre; both its goal features and its full
  state are kept. `random_codebook` is the no-clustering ablation (N dataset states drawn uniformly).
- `cosine_labels`: argmax_i cos(g, c_i) on raw features.
- `WindowSampler`: a random episode, t_g ~ U[horizon, len - 1], the `horizon` states and actions before t_g, each
  with the goal feat(s[t_g]) (goal 1..horizon steps ahead).
- `GoalMLP`: Linear(in, 128) + LeakyReLU(0.2), 3 x [Linear(128, 128, no bias) + BatchNorm1d + LeakyReLU(0.2)],
  Linear(128, out), Xavier-normal weights: the network of every pre-trained PTGM Kitchen model.
- `pretrain`: the goal-conditioned Gaussian low-level policy (summed-dimension NLL, log-std clamped to [-10, 2]) and
  the goal prior (cross-entropy over codes), trained on the same windows with RAdam, on any torch device (the
  dataset, the windows' generator and both nets live there; checkpoints hold CPU tensors and load on any device).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rewardlab.agents.configs import CodebookConfig, PretrainConfig  # noqa: F401
from rewardlab.core.modules import module_from_record, module_record, module_weights, register_module
from rewardlab.core.runs import atomic_path, load_checkpoint, save_checkpoint, to_cpu
from rewardlab.data.offline import OfflineDataset
from rewardlab.errors import RewardLabError

LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0


# ----------------------------------------------------------------------------------------------------- codebook
@dataclass
class Codebook:
    """N goal codes: their goal features (N, goal_dim), full states (N, obs_dim), dataset indices and 2-D embedding."""

    features: np.ndarray
    states: np.ndarray
    indices: np.ndarray
    goal_idx: np.ndarray
    embedding: np.ndarray | None = None  # (M, 2) t-SNE of the sampled points (tsne_kmeans only)
    assignment: np.ndarray | None = None  # (M,) cluster of each sampled point

    @property
    def n(self) -> int:
        return len(self.features)

    def save(self, path: str | Path) -> None:
        arrays = {k: v for k, v in self.__dict__.items() if v is not None}
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @staticmethod
    def load(path: str | Path) -> "Codebook":
        path = Path(path)
        if not path.is_file():
            raise RewardLabError(f"codebook '{path}' does not exist; run the codebook step")
        try:
            with np.load(path) as z:
                data = {k: z[k] for k in z.files}
            return Codebook(**data)
        except (OSError, ValueError, TypeError) as e:
            raise RewardLabError(f"codebook '{path}' is corrupt ({e}); rerun the codebook step with --redo") from None


def build_codebook(ds: OfflineDataset, goal_idx: Sequence[int], cfg: CodebookConfig) -> Codebook:
    """The PTGM codebook of `ds` (see the module docstring)."""
    cfg.validate()
    goal_idx = np.asarray(goal_idx, dtype=np.int64)
    if goal_idx.max(initial=-1) >= ds.obs_dim:
        raise RewardLabError(f"goal feature index {goal_idx.max()} is outside the {ds.obs_dim}-d observations")
    idx = np.arange(cfg.offset, len(ds), cfg.stride)
    if len(idx) < cfg.n_codes:
        raise RewardLabError(
            f"only {len(idx)} sampled states for {cfg.n_codes} codes; use more data, a smaller stride or fewer codes"
        )
    feats = ds.observations[idx][:, goal_idx].astype(np.float64)
    rng = np.random.default_rng(cfg.seed)
    emb = assign = None
    if cfg.method == "random":
        pick = np.sort(rng.choice(len(idx), cfg.n_codes, replace=False))
    else:
        from sklearn.cluster import KMeans

        if cfg.method == "tsne_kmeans":
            from sklearn.manifold import TSNE

            space = TSNE(
                2, perplexity=min(cfg.perplexity, (len(feats) - 1) / 3), init="pca", random_state=cfg.seed
            ).fit_transform(feats)
            emb = space.astype(np.float32)
        else:
            space = feats
        km = KMeans(cfg.n_codes, init="k-means++", n_init=1, random_state=cfg.seed).fit(space)
        assign = km.labels_.astype(np.int64)
        # per cluster, the real sample nearest its centre (in the clustering space)
        d = (
            ((space[:, None, :] - km.cluster_centers_[None, :, :]) ** 2).sum(-1)
            if len(space) * cfg.n_codes < 5e7
            else None
        )
        pick = np.empty(cfg.n_codes, dtype=np.int64)
        for c in range(cfg.n_codes):  # N iterations, each vectorised over the cluster
            members = np.flatnonzero(assign == c)
            dc = d[members, c] if d is not None else ((space[members] - km.cluster_centers_[c]) ** 2).sum(1)
            pick[c] = members[np.argmin(dc)]
    return Codebook(
        features=feats[pick],
        states=ds.observations[idx[pick]].astype(np.float64),
        indices=idx[pick],
        goal_idx=goal_idx,
        embedding=emb,
        assignment=assign,
    )


def cosine_labels(goals: np.ndarray | torch.Tensor, codes: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Index of the code with the highest cosine similarity to each goal: (B, g) x (N, g) -> (B,) int64."""
    g = torch.as_tensor(goals, dtype=torch.float32)
    c = torch.as_tensor(codes, dtype=torch.float32)
    if g.shape[-1] != c.shape[-1]:
        raise RewardLabError(f"goals have {g.shape[-1]} features but codes have {c.shape[-1]}")
    return (F.normalize(g, dim=-1) @ F.normalize(c, dim=-1).T).argmax(dim=-1)


# ----------------------------------------------------------------------------------------------------- windows
class WindowSampler:
    """Hindsight windows: `horizon` consecutive steps of one episode, all with the goal feat(s[t_g]) just after.
    The dataset is held on `device`; `sample` draws with a generator on that device."""

    def __init__(
        self,
        ds: OfflineDataset,
        goal_idx: Sequence[int],
        horizon: int = 10,
        episodes: np.ndarray | None = None,
        device: str | torch.device = "cpu",
    ):
        bounds = ds.episode_bounds() if episodes is None else episodes
        lens = bounds[:, 1] - bounds[:, 0]
        keep = lens >= horizon + 1  # demos shorter than subseq_len = horizon + 1 are dropped, as in the original
        if not keep.any():
            raise RewardLabError(f"no episode has the {horizon + 1} steps a training window needs")
        self.bounds = bounds[keep]
        self.horizon = horizon
        self.obs = torch.as_tensor(ds.observations, device=device)
        self.act = torch.as_tensor(ds.actions, device=device)
        self.goal_idx = torch.as_tensor(np.asarray(goal_idx, dtype=np.int64), device=device)
        self.start = torch.as_tensor(self.bounds[:, 0], device=device)
        self.length = torch.as_tensor(self.bounds[:, 1] - self.bounds[:, 0], device=device)
        self.device = self.obs.device

    def sample(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """States (B*h, obs), actions (B*h, act) and goals (B*h, g) of `batch` windows of `horizon` steps."""
        e = torch.randint(len(self.bounds), (batch,), generator=gen, device=self.device)
        start = self.start[e]
        length = self.length[e]
        # t_g uniform in [horizon, len - 1] (episode-relative)
        tg = self.horizon + (torch.rand(batch, generator=gen, device=self.device) * (length - self.horizon)).long()
        steps = start[:, None] + tg[:, None] - self.horizon + torch.arange(self.horizon, device=self.device)[None, :]
        goal = self.obs[start + tg][:, self.goal_idx]
        h = self.horizon
        return (
            self.obs[steps].reshape(batch * h, -1),
            self.act[steps].reshape(batch * h, -1),
            goal[:, None, :].expand(batch, h, -1).reshape(batch * h, -1),
        )


# ----------------------------------------------------------------------------------------------------- networks
@register_module("ptgm.goal_mlp")
class GoalMLP(nn.Module):
    """PTGM's Kitchen network: input layer, `blocks` x (Linear no bias + BatchNorm1d + LeakyReLU(0.2)), head."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, blocks: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden), nn.LeakyReLU(0.2)]
        for _ in range(blocks):
            layers += [nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(hidden, out_dim))
        self.net = nn.Sequential(*layers)
        self.dims = dict(in_dim=in_dim, out_dim=out_dim, hidden=hidden, blocks=blocks)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_module("ptgm.low_level")
class LowLevelPolicy(nn.Module):
    """P(a | s, g): a diagonal Gaussian whose mean and log-std come from a GoalMLP on concat(s, g)."""

    def __init__(self, obs_dim: int, goal_dim: int, act_dim: int, hidden: int = 128, blocks: int = 3):
        super().__init__()
        self.obs_dim, self.goal_dim, self.act_dim = obs_dim, goal_dim, act_dim
        self.mlp = GoalMLP(obs_dim + goal_dim, 2 * act_dim, hidden, blocks)

    def dist(self, obs: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.mlp(torch.cat([obs, goal], dim=-1))
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def nll(self, obs: torch.Tensor, goal: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Gaussian negative log-likelihood, summed over action dimensions, averaged over the batch."""
        mean, log_std = self.dist(obs, goal)
        z = (act - mean) * torch.exp(-log_std)
        return (0.5 * z.pow(2) + log_std + 0.5 * np.log(2 * np.pi)).sum(-1).mean()

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, goal: torch.Tensor, gen: torch.Generator | None = None, deterministic: bool = False
    ) -> torch.Tensor:
        """Sampled actions (stochastic at run time, as in PTGM), clipped to [-1, 1]; `gen` on the policy's device."""
        mean, log_std = self.dist(obs, goal)
        if deterministic:
            return mean.clamp(-1, 1)
        return (mean + torch.exp(log_std) * torch.randn(mean.shape, generator=gen, device=mean.device)).clamp(-1, 1)


# ----------------------------------------------------------------------------------------------------- pre-training
def pretrain(
    ds: OfflineDataset,
    codebook: Codebook,
    cfg: PretrainConfig,
    out: Path,
    log: Callable[[int, dict[str, float]], None] | None = None,
    low_from: LowLevelPolicy | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Train the low-level policy and the goal prior on `device`; checkpoints `out/pretrain.pt` (resumable, on any
    device) and returns stats.

    low_from: a trained low-level policy to keep as it is (it does not depend on the codebook), so only the prior
    is trained, e.g. for another codebook; it is moved to `device`.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    bounds = ds.episode_bounds()
    rng = np.random.default_rng(cfg.seed)
    n_val = int(round(cfg.val_fraction * len(bounds)))
    perm = rng.permutation(len(bounds))
    val_b, train_b = bounds[np.sort(perm[:n_val])], bounds[np.sort(perm[n_val:])]
    goal_idx = codebook.goal_idx
    train = WindowSampler(ds, goal_idx, cfg.horizon, train_b, device)
    val = (
        WindowSampler(ds, goal_idx, cfg.horizon, val_b, device)
        if n_val and (val_b[:, 1] - val_b[:, 0] > cfg.horizon).any()
        else None
    )
    codes = torch.as_tensor(codebook.features, dtype=torch.float32, device=device)
    # built on the CPU (the weights a seed always gave), then moved
    low = (
        low_from
        if low_from is not None
        else LowLevelPolicy(ds.obs_dim, len(goal_idx), ds.act_dim, cfg.hidden, cfg.blocks)
    ).to(device)
    prior = GoalMLP(ds.obs_dim, codebook.n, cfg.hidden, cfg.blocks).to(device)
    opt_low = torch.optim.RAdam(low.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    opt_prior = torch.optim.RAdam(prior.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    ckpt = out / "pretrain.pt"
    step, seconds, history = 0, 0.0, []
    if ckpt.exists():
        st = load_checkpoint(ckpt)
        low.load_state_dict(module_weights(st["low"])), prior.load_state_dict(module_weights(st["prior"]))
        opt_low.load_state_dict(st["opt_low"]), opt_prior.load_state_dict(st["opt_prior"])
        step, seconds, history = st["step"], st["seconds"], st["history"]
        restore_generator(gen, st, cfg.seed + 7919 * (step + 1))

    def save() -> None:
        save_checkpoint(
            ckpt,
            {
                "low": module_record(low),
                "prior": module_record(prior),
                "opt_low": to_cpu(opt_low.state_dict()),
                "opt_prior": to_cpu(opt_prior.state_dict()),
                "step": step,
                "seconds": seconds,
                "history": history,
                **generator_state(gen),
            },
        )

    def evaluate() -> dict[str, float]:
        was = low.training
        low.eval(), prior.eval()
        vgen = torch.Generator(device=device).manual_seed(12345)
        with torch.no_grad():
            s, a, g = (val or train).sample(256, vgen)
            y = cosine_labels(g, codes)
            logits = prior(s)
            res = {
                "low_nll": float(low.nll(s, g, a)),
                "prior_ce": float(F.cross_entropy(logits, y)),
                "prior_acc": float((logits.argmax(-1) == y).float().mean()),
            }
        low.train(was), prior.train()
        return res

    low.train(low_from is None)
    if step == 0:
        history.append({"step": 0, **evaluate()})
    t0 = time.perf_counter()
    while step < cfg.steps:
        s, a, g = train.sample(cfg.batch, gen)
        y = cosine_labels(g, codes)
        clip = 1e-3 if step < cfg.warm_clip_steps else None
        nets = [(prior, opt_prior, lambda: F.cross_entropy(prior(s), y))]
        if low_from is None:
            nets.append((low, opt_low, lambda: low.nll(s, g, a)))
        for net, opt, loss in nets:
            opt.zero_grad(set_to_none=True)
            lv = loss()
            lv.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
        step += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            row = {"step": step, **evaluate()}
            history.append(row)
            if log is not None:
                log(step, {k: v for k, v in row.items() if k != "step"})
            save()
    if not ckpt.exists():
        save()
    return {"steps": step, "seconds": seconds, "history": history, **history[-1]}


def load_pretrained(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[LowLevelPolicy, GoalMLP]:
    """The low-level policy and prior of a `pretrain.pt`, in eval mode on `map_location`."""
    st = load_checkpoint(path)
    if isinstance(st.get("low"), dict) and "kind" in st["low"]:  # the one module format
        low, _ = module_from_record(st["low"], f"'{path}'", expect=LowLevelPolicy)
        prior, _ = module_from_record(st["prior"], f"'{path}'", expect=GoalMLP)
        return low.to(map_location).eval(), prior.to(map_location).eval()
    try:  # written before the one module format
        ld = st["low_dims"]
        low = LowLevelPolicy(st["obs_dim"], st["goal_dim"], st["act_dim"], ld["hidden"], ld["blocks"])
        low.load_state_dict(st["low"])
        prior = GoalMLP(**st["prior_dims"])
        prior.load_state_dict(st["prior"])
    except (KeyError, RuntimeError) as e:
        raise RewardLabError(f"'{path}' is not a PTGM pre-training checkpoint ({str(e).splitlines()[0]})") from None
    return low.to(map_location).eval(), prior.to(map_location).eval()


# ----------------------------------------------------------------------------------------------------- devices
def generator_state(gen: torch.Generator) -> dict[str, Any]:
    """A torch Generator's state for a checkpoint, with the kind of device it draws on."""
    return {"gen": gen.get_state()} | ({} if gen.device.type == "cpu" else {"gen_device": gen.device.type})


def restore_generator(gen: torch.Generator, saved: dict[str, Any], reseed: int) -> None:
    """Restore `generator_state`'s state into `gen`; a state drawn on another kind of device (CPU and CUDA
    generators are different algorithms) cannot continue there, so `gen` is seeded with `reseed` instead."""
    if saved.get("gen_device", "cpu") == gen.device.type:
        gen.set_state(saved["gen"].cpu())
    else:
        gen.manual_seed(reseed)
