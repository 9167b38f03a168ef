"""CoinRun (Procgen) on envpool, as a Gymnasium VectorEnv with same-step autoreset, and a registered single env.

The Procgen protocol of Cobbe et al. (2020) as envpool implements it: 64x64 RGB frames (channel-first here, uint8),
15 actions, +10 when the agent reaches the coin (then the episode ends), a 1,000-step cap, levels drawn from
`num_levels` levels starting at `start_level` (0 levels: unbounded), the easy or hard distribution. `infos` adds
`level_seed` (the level of the step, before any reset), `success` (the episode ended at the coin) and `elapsed`.

envpool's Procgen needs the system Qt5 runtime (Debian: `apt-get install -y libqt5gui5`); without it,
`check_procgen` and `make_coinrun` stop with one line naming that command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rewardlab.envs.vector import BatchOfOne, SameStepVectorEnv, spawn_seeds
from rewardlab.errors import RewardLabError

DISTRIBUTIONS = ("easy", "hard")
SIZE = 64
N_ACTIONS = 15
COIN_REWARD = 10.0
MAX_EPISODE_STEPS = 1000
QT_INSTALL = "apt-get install -y libqt5gui5"


@dataclass(frozen=True)
class CoinRunSpec:
    """Which levels: the distribution (easy, hard), how many (0: unbounded) and the first."""

    distribution: str = "easy"
    num_levels: int = 200
    start_level: int = 0


def check_procgen() -> None:
    """One line naming the fix when envpool or its Procgen (the Qt5 runtime) is missing."""
    try:
        import envpool  # noqa: F401
    except ImportError:
        raise RewardLabError("CoinRun needs envpool: run `pip install envpool`") from None
    try:
        import envpool.procgen  # noqa: F401
    except ImportError:
        raise RewardLabError(f"CoinRun (envpool's Procgen) needs the system Qt5 runtime: run `{QT_INSTALL}`") from None


class CoinRunVectorEnv(SameStepVectorEnv):
    """N CoinRun games stepped together (envpool), observations (N, 3, 64, 64) uint8, actions Discrete(15)."""

    render_mode = "rgb_array"

    def __init__(self, spec: CoinRunSpec, num_envs: int, seed: int | Sequence[int] | None = 0):
        if spec.distribution not in DISTRIBUTIONS:
            raise RewardLabError(f"unknown CoinRun distribution '{spec.distribution}'; choose easy or hard")
        if spec.num_levels < 0 or spec.start_level < 0:
            raise RewardLabError("CoinRun num_levels and start_level must be >= 0")
        if num_envs < 1:
            raise RewardLabError(f"make_coinrun needs at least one environment, got num_envs={num_envs}")
        check_procgen()
        self.spec_ = spec
        self.num_envs = num_envs
        self._pool: Any = None
        self._seed(seed)
        self._set_spaces(num_envs, spaces.Box(0, 255, (3, SIZE, SIZE), dtype=np.uint8), spaces.Discrete(N_ACTIONS))
        self._obs = np.zeros((num_envs, 3, SIZE, SIZE), dtype=np.uint8)
        self._started = False
        self._extra: dict[str, np.ndarray] = {}

    def _seed(self, seed: int | Sequence[int] | None) -> None:
        import envpool

        self.seeds = [s & 0x7FFFFFFF for s in spawn_seeds(seed, self.num_envs, "make_coinrun")]
        if self._pool is not None:
            self._pool.close()
        name = "CoinrunEasy-v0" if self.spec_.distribution == "easy" else "CoinrunHard-v0"
        # envpool seeds its environments from one seed (env i gets seed + i); the first spawned seed stands for all
        self._pool = envpool.make(
            name,
            env_type="gymnasium",
            num_envs=self.num_envs,
            seed=int(self.seeds[0]),
            num_levels=self.spec_.num_levels,
            start_level=self.spec_.start_level,
            max_episode_steps=MAX_EPISODE_STEPS,
        )
        self._started = False

    @staticmethod
    def _ordered(ids: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        order = np.argsort(ids)
        return tuple(np.asarray(a)[order] for a in arrays)

    def _reset_all(self) -> np.ndarray:
        obs, info = self._pool.reset()
        (self._obs[...],) = self._ordered(info["env_id"], obs)
        self._started = True
        return self._obs.copy()

    def _step(self, actions: np.ndarray):
        if not self._started:
            raise RewardLabError("call reset() on a CoinRun environment before its first step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or (actions.size and (actions.min() < 0 or actions.max() >= N_ACTIONS)):
            raise RewardLabError(f"CoinRun.step expects {self.num_envs} actions in 0..{N_ACTIONS - 1}")
        obs, rew, term, trunc, info = self._pool.step(actions.astype(np.int32), np.arange(self.num_envs))
        obs, rew, term, trunc, level, elapsed = self._ordered(
            info["env_id"], obs, rew, term, trunc, info["level_seed"], info["elapsed_step"]
        )
        term, trunc = term.astype(bool), trunc.astype(bool) & ~term.astype(bool)
        self._obs[...] = obs
        final = self._obs.copy()
        done = np.flatnonzero(term | trunc)
        if done.size:
            new, new_info = self._pool.reset(done)
            (new,) = self._ordered(new_info["env_id"], new)
            self._obs[done] = new
        self._extra = {
            "level_seed": level.astype(np.int64),
            "success": term & (rew > 0),
            "elapsed": elapsed.astype(np.int64),
        }
        return self._obs.copy(), rew.astype(np.float32), term, trunc, final

    def step(self, actions: np.ndarray):
        """Step every game; `infos` add `level_seed`, `success` and `elapsed` to the final observations."""
        obs, rewards, terminated, truncated, infos = super().step(actions)
        infos.update(self._extra)
        return obs, rewards, terminated, truncated, infos

    def render(self) -> np.ndarray:
        """The last frames (N, 64, 64, 3) uint8."""
        return np.ascontiguousarray(self._obs.transpose(0, 2, 3, 1))

    def close_extras(self, **kwargs: Any) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def make_coinrun(spec: CoinRunSpec, num_envs: int, seed: int | Sequence[int] | None = 0) -> CoinRunVectorEnv:
    """`num_envs` CoinRun games of `spec`, seeded from `seed`."""
    return CoinRunVectorEnv(spec, num_envs, seed)


class CoinRunEnv(BatchOfOne):
    """One CoinRun game as a Gymnasium Env (`rewardlab/CoinRun-v0`, `rewardlab/CoinRunHard-v0`): the batched
    environment with N = 1. `info` holds `level_seed`, `success` and `elapsed`."""

    info_keys = ("level_seed", "success", "elapsed")

    def __init__(
        self, distribution: str = "easy", num_levels: int = 200, start_level: int = 0, render_mode: str | None = None
    ):
        super().__init__(make_coinrun(CoinRunSpec(distribution, num_levels, start_level), 1, seed=None), render_mode)


def register() -> None:
    """Register `rewardlab/CoinRun-v0` (easy) and `rewardlab/CoinRunHard-v0` (envpool is imported when made)."""
    for name, dist in (("rewardlab/CoinRun-v0", "easy"), ("rewardlab/CoinRunHard-v0", "hard")):
        if name not in gym.registry:
            gym.register(name, entry_point="rewardlab.envs.coinrun:CoinRunEnv", kwargs={"distribution": dist})


# ---------------------------------------------------------------------------------------------------------------------
"""Where the coin and the agent are in CoinRun frames, and counterfactual edits of frames (for reward-model probes).

