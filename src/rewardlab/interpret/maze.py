"""Saliency maps and counterfactual probes of maze reward models and policies (Michaud et al. 2020, B4).

The probes test the paper's hypothesis that a regressed maze reward rewards "no goal visible in s'"
(a shortcut the rendering allows, since the agent hides a reached goal) rather than "agent reached the goal".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from rewardlab.data.transitions import Transitions
from rewardlab.envs.maze import (
    ACTION_NAMES,
    CORNERS,
    FREE_CELLS,
    GOAL_DRAWS,
    LAYOUT,
    MOTIONS,
    SIZE,
    WALL,
    draw_grid,
    maze_states,
    render_grid,
    state_indices,
)
from rewardlab.errors import RewardLabError
from rewardlab.interpret.plots import plt, save_figure
from rewardlab.interpret.saliency import gradient_saliency
from rewardlab.rewards.nets import MazeRewardMLP

TL, BR = CORNERS  # (1, 1) top-left, (9, 9) bottom-right


def transition(agent: tuple[int, int], action: int, goals: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The (s, s') grids of one maze step from `agent` with `action`, with goals drawn where visible."""
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    for g in goals:
        mask[g] = True
    a = np.asarray(agent)
    b = a + MOTIONS[action]
    if LAYOUT[b[0], b[1]] == WALL:
        b = a
    return draw_grid(a, mask), draw_grid(b, mask)


