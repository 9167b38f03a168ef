"""Cluttered MNIST (Mnih et al. 2014, as generated for the IRRL paper): one digit and clutter crops on a canvas.

The paper's generator (docs/originals.md), vectorised: a digit pasted at column U{0..31} and row min(U{0..59}, 32)
(so about 47% of digits sit at the bottom rows: the row bias that defines the benchmark), plus 4 crops of 8x8
taken from random training digits, pasted at U{0..51} (later crops overwrite earlier ones) on a separate canvas,
added to the digit canvas and clipped to [0, 1]. 60,000 training images drawn with replacement from the MNIST
training set, 10,000 test images from the test set. `uniform_placement=True` places digit and crops uniformly
over every position that fits.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardlab.core.runs import atomic_path
from rewardlab.data.mnist import Digits
from rewardlab.errors import RewardLabError

MEAN, STD = 0.1307, 0.3081  # the normalisation of the original loader


@dataclass
class ClutteredSpec:
    """How to draw a Cluttered MNIST set."""

    canvas: int = 60
    digit_size: int = 28
    clutter_size: int = 8
    n_clutter: int = 4
    bank_size: int = 100_000
    n_train: int = 60_000
    n_test: int = 10_000
    uniform_placement: bool = False
    seed: int = 1234

    def validate(self) -> None:
        if self.digit_size > self.canvas:
            raise RewardLabError(f"digit_size {self.digit_size} does not fit on a canvas of {self.canvas}")
        if self.n_clutter > 0 and not 1 <= self.clutter_size < min(self.canvas, 28):
            raise RewardLabError(
                f"clutter_size must be between 1 and {min(self.canvas, 28) - 1} "
                f"(crops come from 28x28 digits and must fit the canvas), got {self.clutter_size}"
            )


@dataclass
class ClutteredMNIST:
    """Images (N, H, W) float32 in [0, 1] and int64 labels, for a train and a test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def canvas(self) -> int:
        return self.x_train.shape[-1]

    def split(self, valid_fraction: float = 0.1, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the train and validation parts of the training set (the original's 54k/6k split)."""
        n = len(self.y_train)
        idx = np.arange(n)
        np.random.RandomState(seed).shuffle(idx)
        n_valid = int(np.floor(valid_fraction * n))
        return idx[n_valid:], idx[:n_valid]


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[-1] == size:
        return images
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(images.astype(np.float32))[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def _paste(canvas: np.ndarray, pieces: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """canvas[i, rows[i]:rows[i]+h, cols[i]:cols[i]+w] = pieces[i], for every i at once."""
    n, h, w = pieces.shape
    ii = np.arange(n)[:, None, None]
    rr = rows[:, None, None] + np.arange(h)[None, :, None]
    cc = cols[:, None, None] + np.arange(w)[None, None, :]
    canvas[ii, rr, cc] = pieces


def _draw(
    rng: np.random.Generator, pool: np.ndarray, bank: np.ndarray, n: int, spec: ClutteredSpec, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """n images drawn from `pool` (with replacement), and which pool entries they show."""
    W, D, c = spec.canvas, spec.digit_size, spec.clutter_size
    which = rng.integers(0, len(pool), size=n)
    if spec.uniform_placement:
        col = rng.integers(0, W - D + 1, size=n)
        row = rng.integers(0, W - D + 1, size=n)
    else:
        half = (W - D) // 2
        col = rng.integers(0, 2 * half, size=n) if half > 0 else np.zeros(n, dtype=np.int64)
        row = np.minimum(rng.integers(0, W, size=n), W - D)
    k = spec.n_clutter
    hi = W - c + 1 if spec.uniform_placement else W - c
    pieces = rng.integers(0, len(bank), size=(n, k))
    crow = rng.integers(0, hi, size=(n, k))
    ccol = rng.integers(0, hi, size=(n, k))
    out = np.empty((n, W, W), dtype=np.float32)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        digits = np.zeros((e - s, W, W), dtype=np.uint8)
        _paste(digits, _resize(pool[which[s:e]], D), row[s:e], col[s:e])
        clutter = np.zeros_like(digits)
        for j in range(k):  # in order: a later crop overwrites an earlier one
            _paste(clutter, bank[pieces[s:e, j]], crow[s:e, j], ccol[s:e, j])
        out[s:e] = np.minimum(digits.astype(np.uint16) + clutter, 255).astype(np.float32) / 255.0
    return out, which


def generate_cluttered(digits: Digits, spec: ClutteredSpec | None = None) -> ClutteredMNIST:
    """Draw a Cluttered MNIST set from `digits` (deterministic for `spec.seed`)."""
    spec = spec or ClutteredSpec()
    spec.validate()
    rng = np.random.default_rng(spec.seed)
    pool = digits.train_images
    if pool.shape[-1] < spec.clutter_size + 1 and spec.n_clutter > 0:
        raise RewardLabError(f"clutter_size {spec.clutter_size} does not fit in {pool.shape[-1]}-pixel digits")
    c, nb = spec.clutter_size, spec.bank_size if spec.n_clutter > 0 else 1
    src_h, src_w = pool.shape[1:]
    which = rng.integers(0, len(pool), size=nb)
    oy = rng.integers(0, src_h - c, size=nb)
    ox = rng.integers(0, src_w - c, size=nb)
    ar = np.arange(c)
    bank = pool[which[:, None, None], oy[:, None, None] + ar[None, :, None], ox[:, None, None] + ar[None, None, :]]
    x_train, i_train = _draw(rng, pool, bank, spec.n_train, spec)
    x_test, i_test = _draw(rng, digits.test_images, bank, spec.n_test, spec)
    return ClutteredMNIST(
        x_train, digits.train_labels[i_train].astype(np.int64), x_test, digits.test_labels[i_test].astype(np.int64)
    )


def save_cluttered(data: ClutteredMNIST, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write the original's `.npz` layout atomically: X_* float32 (N, H*W), y_* int32 (N, 1)."""
    path = Path(path)
    n_tr, n_te = len(data.y_train), len(data.y_test)
    arrays = dict(
        X_train=data.x_train.reshape(n_tr, -1),
        y_train=data.y_train.astype(np.int32).reshape(-1, 1),
        X_test=data.x_test.reshape(n_te, -1),
        y_test=data.y_test.astype(np.int32).reshape(-1, 1),
    )
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
    return path


def load_cluttered(path: str | os.PathLike) -> ClutteredMNIST:
    """Read a Cluttered MNIST `.npz` (ours or the original generator's), with clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise RewardLabError(f"Cluttered MNIST file '{path}' does not exist; run the `data` step to generate it")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("X_train", "y_train", "X_test", "y_test") if k not in z.files]
            if missing:
                raise RewardLabError(f"'{path}' is not a Cluttered MNIST file: it lacks {', '.join(missing)}")
            arrays = {k: z[k] for k in ("X_train", "y_train", "X_test", "y_test")}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise RewardLabError(
            f"Cluttered MNIST file '{path}' is corrupt ({type(e).__name__}); give another file as data.path, or remake "
            "the run's own with the `data` step and --redo"
        ) from None
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"X_{split}"], arrays[f"y_{split}"].reshape(-1)
        side = int(round(np.sqrt(x.shape[-1]))) if x.ndim == 2 else -1
        if x.ndim != 2 or side * side != x.shape[1] or len(y) != len(x):
            raise RewardLabError(
                f"'{path}': X_{split} must be (N, side*side) with N labels, got {x.shape} and {len(y)} labels"
            )
        if not np.issubdtype(x.dtype, np.floating) or not np.issubdtype(y.dtype, np.integer):
            raise RewardLabError(f"'{path}': X_{split} must be float and y_{split} integer, got {x.dtype}, {y.dtype}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise RewardLabError(f"'{path}': y_{split} holds labels outside 0..9")
        out += [x.reshape(-1, side, side).astype(np.float32, copy=False), y.astype(np.int64)]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise RewardLabError(f"'{path}': train images {out[0].shape[1:]} and test images {out[2].shape[1:]} differ")
    return ClutteredMNIST(*out)


def example_grid(images: np.ndarray, n: int = 10, border: float = 0.5) -> np.ndarray:
    """An n x n mosaic of the first n*n images, separated by 1-pixel lines of value `border`."""
    k = min(len(images), n * n)
    h, w = images.shape[1:]
    grid = np.full((n * (h + 1) - 1, n * (w + 1) - 1), border, dtype=np.float32)
    for i in range(k):
        r, c = divmod(i, n)
        grid[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = images[i]
    return grid