Boxes are (row0, row1, col0, col1), half-open like slices (`frame[:, row0:row1, col0:col1]`); (0, 0, 0, 0) where
nothing was found. Measured on envpool's renderer with its default options (`center_agent`, backgrounds, all themes):
ground truth came from a second envpool game stepped with the same seed and actions but `use_monochrome_assets=True`,
`restrict_themes=True` and no backgrounds (envpool takes these options; the same states drawn in flat colours, the
coin's cell and the agent's rectangle each one exact colour). The easy distribution has one theme (the beige alien, one
background and wall); the hard one draws the alien's colour, the walls and the background per level.

* The agent: the camera centres it, so in real frames it fills `AGENT_BOX` (rows 29:35, columns 30:34; 9,598 of 9,600
  frames, the other 2 partly covered by an enemy). `find_agent` does not assume that. The 44 colours of its body
  (`_AGENT_PALETTE`: five alien colours, their shades, three poses, both facings, read off real frames) appeared outside
  its box only as 23 lone pixels in 23,723 real frames, so it correlates the mask of those exact colours with their
  frequency in the 6x4 sprite box (`_AGENT_HEAT`, -1 around it), keeping `AGENT_BOX` when it holds as many body pixels
  as the best box. Held out (11,851 frames, easy and hard): found at `AGENT_BOX` in all; after `paint_out(AGENT_BOX)`,
  found in none. Moved by `move_agent_to`: found within one pixel of its new box in all, exactly in 99.9% (easy) and
  98.8% (hard); the 6x4 box alone leaves its row ambiguous for a few poses.
