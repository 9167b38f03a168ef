"""Atari games with the protocol of the original's `{Game}NoFrameskip-v4` games as the RL Zoo / SB3 `AtariWrapper`
use them, batched on envpool (C++), plus the score-hiding "NoScore" variants of Michaud, Gleave & Russell (2020).

Protocol (all counts in agent steps unless said otherwise):

- no sticky actions (repeat_action_probability 0), the game's minimal action set;
- at every reset up to 30 no-ops (envpool draws 1..30, one of them replaced by FIRE where the game has FIRE); FIRE on
  reset where the game needs it. A reset after a life loss (training only) continues the game with the no-ops and
  FIRE instead of restarting it (envpool's episodic-life reset);
- frame skip 4, the max over the last two of the four frames, taken on the RGB frames (as SB3's MaxAndSkipEnv on
  NoFrameskip-v4, whose WarpFrame grays the pooled frame; envpool's own grayscale mode pools after graying, which
  differs where the two frames hold different colours at a pixel);
- the score mask of the variant, applied on the raw 210x160 RGB frame (before any other preprocessing; "plain"
  frames go through the very same path with no mask);
- grayscale with cv2's weights (0.299 R + 0.587 G + 0.114 B), 84x84 area interpolation (what cv2's INTER_AREA
  computes, as two matrices of overlap fractions: out = A @ gray @ B.T), rounded to uint8;
- a stack of the last 4 frames, oldest first, the older frames zero-filled at the start of an episode (as SB3's
  VecFrameStack);
- training (`train=True`): episodic life (a life loss ends the episode) and rewards clipped to {-1, 0, 1}; evaluation
  (`train=False`): an episode is a whole game and the reward is the game's score;
- a cap of 27,000 agent steps (108k frames) per game (truncation), counted over the whole game also in training.

The emulator runs in envpool (`engine="envpool"`), which returns the raw max-pooled RGB frames; everything after
(mask, grayscale, resize, stack) is rewardlab's numpy, batched over the environments. envpool resets a finished
environment on the *next* step; `AtariVectorEnv` resets it in the same step (Gymnasium's SAME_STEP autoreset: the
episode's last stack in `infos["final_obs"]`, the new episode's first one in the returned observations).
`engine="ale"` runs the same protocol on ale-py, one game after the other in a Python loop (for the benchmark).

Every step's `infos` also holds `score` (the unclipped points of the step), `game_over` (the real end of a game: all
lives lost or the step cap) and `lives`, all taken before any reset. `env.rgb` holds the last raw (masked) RGB frames.

Score regions are (row0, row1, col0, col1) in 210x160 raw-frame coordinates, end-exclusive. "noscore" fills the region
with the game's background colour in every frame; "blurscore" blurs it (Gaussian, sigma 3 pixels, separable, with the
kernel renormalised at the region's edges so that only the region's own pixels are mixed).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rewardlab.core.runs import one_blas_thread
from rewardlab.envs.vector import BatchOfOne, SameStepVectorEnv, spawn_seeds
from rewardlab.errors import RewardLabError

GAMES = ("Breakout", "Seaquest", "Pong", "SpaceInvaders", "Tennis")  # the games with a known score region
VARIANTS = ("plain", "noscore", "blurscore")
ENGINES = ("envpool", "ale")
RAW_HEIGHT, RAW_WIDTH = 210, 160
OBS_SIZE = 84
STACK = 4
FRAME_SKIP = 4
NOOP_MAX = 30
MAX_EPISODE_STEPS = 27_000  # agent steps (108,000 frames)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # cv2's RGB -> gray
BLUR_SIGMA = 3.0

# Score regions, end-exclusive, raw 210x160 frame coordinates.
# Breakout and Seaquest: the original's (inclusive) rows 4-16, cols 35-81 and rows 7-19, cols 70-120, with the end
# made exclusive by adding 1. Our measurement (below) finds the digits that change under random play inside them:
# Breakout rows 5-14, cols 68-79; Seaquest rows 9-16, cols 83-96.
# Pong, SpaceInvaders, Tennis: measured on envpool's raw frames (8 envs, seed 0, 3,000 random-action steps each,
# 6,000 for Tennis): for every step with a nonzero unclipped score and no episode boundary nearby, the frame before
# the step was compared with the frame after the next step (the max-pool spreads a redraw over two agent steps),
# searching the top 30 rows (16 for Tennis, whose players wear the digit colours and come up to row 18); a pixel
# counted if it changed and was, before and after, either the background or a score-digit colour (that excludes
# SpaceInvaders' shots and mothership, which cross the score). The bounding box of those pixels:
#   Pong: rows 1-20, cols 20-47 (left score, both digits) and 116-127 (right score)     -> + 2 px margin
#   SpaceInvaders: rows 10-19, cols 4-63 (player 1's four digits; player 2's score stays 0000 and is not hidden)
#   Tennis: rows 5-11, cols 42-54 (the agent's points) and 105-118 (the opponent's)      -> + 2 px margin, but 1 px
#     above: row 3 is the top black band. Only points (15/30/40/game) were seen; "deuce"/"advantage" displays of a
#     stronger player were not.
# A margin never leaves the background (checked on the frames: the region's border ring is background or black band).
SCORE_REGIONS: dict[str, tuple[int, int, int, int]] = {
    "Breakout": (4, 17, 35, 82),
    "Seaquest": (7, 20, 70, 121),
    "Pong": (0, 23, 18, 130),
    "SpaceInvaders": (8, 22, 2, 66),
    "Tennis": (4, 14, 40, 121),
}
# Background colours (RGB): the most frequent colour of the region's pixels over 4,000 random-play frames (seed 2),
# the colour where no digit is drawn: Breakout black (digits grey), Seaquest blue (digits yellow), Pong brown
# (digits orange and green), SpaceInvaders black (digits green), Tennis green (digits pink and blue).
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "Breakout": (0, 0, 0),
    "Seaquest": (45, 50, 184),
    "Pong": (144, 72, 17),
    "SpaceInvaders": (0, 0, 0),
    "Tennis": (82, 126, 45),
}
INSTALL = {"envpool": "pip install envpool", "ale": "pip install ale-py"}


@dataclass(frozen=True)
class AtariSpec:
    """Which game, which variant (`VARIANTS`) and training (episodic life, clipped rewards) or evaluation."""

    game: str = "Breakout"
    variant: str = "plain"
    train: bool = True


def score_region(game: str) -> tuple[int, int, int, int]:
    """The score region (row0, row1, col0, col1) of a game, end-exclusive, in raw 210x160 coordinates."""
    if game not in SCORE_REGIONS:
        raise RewardLabError(f"no score region is known for '{game}'; the games with one: {', '.join(GAMES)}")
    return SCORE_REGIONS[game]


def check_engine(engine: str = "envpool") -> None:
    """A one-line RewardLabError if the engine is unknown or not installed."""
    if engine not in ENGINES:
        raise RewardLabError(f"unknown Atari engine '{engine}'; choose one of {', '.join(ENGINES)}")
    try:
        if engine == "envpool":
            import envpool  # noqa: F401
        else:
            import ale_py  # noqa: F401
    except ImportError:
        raise RewardLabError(f"the Atari engine '{engine}' is not installed; run `{INSTALL[engine]}`") from None


def _known_games(engine: str) -> list[str]:
    if engine == "envpool":
        import envpool

        return sorted(e[: -len("-v5")] for e in envpool.list_all_envs() if e.endswith("-v5"))
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    return sorted(k[len("ALE/") : -len("-v5")] for k in gym.registry if k.startswith("ALE/") and k.endswith("-v5"))


def check_game(game: str, engine: str = "envpool") -> str:
    """`game` if the engine knows it (a name such as 'Breakout' or 'Qbert'), else a one-line RewardLabError."""
    check_engine(engine)
    known = _known_games(engine)
    if game not in known:
        close = difflib.get_close_matches(game, known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise RewardLabError(
            f"unknown Atari game '{game}'; {hint}valid names are ALE games such as {', '.join(GAMES)}, Qbert"
        )
    return game


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32: the fraction of input cell j inside output cell i (cv2's INTER_AREA when shrinking)."""
    scale = n_in / n_out
    edges = np.arange(n_out + 1) * scale
    j = np.arange(n_in)
    overlap = np.minimum(edges[1:, None], j + 1) - np.maximum(edges[:-1, None], j)
    return (np.clip(overlap, 0, None) / scale).astype(np.float32)