def reward_of(net: MazeRewardMLP, s: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """R(s, s') for grids of shape (..., 11, 11), as numpy."""
    shape = np.shape(s)[:-2]
    r = net.predict_th(np.reshape(s, (-1, SIZE, SIZE)), None, np.reshape(s2, (-1, SIZE, SIZE)), None)
    return r.cpu().numpy().reshape(shape)


def _goal_of(grid: np.ndarray) -> tuple[int, int] | None:
    g = np.argwhere(grid == 3)
    return tuple(int(x) for x in g[0]) if len(g) else None


def pick_saliency_examples(data: Transitions, per_goal: int = 2) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Per goal corner (bottom-right first): `per_goal` ordinary transitions from the data (goal visible in
    s, not reached), then a hand-built transition onto that goal, as in the paper's 3x6 figure."""
    out: list[tuple[np.ndarray, np.ndarray, str]] = []
    for goal, onto in ((BR, ((8, 9), 1)), (TL, ((2, 1), 0))):
        idx = [
            i
            for i in range(len(data))
            if _goal_of(data.obs[i]) == goal
            and _goal_of(data.next_obs[i]) == goal
            and not np.array_equal(data.obs[i], data.next_obs[i])
        ][:per_goal]
        out += [(data.obs[i], data.next_obs[i], f"goal {goal}") for i in idx]
        s, s2 = transition(onto[0], onto[1], [goal])
        out.append((s, s2, f"onto goal {goal}"))
    return out


def reward_saliency_figure(net: MazeRewardMLP, examples: list[tuple[np.ndarray, np.ndarray, str]], path: Path) -> Path:
    """3 x K grid: rendered s', |dR/ds| and |dR/ds'| (gradient saliency), with R in each title."""
    pairs = torch.as_tensor(np.stack([np.stack([s, s2]) for s, s2, _ in examples]))
    sal = gradient_saliency(net.pair_reward, pairs).numpy()
    rewards = reward_of(net, pairs[:, 0].numpy(), pairs[:, 1].numpy())
    k = len(examples)
    fig, axes = plt.subplots(3, k, figsize=(2.1 * k, 6.6))
    axes = np.atleast_2d(axes).reshape(3, k)
    vmax = sal.max() or 1.0
    for j, (s, s2, label) in enumerate(examples):
        axes[0, j].imshow(render_grid(s2, cell=8))
        axes[0, j].set_title(f"{label}\nR={rewards[j]:.2f}", fontsize=8)
        for row, ch, name in ((1, 0, "|dR/ds|"), (2, 1, "|dR/ds'|")):
            axes[row, j].imshow(sal[j, ch], cmap="gray", vmin=0, vmax=vmax)
            if j == 0:
                axes[row, j].set_ylabel(name)
        if j == 0:
            axes[0, j].set_ylabel("s' (rendered)")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Gradient saliency of the learned maze reward (shared gray scale)")
    return save_figure(fig, path)


def counterfactual_probes(net: MazeRewardMLP) -> dict[str, Any]:
    """The paper's three probes.

    (a) goal erased from both frames: R for every interior cell and valid move;
    (b) both goals present, agent steps onto one of them (the other stays visible);
    (c) goal moved to every interior cell, with the agent stepping (2,1) -> (1,1).
    """
    cells = [tuple(int(x) for x in c) for c in FREE_CELLS]
    # (a) no goal anywhere
    nogoal = np.full((SIZE, SIZE), np.nan)
    nogoal_all = []
    for c in cells:
        vals = []
        for a in range(4):
            b = np.asarray(c) + MOTIONS[a]
            if LAYOUT[b[0], b[1]] == WALL:
                continue
            s, s2 = transition(c, a, [])
            vals.append(float(reward_of(net, s, s2)))
        nogoal[c] = np.mean(vals)
        nogoal_all += vals
    # (b) both goals present vs the usual single goal
    both = {}
    for name, (start, action, goal) in {"onto_top_left": ((2, 1), 0, TL), "onto_bottom_right": ((8, 9), 1, BR)}.items():
        s, s2 = transition(start, action, [goal])
        both[name] = {"one_goal": float(reward_of(net, s, s2))}
        s, s2 = transition(start, action, [TL, BR])
        both[name]["both_goals"] = float(reward_of(net, s, s2))
    # (c) goal on every interior cell, agent (2,1) -> (1,1)
    moved = np.full((SIZE, SIZE), np.nan)
    for g in cells:
        s, s2 = transition((2, 1), 0, [g])
        moved[g] = float(reward_of(net, s, s2))
    elsewhere = moved.copy()
    elsewhere[TL] = np.nan
    return {
        "no_goal_mean_by_cell": nogoal,
        "no_goal_mean": float(np.mean(nogoal_all)),
        "no_goal_max": float(np.max(nogoal_all)),
        "both_goals": both,
        "goal_moved": moved,
        "goal_moved_at_reached_cell": float(moved[TL]),
        "goal_moved_elsewhere_mean": float(np.nanmean(elsewhere)),
    }


def probes_figure(probes: dict[str, Any], path: Path) -> Path:
    """Three panels: R with no goal (by agent cell), R with one vs both goals, R by goal cell for (2,1)->(1,1)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained")
    lim = max(
        1.0, float(np.nanmax(np.abs(probes["no_goal_mean_by_cell"]))), float(np.nanmax(np.abs(probes["goal_moved"])))
    )
    im = axes[0].imshow(probes["no_goal_mean_by_cell"], cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[0].set_title(
        f"(a) goal erased from s and s'\nR averaged over moves from each cell (mean {probes['no_goal_mean']:.2f})",
        fontsize=9,
    )
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    names = list(probes["both_goals"])
    x = np.arange(len(names))
    one = [probes["both_goals"][n]["one_goal"] for n in names]
    two = [probes["both_goals"][n]["both_goals"] for n in names]
    axes[1].bar(x - 0.2, one, 0.4, label="only the reached goal")
    axes[1].bar(x + 0.2, two, 0.4, label="both goals (other still visible)")
    axes[1].axhline(1.0, color="k", lw=0.8, ls="--", label="true reward")
    axes[1].set_xticks(x, [n.replace("_", " ") for n in names])
    axes[1].set_ylabel("R(s, s')")
    axes[1].set_title("(b) agent steps onto a goal", fontsize=9)
    axes[1].legend(fontsize=8)
    im = axes[2].imshow(probes["goal_moved"], cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[2].plot([1], [2], "o", color="k", ms=5)
    axes[2].annotate("", xy=(1, 1), xytext=(1, 2), arrowprops={"arrowstyle": "->"})
    axes[2].set_title(
        "(c) R for the agent stepping (2,1)->(1,1)\nas a function of the goal's cell (true R: 1 at (1,1) only)",
        fontsize=9,
    )
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    for ax in (axes[0], axes[2]):
        ax.set_xticks(range(SIZE))
        ax.set_yticks(range(SIZE))
        ax.tick_params(labelsize=6)
    fig.suptitle("Counterfactual probes of the learned maze reward")
    return save_figure(fig, path)


def policy_logits_fn(model: Any):
    """obs (B, 11, 11) float -> action logits (B, 4) of an SB3 discrete policy."""

    def logits(x: torch.Tensor) -> torch.Tensor:
        return model.policy.get_distribution(x).distribution.logits

    return logits


def policy_saliency_figure(model: Any, states: np.ndarray, path: Path) -> Path:
    """For each state: the rendered state and |d logit_k / d obs| for each action k (the correct index k;
    the original notebook used k-1)."""
    x = torch.as_tensor(states, dtype=torch.float32, device=model.policy.device)
    fn = policy_logits_fn(model)
    maps = np.stack([gradient_saliency(fn, x, target=k).cpu().numpy() for k in range(4)], axis=1)  # (B, 4, H, W)
    with torch.no_grad():
        probs = torch.softmax(fn(x), -1).cpu().numpy()
    n = len(states)
    fig, axes = plt.subplots(n, 5, figsize=(10, 2.1 * n))
    axes = np.atleast_2d(axes)
    for i in range(n):
        axes[i, 0].imshow(render_grid(states[i], cell=8))
        axes[i, 0].set_ylabel(f"state {i}")
        for k in range(4):
            axes[i, k + 1].imshow(maps[i, k], cmap="gray")
            axes[i, k + 1].set_title(f"{ACTION_NAMES[k]} p={probs[i, k]:.2f}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Policy saliency |d logit(action) / d obs| of the expert")
    return save_figure(fig, path)


MAX_EPIC_STATES = 400  # exact EPIC evaluates every (s, a, s'): 4 n^2 rewards per net (RandomGoal's 6,561 states: 172M)


def epic_states(variant: str) -> int:
    """How many states exact EPIC on a maze variant enumerates (goal configurations x 81 agent cells)."""
    return len(GOAL_DRAWS[variant]) * len(FREE_CELLS)


def _distances(canon: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """Pairwise Pearson distances under `weights`, or None where a reward is constant (up to shaping) there."""
    from rewardlab.interpret.distances import distance_matrix

    try:
        return distance_matrix(canon, weights)
    except RewardLabError:  # e.g. transitions that never reach a goal: the true reward does not vary on them
        return None


def _expert_coverage(grids: np.ndarray, next_state: np.ndarray, data: Transitions) -> np.ndarray:
    """Weights over (s, a, s') (n, 4, n): how often each transition occurs in `data`."""
    n = len(grids)
    s, s2 = state_indices(grids, data.obs), state_indices(grids, data.next_obs)
    if data.acts is None:  # an older dataset: spread each transition over the actions that make it
        hits = next_state[s] == s2[:, None]
        if not hits.any(1).all():
            raise RewardLabError(
                "the transitions do not follow this maze's dynamics; use transitions of the same variant"
            )
        rows, acts = np.nonzero(hits)
        weight = 1.0 / hits.sum(1)[rows]
        s, s2 = s[rows], s2[rows]
    else:
        acts, weight = np.asarray(data.acts, dtype=np.int64).reshape(-1), np.ones(len(s))
    if (next_state[s, acts] != s2).any():
        raise RewardLabError("the transitions do not follow this maze's dynamics; use transitions of the same variant")
    return np.bincount((s * 4 + acts) * n + s2, weights=weight, minlength=n * 4 * n).reshape(n, 4, n)


def maze_epic(nets: Sequence[Any], variant: str, gamma: float, data: Transitions | None = None) -> dict[str, Any]:
    """Exact EPIC distances (K+1, K+1) between a maze's true reward (index 0: 1 when the agent stands on a goal in
    s') and K reward nets, canonicalised over every state (D_S uniform over all of them, D_A uniform over the 4
    actions), under two coverages: `uniform` (every state and action once, s' by the dynamics) and, given `data`,
    `expert` (the frequencies of its (s, a, s')); None where a reward is constant up to shaping on the coverage."""
    from rewardlab.interpret.distances import epic_canonical, observation_reward_tensor

    n = epic_states(variant)
    if n > MAX_EPIC_STATES:
        raise RewardLabError(
            f"{variant} has {n} states, too many for exact EPIC over every (s, a, s') (at most {MAX_EPIC_STATES}); "
            "compare rewards on a maze with fewer goal configurations"
        )
    grids, next_state, on_goal = maze_states(variant)
    learned = observation_reward_tensor(nets, grids, 4, on_goal)
    true = np.broadcast_to(on_goal.astype(np.float64)[None, None, :], learned.shape[1:])
    canon = np.stack([epic_canonical(r, gamma) for r in (true, *learned)])
    uniform = np.zeros((n, 4, n))
    uniform[np.arange(n)[:, None], np.arange(4)[None, :], next_state] = 1.0
    out: dict[str, Any] = {"uniform": _distances(canon, uniform), "n_states": n}
    if data is not None:
        expert = _expert_coverage(grids, next_state, data)
        out.update(
            expert=_distances(canon, expert),
            expert_transitions=int(len(data)),
            expert_distinct_transitions=int((expert > 0).sum()),
        )
    return out