* The coin: a gold disc 2-3 pixels wide (half a 4.9-pixel cell of `kenney/Items/coinGold.png`, nearest-neighbour
  sampled). `find_coin` masks gold pixels (B <= 40, R >= 190, G/R in 0.74..0.86) outside the agent's box (the yellow
  alien is partly the same gold), labels them per frame (scipy.ndimage, one call for the batch) and keeps the best
  component of 4..9 pixels (2..9 at the frame's edge), at most 3x3, holding one of the sprite's exact colours; its box
  grows by one pixel for the blended rim. Held out, coin wholly in view: found in its cell in 100% (easy) and 99.2%
  (hard) of frames; just before a success 100% and 98.6%; false alarms without a coin in view 0.1% and 0.3% (enemy
  sprites with gold pixels), none on the first frames of levels. Hard mode's yellow (sand) backgrounds hide coins.
* `paint_out` fills a box with one colour: the median of the largest group of alike pixels on and just outside its
  edge (body and gold colours left out), so that a wall or floor along one side does not tint it; `move_agent_to`
  paints the agent's box out and pastes its pixels (body colours, or unlike the paint) left of a target box (right of
  it where that does not fit), bottom-aligned, one pixel away: just before touching the coin from the side, real
  agents stand so. Coin boxes painted out: `find_coin` finds no coin in 3,739 of 3,740 held-out frames.
"""

AGENT_BOX = (29, 35, 30, 34)
_COIN_COLOURS = (0xFFCC00, 0xE3B602, 0xCAA202)  # the coin sprite's gold, rim and dark rim
_AGENT_PALETTE = (
    "e0d1af e9dfc7 e6dabf 8db5e7 ffdb4d 6fc4a9 afcbee 9ad6c3 f5bacc a3c3eb ffd633 f3afc5 8bcfba c08c9c 9eb9da f3ead6 "
    "849cba cabfa4 d6cbb1 faf8f3 e2d4b5 f2d04c bed5f1 e192ab abc8ed ace4d3 96d4c0 84a9d8 d2c3a4 68b79e af8c00 88cbb6 "
    "acc9ed edf3fb 95bae8 ffd015 fcf0f4 f1a4bc a56b7d 9a8f78 607c9e f0f9f6 7dcab1 53937e"
)
# how often (%) each pixel of the 6x4 sprite box is in a body colour, over real frames
_AGENT_HEAT = ((0, 1, 4, 0), (0, 100, 100, 0), (0, 100, 99, 0), (71, 95, 95, 15), (0, 80, 80, 1), (6, 14, 10, 65))
_AGENT_MIN_PIXELS = 3
_BACKGROUND_TOLERANCE = 24
_CHUNK = 4096


def _frames(frames: np.ndarray, what: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1:] != (3, SIZE, SIZE) or frames.dtype != np.uint8:
        raise RewardLabError(f"{what} expects frames (N, 3, {SIZE}, {SIZE}) uint8, got {frames.shape} {frames.dtype}")
    return frames


def _boxes(boxes: np.ndarray, n: int, what: str) -> np.ndarray:
    boxes = np.asarray(boxes)
    if boxes.shape != (n, 4) or not np.issubdtype(boxes.dtype, np.integer):
        raise RewardLabError(f"{what} expects integer boxes ({n}, 4) as (row0, row1, col0, col1), got {boxes.shape}")
    return np.clip(boxes.astype(np.int64), 0, SIZE)


def _box_masks(boxes: np.ndarray, grow: int = 0) -> np.ndarray:
    """(N, 64, 64) masks of the boxes grown by `grow` pixels (clipped to the frame); empty boxes stay empty."""
    r = np.arange(SIZE)
    empty = (boxes[:, 1] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 2])
    rows = (r >= boxes[:, 0:1] - grow) & (r < boxes[:, 1:2] + grow)
    cols = (r >= boxes[:, 2:3] - grow) & (r < boxes[:, 3:4] + grow)
    return rows[:, :, None] & cols[:, None, :] & ~empty[:, None, None]


def _rgb_codes(frames: np.ndarray) -> np.ndarray:
    return (frames[:, 0].astype(np.int32) << 16) | (frames[:, 1].astype(np.int32) << 8) | frames[:, 2]


def _gold(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.int16)
    r, g, b = f[:, 0], f[:, 1], f[:, 2]
    return (b <= 40) & (r >= 190) & (g * 100 >= r * 74) & (g * 100 <= r * 86)


def _agent_colours(frames: np.ndarray) -> np.ndarray:
    return np.isin(_rgb_codes(frames), [int(c, 16) for c in _AGENT_PALETTE.split()])


def _in_chunks(
    fn: Callable[..., tuple[np.ndarray, np.ndarray]], frames: np.ndarray, *rest: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    parts = [fn(frames[i : i + _CHUNK], *(a[i : i + _CHUNK] for a in rest)) for i in range(0, len(frames), _CHUNK)]
    if not parts:
        return np.zeros((0, 4), np.int64), np.zeros(0, bool)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def find_agent(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The agent's 6x4 box per frame ((N, 4) int, zeros where not found) and whether it was found ((N,) bool)."""
    return _in_chunks(_find_agent, _frames(frames, "find_agent"))