def gaussian_matrix(n: int, sigma: float = BLUR_SIGMA, truncate: float = 4.0) -> np.ndarray:
    """(n, n) float32: a 1-D Gaussian blur of a length-n signal, each row renormalised to sum 1 (no padding)."""
    d = np.arange(n)[:, None] - np.arange(n)[None, :]
    k = np.exp(-0.5 * (d / sigma) ** 2) * (np.abs(d) <= truncate * sigma)
    return (k / k.sum(1, keepdims=True)).astype(np.float32)


class FramePipeline:
    """The batched preprocessing of raw RGB frames (M, 3, 210, 160) uint8 (channels first, as envpool gives them):
    the variant's score mask in place, then grayscale, 84x84 area resize and rounding to (M, 84, 84) uint8."""

    def __init__(self, game: str, variant: str = "plain"):
        if variant not in VARIANTS:
            raise RewardLabError(f"unknown Atari variant '{variant}'; choose one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.region = None if variant == "plain" else score_region(game)
        if self.region is not None:
            r0, r1, c0, c1 = self.region
            self._rows, self._cols = slice(r0, r1), slice(c0, c1)
            self._background = np.array(BACKGROUNDS[game], dtype=np.uint8)[:, None, None]
            self._blur_rows = gaussian_matrix(r1 - r0)
            self._blur_cols_t = np.ascontiguousarray(gaussian_matrix(c1 - c0).T)
        self._a = area_matrix(RAW_HEIGHT, OBS_SIZE)
        self._b_t = np.ascontiguousarray(area_matrix(RAW_WIDTH, OBS_SIZE).T)
        self._w = np.array(GRAY_WEIGHTS, dtype=np.float32)
        self._work: dict[int, tuple[np.ndarray, ...]] = {}

    def mask(self, raw: np.ndarray) -> None:
        """Apply the variant's score mask to raw frames (M, 3, 210, 160) uint8, in place."""
        if self.region is None or len(raw) == 0:
            return
        region = raw[:, :, self._rows, self._cols]
        if self.variant == "noscore":
            region[...] = self._background
        else:  # blurscore: rows then columns, every frame and channel at once
            blurred = self._blur_rows @ region.astype(np.float32) @ self._blur_cols_t
            region[...] = np.clip(np.rint(blurred), 0, 255).astype(np.uint8)

    def _buffers(self, m: int) -> tuple[np.ndarray, ...]:
        """Work arrays for m frames, kept between calls (fresh allocations cost as much as the arithmetic)."""
        if m not in self._work:
            if len(self._work) > 4:
                self._work.clear()
            self._work[m] = (
                np.empty((m, RAW_HEIGHT, RAW_WIDTH), dtype=np.float32),
                np.empty((m, RAW_HEIGHT, RAW_WIDTH), dtype=np.float32),
                np.empty((m * RAW_HEIGHT, OBS_SIZE), dtype=np.float32),
                np.empty((OBS_SIZE, m * OBS_SIZE), dtype=np.float32),
            )
        return self._work[m]

    def downsample(self, raw: np.ndarray) -> np.ndarray:
        """Grayscale 84x84 frames (M, 84, 84) uint8 of raw RGB frames (M, 3, 210, 160) uint8."""
        m = len(raw)
        gray, tmp, cols, both = self._buffers(m)
        np.multiply(raw[:, 0], self._w[0], out=gray)
        gray += np.multiply(raw[:, 1], self._w[1], out=tmp)
        gray += np.multiply(raw[:, 2], self._w[2], out=tmp)
        np.matmul(gray.reshape(m * RAW_HEIGHT, RAW_WIDTH), self._b_t, out=cols)  # columns: gray @ B.T
        rows_last = cols.reshape(m, RAW_HEIGHT, OBS_SIZE).transpose(1, 0, 2).reshape(RAW_HEIGHT, m * OBS_SIZE)
        np.matmul(self._a, rows_last, out=both)  # rows: A @ (gray @ B.T), all frames side by side
        out = np.rint(both, out=both).astype(np.uint8)
        return np.ascontiguousarray(out.reshape(OBS_SIZE, m, OBS_SIZE).transpose(1, 0, 2))

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Mask `raw` in place and return its 84x84 grayscale frames (BLAS on one thread: the emulator's threads
        use the cores, and a multi-threaded BLAS beside them is several times slower on small matrices)."""
        with one_blas_thread():
            self.mask(raw)
            return self.downsample(raw)


class _EnvpoolGames:
    """N games in envpool, raw max-pooled RGB frames. `step` and `reset` return raw frames in env-id order."""

    def __init__(self, game: str, n: int, seeds: list[int], train: bool):
        import envpool

        self.pool = envpool.make(
            f"{game}-v5",
            env_type="gymnasium",
            num_envs=n,
            seed=seeds,
            img_height=RAW_HEIGHT,
            img_width=RAW_WIDTH,
            gray_scale=False,
            stack_num=1,
            frame_skip=FRAME_SKIP,
            noop_max=NOOP_MAX,
            repeat_action_probability=0.0,
            use_fire_reset=True,
            max_episode_steps=MAX_EPISODE_STEPS,
            episodic_life=train,
            reward_clip=train,
        )
        self.n_actions = int(self.pool.action_space.n)

    @staticmethod
    def _ordered(ids: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        if np.all(ids[:-1] < ids[1:]):
            return arrays
        order = np.argsort(ids)
        return tuple(a[order] for a in arrays)

    def reset(self, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(raw frames, lives) of the reset games `ids` (all if None), in increasing id order."""
        obs, info = self.pool.reset(None if ids is None else np.asarray(ids, dtype=np.int32))
        return self._ordered(info["env_id"], obs, info["lives"])

    def step(self, actions: np.ndarray):
        """(raw frames, rewards, terminated, truncated, score, game_over, lives) of one step of every game."""
        obs, rew, term, trunc, info = self.pool.step(actions.astype(np.int32, copy=False))
        obs, rew, term, trunc, score, over, lives = self._ordered(
            info["env_id"], obs, rew, term, trunc, info["reward"], info["terminated"], info["lives"]
        )
        return obs, rew, term, trunc, score, over.astype(bool) | trunc, lives

    def close(self) -> None:
        self.pool.close()


class _AleGames:
    """N ale-py games stepped one after the other in Python, with envpool's protocol (same frames semantics)."""

    def __init__(self, game: str, n: int, seeds: list[int], train: bool):
        import ale_py
        import gymnasium as gym

        gym.register_envs(ale_py)
        self.train = train
        self.envs, self.ales, self.rngs = [], [], []
        for s in seeds:
            env = gym.make(
                f"ALE/{game}-v5",
                frameskip=1,
                repeat_action_probability=0.0,
                full_action_space=False,
                max_num_frames_per_episode=None,
            )
            env.reset(seed=s)
            self.envs.append(env)
            self.ales.append(env.unwrapped.ale)
            self.rngs.append(np.random.default_rng(s))
        self.action_set = list(self.ales[0].getMinimalActionSet())
        self.n_actions = len(self.action_set)
        self.fire = any(a == ale_py.Action.FIRE for a in self.action_set)
        self.noop_action = ale_py.Action.NOOP
        self.fire_action = ale_py.Action.FIRE
        self.elapsed = np.full(n, MAX_EPISODE_STEPS, dtype=np.int64)  # forces a full game reset first
        self.lives = np.zeros(n, dtype=np.int32)
        self._screens = np.empty((2, RAW_HEIGHT, RAW_WIDTH, 3), dtype=np.uint8)

    def _reset_one(self, i: int, out: np.ndarray) -> None:
        ale = self.ales[i]
        noops = int(self.rngs[i].integers(1, NOOP_MAX + 1)) - int(self.fire)
        if not self.train or ale.game_over(with_truncation=False) or self.elapsed[i] >= MAX_EPISODE_STEPS:
            ale.reset_game()
            self.elapsed[i] = 0
        for _ in range(noops):
            ale.act(self.noop_action)
            if ale.game_over(with_truncation=False):
                ale.reset_game()
        if self.fire:
            ale.act(self.fire_action)
        ale.getScreenRGB(self._screens[0])
        out[...] = self._screens[0].transpose(2, 0, 1)
        self.lives[i] = ale.lives()

    def reset(self, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        ids = np.arange(len(self.ales)) if ids is None else np.asarray(ids)
        raw = np.empty((len(ids), 3, RAW_HEIGHT, RAW_WIDTH), dtype=np.uint8)
        for k, i in enumerate(ids):
            self._reset_one(int(i), raw[k])
        return raw, self.lives[ids].copy()

    def step(self, actions: np.ndarray):
        n = len(self.ales)
        raw = np.empty((n, 3, RAW_HEIGHT, RAW_WIDTH), dtype=np.uint8)
        score = np.zeros(n, dtype=np.float32)
        over = np.zeros(n, dtype=bool)
        done = np.zeros(n, dtype=bool)
        screens = self._screens
        for i, ale in enumerate(self.ales):
            act = self.action_set[int(actions[i])]
            for k in range(FRAME_SKIP):  # the last two frames into screens[0], screens[1]
                score[i] += ale.act(act)
                if k >= FRAME_SKIP - 2:
                    ale.getScreenRGB(screens[k - FRAME_SKIP + 2])
                if ale.game_over(with_truncation=False):
                    over[i] = True
                    break
            if k < FRAME_SKIP - 1:  # the game ended before the last frame: its last screen
                if k < FRAME_SKIP - 2:
                    ale.getScreenRGB(screens[0])
                frame = screens[0]
            else:
                frame = np.maximum(screens[0], screens[1])
            raw[i] = frame.transpose(2, 0, 1)
            lives = ale.lives()
            if self.train and 0 < lives < self.lives[i]:
                done[i] = True
            self.lives[i] = lives
        self.elapsed += 1
        truncated = self.elapsed >= MAX_EPISODE_STEPS
        done |= over | truncated
        terminated = done & ~truncated
        rewards = np.sign(score) if self.train else score.copy()
        return raw, rewards.astype(np.float32), terminated, truncated, score, over | truncated, self.lives.copy()

    def close(self) -> None:
        for env in self.envs:
            env.close()


class AtariVectorEnv(SameStepVectorEnv):
    """N Atari games with the protocol of the module docstring, as a Gymnasium VectorEnv with same-step autoreset.

    Observations (N, 4, 84, 84) uint8 (oldest frame first); actions the game's minimal action set. `step`'s `infos`
    add `score` (float32, the unclipped points of the step), `game_over` (the real end of the game: all lives lost
    or the step cap) and `lives` (after the step, before any reset) to the final observations of finished episodes.
    Attributes: `game`, `variant`, `train`, `engine`, `seeds` (one per game), `score_region` (the game's, None if
    unknown; masked only in the noscore/blurscore variants) and `rgb` (the last raw, masked, RGB frames).
    """

    render_mode = "rgb_array"

    def __init__(self, spec: AtariSpec, num_envs: int, seed: int | Sequence[int] | None = 0, engine: str = "envpool"):
        if num_envs < 1:
            raise RewardLabError(f"make_atari needs at least one environment, got num_envs={num_envs}")
        self.atari_spec = spec
        self.game, self.variant, self.train, self.engine = spec.game, spec.variant, bool(spec.train), engine
        self.pipeline = FramePipeline(spec.game, spec.variant)
        self.score_region = SCORE_REGIONS.get(spec.game)  # the game's, masked only by noscore/blurscore
        self.num_envs = num_envs
        self._games: _EnvpoolGames | _AleGames | None = None
        self._seed(seed)
        self._set_spaces(
            num_envs,
            spaces.Box(0, 255, (STACK, OBS_SIZE, OBS_SIZE), dtype=np.uint8),
            spaces.Discrete(self._games.n_actions),
        )
        self._raw = np.zeros((num_envs, 3, RAW_HEIGHT, RAW_WIDTH), dtype=np.uint8)
        self._stack = np.zeros((num_envs, STACK, OBS_SIZE, OBS_SIZE), dtype=np.uint8)
        self._started = False  # envpool needs a reset before the first step

    def _seed(self, seed: int | Sequence[int] | None) -> None:
        """envpool fixes its seeds at creation: (re)create the games with one seed per environment."""
        if seed is None or isinstance(seed, (int, np.integer)):  # envpool wants int32 seeds
            self.seeds = [s & 0x7FFFFFFF for s in spawn_seeds(seed, self.num_envs, "make_atari")]
        else:
            self.seeds = spawn_seeds(seed, self.num_envs, "make_atari")
            if any(not 0 <= s < 2**31 for s in self.seeds):
                raise RewardLabError("Atari seeds must be integers in 0..2**31-1")
        if self._games is not None:
            self._games.close()
        backend = _EnvpoolGames if self.engine == "envpool" else _AleGames
        self._games = backend(self.game, self.num_envs, self.seeds, self.train)
        self._started = False

    @property
    def rgb(self) -> np.ndarray:
        """The last raw (masked) RGB frames (N, 210, 160, 3) uint8, a copy: after a reset, the new episode's."""
        return np.ascontiguousarray(self._raw.transpose(0, 2, 3, 1))

    def render(self) -> np.ndarray:
        """The last raw (masked) RGB frames of every game (N, 210, 160, 3) uint8."""
        return self.rgb

    def _reset_all(self) -> np.ndarray:
        raw, _ = self._games.reset()
        self._started = True
        self._raw[...] = raw
        stack = np.zeros_like(self._stack)
        stack[:, -1] = self.pipeline(self._raw)
        self._stack = stack
        return stack

    def _step(self, actions: np.ndarray):
        if not self._started:
            raise RewardLabError("call reset() on an Atari environment before its first step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise RewardLabError(f"AtariVectorEnv.step expects {self.num_envs} actions, got shape {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= self._games.n_actions):
            raise RewardLabError(f"{self.game} actions must be integers in 0..{self._games.n_actions - 1}")
        raw, rewards, terminated, truncated, score, game_over, lives = self._games.step(actions)
        self._raw[...] = raw
        stack = np.empty_like(self._stack)
        stack[:, :-1] = self._stack[:, 1:]
        stack[:, -1] = self.pipeline(self._raw)
        done = np.flatnonzero(terminated | truncated)
        final = stack
        if done.size:
            final = stack.copy()
            raw_new, _ = self._games.reset(done)
            stack[done] = 0
            stack[done, -1] = self.pipeline(raw_new)  # masks raw_new in place: `rgb` shows the masked screen
            self._raw[done] = raw_new
        self._stack = stack
        self._extra = {
            "score": np.asarray(score, dtype=np.float32),
            "game_over": np.asarray(game_over, dtype=bool),
            "lives": np.asarray(lives, dtype=np.int32),
        }
        return stack, np.asarray(rewards, dtype=np.float32), terminated.astype(bool), truncated.astype(bool), final

    def step(self, actions: np.ndarray):
        """Step every game; returns (obs, rewards, terminations, truncations, infos) with `score`, `game_over` and
        `lives` in `infos` besides the final observations of the episodes that ended."""
        obs, rewards, terminated, truncated, infos = super().step(actions)
        infos.update(self._extra)
        return obs, rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Close the emulators (Gymnasium's `close` calls this once)."""
        if getattr(self, "_games", None) is not None:
            self._games.close()
            self._games = None


def make_atari(spec: AtariSpec, num_envs: int, seed: int | Sequence[int] | None = 0, engine: str = "envpool"):
    """`num_envs` games of `spec` (see the module docstring), seeded from `seed`, on `engine` ("envpool" or "ale")."""
    if spec.variant not in VARIANTS:
        raise RewardLabError(f"unknown Atari variant '{spec.variant}'; choose one of {', '.join(VARIANTS)}")
    if spec.variant != "plain" and spec.game not in SCORE_REGIONS:
        raise RewardLabError(
            f"the '{spec.variant}' variant needs a known score region; '{spec.game}' has none "
            f"(games with one: {', '.join(GAMES)})"
        )
    check_game(spec.game, engine)
    return AtariVectorEnv(spec, num_envs, seed, engine)


class AtariEnv(BatchOfOne):
    """One Atari game as a Gymnasium Env (registered as `rewardlab/{Game}-v0`, `{Game}NoScore-v0` and
    `{Game}BlurScore-v0` for the games with a known score region): the batched environment with N = 1, so the
    frames and dynamics are the same. By default it is the evaluation protocol (full games, the game's points);
    `train=True` gives episodic life and clipped rewards. `info` holds `score`, `game_over` and `lives`."""

    info_keys = ("score", "game_over", "lives")

    def __init__(
        self, game: str = "Breakout", variant: str = "plain", train: bool = False, render_mode: str | None = None
    ):
        super().__init__(make_atari(AtariSpec(game, variant, train), 1, seed=None), render_mode)


def register() -> None:
    """Register `rewardlab/{Game}-v0` for the games with a known score region, with their NoScore and BlurScore
    variants (the engine is imported when one is made, not here)."""
    for game in GAMES:
        for variant, suffix in (("plain", ""), ("noscore", "NoScore"), ("blurscore", "BlurScore")):
            env_name = f"rewardlab/{game}{suffix}-v0"
            if env_name not in gym.registry:
                gym.register(
                    env_name, entry_point="rewardlab.envs.atari:AtariEnv", kwargs={"game": game, "variant": variant}
                )