def _find_agent(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    mask = torch.from_numpy(_agent_colours(frames).astype(np.float32))[:, None]
    h, w = len(_AGENT_HEAT), len(_AGENT_HEAT[0])
    kernel = torch.zeros((2, 1, h + 2, w + 2))
    kernel[0] = -1.0  # no body colour lies next to the sprite
    kernel[0, 0, 1:-1, 1:-1] = torch.tensor(_AGENT_HEAT, dtype=torch.float32) / 100
    kernel[1, 0, 1:-1, 1:-1] = 1.0  # the count of body-colour pixels in the box
    out = torch.nn.functional.conv2d(torch.nn.functional.pad(mask, (1, 1, 1, 1)), kernel).flatten(2).numpy()
    score, count = out[:, 0], out[:, 1]
    width = SIZE - w + 1
    best = score.argmax(1)
    n_best = count[np.arange(len(frames)), best]
    r0, c0 = best // width, best % width
    # the camera centres the agent: keep AGENT_BOX when it holds as many body pixels as the best box
    centre = count[:, AGENT_BOX[0] * width + AGENT_BOX[2]]
    prefer = (np.abs(r0 - AGENT_BOX[0]) <= 1) & (np.abs(c0 - AGENT_BOX[2]) <= 1) & (centre >= n_best)
    r0, c0 = np.where(prefer, AGENT_BOX[0], r0), np.where(prefer, AGENT_BOX[2], c0)
    found = n_best >= _AGENT_MIN_PIXELS
    return np.stack([r0, r0 + h, c0, c0 + w], 1).astype(np.int64) * found[:, None], found


def find_coin(frames: np.ndarray, ignore: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The coin's box per frame ((N, 4) int, zeros where not found) and whether it was found ((N,) bool); `ignore`:
    (N, 4) boxes left out of the search, by default the agent's (`find_agent`)."""
    frames = _frames(frames, "find_coin")
    ignore = find_agent(frames)[0] if ignore is None else _boxes(ignore, len(frames), "find_coin(ignore=...)")
    return _in_chunks(_find_coin, frames, ignore)


def _find_coin(frames: np.ndarray, ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    n = len(frames)
    boxes, found = np.zeros((n, 4), np.int64), np.zeros(n, bool)
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = True  # 8-connected within a frame, never across frames
    labels, k = ndimage.label(_gold(frames) & ~_box_masks(ignore), structure=structure)
    if k == 0:
        return boxes, found
    nz = np.nonzero(labels)
    lab = labels[nz]
    size = np.bincount(lab, minlength=k + 1)[1:]
    n_exact = np.bincount(lab, weights=np.isin(_rgb_codes(frames)[nz], _COIN_COLOURS), minlength=k + 1)[1:]
    frame = np.zeros(k + 1, np.int64)
    frame[lab] = nz[0]
    lo_r, lo_c = np.full(k + 1, SIZE), np.full(k + 1, SIZE)
    hi_r, hi_c = np.zeros(k + 1, np.int64), np.zeros(k + 1, np.int64)
    np.minimum.at(lo_r, lab, nz[1])
    np.maximum.at(hi_r, lab, nz[1] + 1)
    np.minimum.at(lo_c, lab, nz[2])
    np.maximum.at(hi_c, lab, nz[2] + 1)
    frame, lo_r, hi_r, lo_c, hi_c = frame[1:], lo_r[1:], hi_r[1:], lo_c[1:], hi_c[1:]
    edge = (lo_r == 0) | (lo_c == 0) | (hi_r == SIZE) | (hi_c == SIZE)
    keep = (size >= np.where(edge, 2, 4)) & (size <= 9) & (hi_r - lo_r <= 3) & (hi_c - lo_c <= 3) & (n_exact >= 1)
    score = np.where(keep, size + n_exact, -1)
    order = np.lexsort((-score, frame))  # by frame, the best component first
    first = order[np.r_[True, frame[order][1:] != frame[order][:-1]]]
    first = first[score[first] >= 0]
    found[frame[first]] = True
    grown = np.stack([lo_r[first] - 1, hi_r[first] + 1, lo_c[first] - 1, hi_c[first] + 1], 1)
    boxes[frame[first]] = np.clip(grown, 0, SIZE)
    return boxes, found


def paint_out(frames: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the frames with each box filled by the background colour around it, and which frames were edited
    (those with a non-empty box).

    The colour: among the pixels on and just outside the box's edge (not in body or gold colours, unless none are left),
    the median of the largest group of alike pixels (channels within 24 of the pixel with the most such neighbours), so
    that a wall or floor along one side of the box does not tint it.
    """
    frames = _frames(frames, "paint_out")
    boxes = _boxes(boxes, len(frames), "paint_out")
    inside = _box_masks(boxes)
    ring = _box_masks(boxes, grow=1) & ~_box_masks(boxes + np.array([1, -1, 1, -1]))
    clean = ring & ~_agent_colours(frames) & ~_gold(frames)
    ring = np.where(clean.any((1, 2))[:, None, None], clean, ring)
    # the ring's pixels per frame, padded to the longest ring
    nz = np.nonzero(ring)
    counts = np.bincount(nz[0], minlength=len(frames))
    slot = np.arange(len(nz[0])) - np.repeat(np.cumsum(counts) - counts, counts)
    values = np.zeros((len(frames), max(int(counts.max(initial=0)), 1), 3), np.int16)
    values[nz[0], slot] = frames[nz[0], :, nz[1], nz[2]]
    present = np.arange(values.shape[1]) < counts[:, None]
    alike = (np.abs(values[:, :, None] - values[:, None, :]).max(-1) <= _BACKGROUND_TOLERANCE) & present[:, None, :]
    seed = np.where(present, alike.sum(2), -1).argmax(1)
    group = alike[np.arange(len(frames)), seed]
    ok = inside.any((1, 2))
    fill = np.zeros((len(frames), 3), np.uint8)
    if ok.any():
        fill[ok] = np.round(np.nanmedian(np.where(group[ok, :, None], values[ok], np.nan), axis=1)).astype(np.uint8)
    return np.where(inside[:, None], fill[:, :, None, None], frames), ok


def move_agent_to(
    frames: np.ndarray, agent_boxes: np.ndarray, target_boxes: np.ndarray, gap: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of the frames with the agent beside each target box, the new agent boxes and which frames were edited.

    The agent's box is painted out (`paint_out`) and its pixels (body colours, or unlike that paint) are pasted left of
    the target box, or right of it where the left does not fit, bottom-aligned and `gap` pixels away. A frame is edited
    when both boxes are non-empty and the new box fits in the frame; elsewhere the frame and a zero box come back.
    """
    frames = _frames(frames, "move_agent_to")
    n = len(frames)
    src = _boxes(agent_boxes, n, "move_agent_to(agent_boxes)")
    tgt = _boxes(target_boxes, n, "move_agent_to(target_boxes)")
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise RewardLabError(f"move_agent_to needs a whole gap >= 0 pixels, got {gap!r}")
    h, w = src[:, 1] - src[:, 0], src[:, 3] - src[:, 2]
    left = tgt[:, 2] - gap - w
    col0 = np.where(left >= 0, left, tgt[:, 3] + gap)
    row0 = tgt[:, 1] - h
    new = np.stack([row0, row0 + h, col0, col0 + w], 1)
    ok = (h > 0) & (w > 0) & (tgt[:, 1] > tgt[:, 0]) & (tgt[:, 3] > tgt[:, 2]) & (row0 >= 0) & (col0 + w <= SIZE)
    src, new = src * ok[:, None], new * ok[:, None]
    painted, _ = paint_out(frames, src)
    differs = np.abs(frames.astype(np.int16) - painted.astype(np.int16)).max(1) > _BACKGROUND_TOLERANCE
    sprite = _box_masks(src) & (differs | _agent_colours(frames))
    # each pixel of the new box takes the pixel of the old box at the same offset
    r = np.arange(SIZE)
    rows = np.clip(r[None, :, None] - (new[:, 0] - src[:, 0])[:, None, None], 0, SIZE - 1)
    cols = np.clip(r[None, None, :] - (new[:, 2] - src[:, 2])[:, None, None], 0, SIZE - 1)
    nn = np.arange(n)[:, None, None]
    paste = _box_masks(new) & sprite[nn, rows, cols]
    moved = frames.transpose(0, 2, 3, 1)[nn, rows, cols].transpose(0, 3, 1, 2)
    return np.where(paste[:, None], moved, painted), new, ok
