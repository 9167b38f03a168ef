"""Feature visualisation, dataset examples and LayerNMF for pixel reward nets, in plain torch, numpy and scikit-learn.

Why our own: the reward-function-interpretability study of Jenner & Gleave interpreted CoinRun reward models with
torch-lucent, which needs torchvision and an old kornia; this module re-implements the parts that study used.

Feature visualisation (Olah et al. 2017, "Feature Visualization", Distill; lucid / torch-lucent `optvis`):
  images are optimised by gradient ascent on an objective. The image is parameterised in Fourier space (lucent's
  `fft_image`): a complex spectrum per colour channel, each frequency scaled by 1 / max(|f|, 1 / size) (decay power 1),
  an inverse real FFT (orthonormal) divided by 4, then a fixed linear map from decorrelated to RGB colour space (the
  square root of ImageNet's colour correlation, lucent's `color_correlation_svd_sqrt`, columns scaled to unit max
  norm) and a sigmoid to [0, 1]; nets see the image times 255 (our nets take raw pixel values). At every step each
  image gets its own random transform (lucent's `standard_transforms`: pad with grey, jitter 8 px, scale 0.9-1.1,
  rotate +-10 degrees, jitter 4 px, for 224 px images), here one batched affine `grid_sample` that keeps the net's
  input size (the centre crop of lucent's output), with the pixel amounts scaled to the image size (shifts uniform in
  +-2 and +-1 px at 64 px; lucent draws 0..7 and 0..3 px), continuous scale and angle, and grey where the transformed
  image leaves the frame. The model is put in eval mode while it is read (restored after); only the image gets
  gradients. Adam with lr 0.05 (lucent's default) ascends the sum over the batch of
  per-image objectives, one forward and one backward per step for the whole batch: batch element b maximises the
  reward, minimises it, maximises channel b's mean activation of a layer, or the dot product of a layer's activations
  (mean over positions) with direction b.

Dataset examples (Olah et al. 2017): for each channel of a layer (or the reward) the k frames of a set with the
  largest mean (or max) activation over positions, with the channel's spatial map upsampled to the frame.

LayerNMF (Hilton et al. 2020, "Understanding RL Vision", Distill; lucid's `misc/channel_reducer.py`): non-negative
  matrix factorisation of a layer's non-negative activations reshaped to (N*h*w, C), A ~ W H, gives K channel
  directions (rows of H, scaled to unit norm) and their spatial maps (W reshaped to (N, K, h, w)). Each factor is
  shown as its feature visualisation (direction objective), its top dataset examples and its map over the frames.

Conventions: `model_fn(images)` runs the reward model on float images (B, 3, H, W) in [0, 255] and returns rewards
(B,) (for layer objectives its output is ignored); layers are named submodules of `model` (`layer_names`), read with
a forward hook, so `model_fn` must run the layer exactly once per call. A net of (state, action, next_state, done) is
wrapped, e.g. `model_fn = lambda x: net(x, torch.full((len(x),), action), None, None)` for R(s, a), or
`lambda x: net(x[:, :3], a, x[:, 3:], None)` on 6-channel (s, s') images. Images with 3k channels (k stacked RGB
frames, e.g. (s, s') pairs) also work: the colour decorrelation acts on each RGB triple, and figures show the k frames
side by side. Frames in datasets are uint8 (N, 3, H, W).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rewardlab.errors import RewardLabError

ModelFn = Callable[[torch.Tensor], torch.Tensor]

# Square root of ImageNet's colour correlation (lucid / lucent), columns scaled so the largest has unit norm.
_COLOR_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
_COLOR = _COLOR_SVD_SQRT / np.linalg.norm(_COLOR_SVD_SQRT, axis=0).max()


# ----------------------------------------------------------------------------------------------------------- layers


def layer_names(model: nn.Module) -> list[str]:
    """The names of `model`'s submodules, each usable as a layer (its output is the layer's activations)."""
    return [name for name, _ in model.named_modules() if name]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called `name`; a RewardLabError listing the model's layers if there is none."""
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise RewardLabError(f"layer '{name}' is not in this model; its layers are: {', '.join(layer_names(model))}")
    return modules[name]


class _Capture:
    """Records a layer's outputs through a forward hook; `take` returns the one output of the last model call."""

    def __init__(self, model: nn.Module, layer: str):
        self.layer, self.outputs = layer, []
        self.handle = get_layer(model, layer).register_forward_hook(lambda _m, _i, out: self.outputs.append(out))

    def take(self) -> torch.Tensor:
        outs, self.outputs = self.outputs, []
        if len(outs) != 1:
            raise RewardLabError(
                f"layer '{self.layer}' ran {len(outs)} times in one call of model_fn; pass a model_fn that runs it "
                "exactly once (e.g. the net on one frame, not on state and next state separately)"
            )
        a = outs[0]
        if not isinstance(a, torch.Tensor) or a.ndim not in (2, 4):
            what = f"shape {tuple(a.shape)}" if isinstance(a, torch.Tensor) else type(a).__name__
            raise RewardLabError(
                f"layer '{self.layer}' outputs {what}; pick a layer whose output is (B, C, h, w) or (B, C)"
            )
        return a[:, :, None, None] if a.ndim == 2 else a


@contextmanager
def _hooked(model: nn.Module | None, layer: str | None) -> Iterator[_Capture | None]:
    """The model in eval mode (restored after) with a capture on `layer` (None: no capture)."""
    if layer is not None and model is None:
        raise RewardLabError(f"layer '{layer}' needs the model: pass the nn.Module that model_fn runs")
    cap = _Capture(model, layer) if layer is not None else None
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    try:
        yield cap
    finally:
        if cap is not None:
            cap.handle.remove()
        if model is not None:
            model.train(was_training)


def _device(model: nn.Module | None) -> torch.device:
    for t in model.parameters() if model is not None else ():
        return t.device
    for t in model.buffers() if model is not None else ():
        return t.device
    return torch.device("cpu")


def _rewards(out: torch.Tensor, n: int) -> torch.Tensor:
    """model_fn's output as (B,) rewards, or a RewardLabError."""
    if not isinstance(out, torch.Tensor) or out.reshape(-1).shape[0] != n or out.ndim > 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise RewardLabError(
            f"model_fn must return one reward per image, shape ({n},); got {shape} (pick the action's output)"
        )
    return out.reshape(n)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1] % 3 != 0:
        hint = " (channel-last? use frames.transpose(0, 3, 1, 2))" if frames.ndim == 4 and frames.shape[-1] == 3 else ""
        raise RewardLabError(
            f"frames must be a uint8 array (N, 3, H, W); got {frames.dtype} of shape {frames.shape}{hint}"
        )
    return frames


def _batches(
    model_fn: ModelFn, model: nn.Module | None, layer: str | None, frames: np.ndarray, batch_size: int
) -> Iterator[torch.Tensor]:
    """For each batch of frames, the layer's activations (B, C, h, w), or the rewards (B, 1, 1, 1) for layer None."""
    frames = _check_frames(frames)
    if batch_size < 1:
        raise RewardLabError(f"batch_size must be at least 1, got {batch_size}")
    dev = _device(model)
    with _hooked(model, layer) as cap, torch.no_grad():
        for i in range(0, len(frames), batch_size):
            x = torch.as_tensor(frames[i : i + batch_size], device=dev).float()
            out = model_fn(x)
            yield _rewards(out, len(x))[:, None, None, None] if cap is None else cap.take()


def layer_activations(
    model_fn: ModelFn, model: nn.Module, layer: str, frames: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """A layer's activations (N, C, h, w) float32 on uint8 frames (N, 3, H, W); (N, C) layers give (N, C, 1, 1)."""
    parts = [a.float().cpu().numpy() for a in _batches(model_fn, model, layer, frames, batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 0, 1, 1), np.float32)


# ------------------------------------------------------------------------------------------- feature visualisation


@dataclass(frozen=True)
class Objective:
    """What each batch element maximises: +-reward (`signs`, layer None) or a layer's mean activations . direction."""

    layer: str | None
    labels: tuple[str, ...] | None  # None: one per channel of the layer, known at the first forward
    signs: tuple[float, ...] = ()
    channels: tuple[int, ...] | None = None
    directions: np.ndarray | None = None


def reward_objective(maximise: bool = True, minimise: bool = True) -> Objective:
    """Maximise and/or minimise the reward (model_fn's output): batch element 0 maximises, the next minimises."""
    signs = (1.0,) * maximise + (-1.0,) * minimise
    if not signs:
        raise RewardLabError("reward_objective needs maximise or minimise (or both) to be True")
    labels = ("reward max",) * maximise + ("reward min",) * minimise
    return Objective(layer=None, labels=labels, signs=signs)


def channel_objective(layer: str, channels: Sequence[int] | None = None) -> Objective:
    """Maximise the mean activation of `layer`'s channel channels[b] in batch element b (None: every channel)."""
    if channels is None:
        return Objective(layer=layer, labels=None)
    chans = tuple(int(c) for c in channels)
    if not chans:
        raise RewardLabError("channel_objective needs at least one channel (or channels=None for all)")
    return Objective(layer=layer, labels=tuple(f"{layer} ch {c}" for c in chans), channels=chans)


def direction_objective(layer: str, directions: np.ndarray, labels: Sequence[str] | None = None) -> Objective:
    """Maximise mean over positions of `layer`'s activations . directions[b] in batch element b (LayerNMF factors)."""
    d = np.asarray(directions, dtype=np.float32)
    if d.ndim == 1:
        d = d[None]
    if d.ndim != 2 or len(d) == 0:
        raise RewardLabError(f"directions must be an array (K, C) of channel-space directions; got shape {d.shape}")
    labels = tuple(labels) if labels is not None else tuple(f"factor {i}" for i in range(len(d)))
    if len(labels) != len(d):
        raise RewardLabError(f"{len(labels)} labels for {len(d)} directions; give one label per direction")
    return Objective(layer=layer, labels=labels, directions=d)


def _channel_weights(obj: Objective, n_channels: int, device: torch.device) -> torch.Tensor:
    """The objective's (B, C) weights on a layer's channel means (one-hot rows for channels)."""
    if obj.directions is not None:
        if obj.directions.shape[1] != n_channels:
            raise RewardLabError(
                f"directions have {obj.directions.shape[1]} channels but layer '{obj.layer}' has {n_channels}"
            )
        return torch.as_tensor(obj.directions, device=device)
    chans = obj.channels if obj.channels is not None else tuple(range(n_channels))
    bad = [c for c in chans if not 0 <= c < n_channels]
    if bad:
        raise RewardLabError(f"channel {bad[0]} is out of range: layer '{obj.layer}' has {n_channels} channels")
    return F.one_hot(torch.as_tensor(chans, device=device), n_channels).float()


def fourier_frequencies(h: int, w: int) -> np.ndarray:
    """|f| of the real-FFT grid (h, w // 2 + 1) of an h x w image, in cycles per pixel."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


class FourierImage:
    """A batch of images (B, 3k, h, w) in [0, 1]: a 1/f-scaled spectrum, inverse FFT, colour decorrelation, sigmoid."""

    def __init__(
        self,
        batch: int,
        channels: int,
        h: int,
        w: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        sd: float = 0.01,
        decay_power: float = 1.0,
    ):
        if channels % 3 != 0:
            raise RewardLabError(f"images need 3 channels per frame (RGB); got {channels} channels")
        self.size = (h, w)
        scale = 1.0 / np.maximum(fourier_frequencies(h, w), 1.0 / max(h, w)) ** decay_power
        self.scale = torch.as_tensor(scale, dtype=torch.float32, device=device)
        init = torch.randn(batch, channels, h, w // 2 + 1, 2, generator=generator) * sd
        self.spectrum = init.to(device).requires_grad_(True)
        self.color = torch.as_tensor(_COLOR, device=device)

    def __call__(self) -> torch.Tensor:
        """The images (B, 3k, h, w) in [0, 1]."""
        spec = torch.view_as_complex(self.spectrum) * self.scale
        x = torch.fft.irfft2(spec, s=self.size, norm="ortho") / 4.0  # lucid's "magic" 4 tames saturation
        b, c, h, w = x.shape
        x = torch.einsum("ij,bkjhw->bkihw", self.color, x.reshape(b, c // 3, 3, h, w)).reshape(b, c, h, w)
        return torch.sigmoid(x)


def random_transform(
    images: torch.Tensor,
    generator: torch.Generator,
    jitter: tuple[float, float] | None = None,
    scale: tuple[float, float] = (0.9, 1.1),
    degrees: float = 10.0,
    fill: float = 0.5,
) -> torch.Tensor:
    """Each image jittered, scaled, rotated and jittered again (lucent's standard transforms) by one grid_sample.

    `jitter` is the two jitters' largest shifts in pixels (default 8 and 4 px per 224 px, at least 1); the output keeps
    the input size; where the transformed image leaves the frame it is `fill` (lucent's grey padding)."""
    b, _, h, w = images.shape
    s = max(h, w)
    j1, j2 = jitter if jitter is not None else (max(1.0, round(s * 8 / 224)), max(1.0, round(s * 4 / 224)))
    r = torch.rand(b, 6, generator=generator).to(images.device)
    d1 = (2 * r[:, 0:2] - 1) * j1  # (B, 2) pixels (x, y)
    d2 = (2 * r[:, 2:4] - 1) * j2
    sc = scale[0] + (scale[1] - scale[0]) * r[:, 4]
    ang = torch.deg2rad((2 * r[:, 5] - 1) * degrees)
    cos, sin = torch.cos(ang), torch.sin(ang)
    # forward map on centred pixel coords: p' = sc R (p + d1) + d2;
    # grid_sample needs its inverse p = R^T (p' - d2) / sc - d1 (output pixel -> source pixel)
    rt = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) / sc[:, None, None]  # (B, 2, 2)
    t = -(rt @ d2[:, :, None])[:, :, 0] - d1
    half = torch.tensor([w / 2, h / 2], device=images.device)  # normalised = pixel / half (align_corners=False)
    a_n = rt * half[None, None, :] / half[None, :, None]
    theta = torch.cat([a_n, (t / half)[:, :, None]], dim=2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


@dataclass
class FeatureVis:
    """Optimised images and their objective: `history` (steps, B) on transformed images, `final` (B,) on the images."""

    images: np.ndarray  # (B, 3k, H, W) uint8
    labels: list[str]
    history: np.ndarray  # (steps, B) float32, the value maximised (minus the reward for "reward min")
    final: np.ndarray  # (B,) float32, the objective of the returned images without transforms
    seconds: float  # wall time of the optimisation steps (steps / seconds = steps per second)


def visualise(
    model_fn: ModelFn,
    model: nn.Module | None,
    objective: Objective,
    shape: tuple[int, int, int] = (3, 64, 64),
    steps: int = 256,
    lr: float = 0.05,
    seed: int = 0,
    transforms: bool = True,
    device: torch.device | str | None = None,
) -> FeatureVis:
    """Feature visualisation: Fourier-parameterised images (B, *shape) optimised by Adam on `objective`, one batch."""
    if steps < 0:
        raise RewardLabError(f"steps must be >= 0, got {steps}")
    dev = torch.device(device) if device is not None else _device(model)
    gen = torch.Generator().manual_seed(int(seed))
    c, h, w = (int(x) for x in shape)
    with _hooked(model, objective.layer) as cap:

        def score(images01: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
            out = model_fn(images01 * 255.0)
            if cap is None:
                return _rewards(out, len(images01)) * weights
            return (cap.take().mean(dim=(2, 3)) * weights).sum(dim=1)

        weights, labels = None, objective.labels
        if cap is None:
            weights = torch.tensor(objective.signs, device=dev)
        else:
            with torch.no_grad():  # one grey probe image: the layer's channel count
                model_fn(torch.full((1, c, h, w), 127.5, device=dev))
            n_ch = cap.take().shape[1]
            weights = _channel_weights(objective, n_ch, dev)
            if labels is None:
                labels = tuple(f"{objective.layer} ch {i}" for i in range(n_ch))
        image = FourierImage(len(weights), c, h, w, gen, dev)
        opt = torch.optim.Adam([image.spectrum], lr=lr)
        history = np.zeros((steps, len(weights)), np.float32)
        start = time.perf_counter()
        for step in range(steps):
            x = image()
            if transforms:
                x = random_transform(x, gen)
            value = score(x, weights)
            (grad,) = torch.autograd.grad(-value.sum(), [image.spectrum])
            image.spectrum.grad = grad
            opt.step()
            history[step] = value.detach().cpu().numpy()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            x = image()
            final = score(x, weights).cpu().numpy()
            out = torch.round(x * 255.0).to(torch.uint8).cpu().numpy()
    return FeatureVis(out, list(labels), history, final.astype(np.float32), seconds)


# -------------------------------------------------------------------------------------------------- dataset examples


@dataclass
class Examples:
    """Per unit (channel, factor or the reward) its k top frames, best first, with their activation maps."""

    labels: list[str]
    indices: np.ndarray  # (U, k) frame indices into the set
    scores: np.ndarray  # (U, k) the ranking value (mean or max of the unit's map, or the reward)
    frames: np.ndarray  # (U, k, 3, H, W) uint8
    maps: np.ndarray | None  # (U, k, H, W) float32, the unit's spatial map upsampled to the frame; None for the reward
    reduce: str


def _reduce(acts: torch.Tensor | np.ndarray, reduce: str):
    """(N, C, h, w) -> (N, C) by the mean or max over positions."""
    if reduce == "mean":
        return acts.mean(axis=(2, 3)) if isinstance(acts, np.ndarray) else acts.mean(dim=(2, 3))
    if reduce == "max":
        return acts.max(axis=(2, 3)) if isinstance(acts, np.ndarray) else acts.amax(dim=(2, 3))
    raise RewardLabError(f"reduce must be 'mean' or 'max', got '{reduce}'")


def top_k(scores: np.ndarray, k: int, largest: bool = True) -> np.ndarray:
    """Indices (U, k) of the k largest (or smallest) of each column of scores (N, U), best first; ties: lower index."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores if largest else scores, axis=0, kind="stable")
    return order[: min(int(k), len(scores))].T


def _upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps (..., h, w) bilinearly resized to `size`."""
    lead = maps.shape[:-2]
    t = torch.as_tensor(np.ascontiguousarray(maps, dtype=np.float32)).reshape(-1, 1, *maps.shape[-2:])
    if t.shape[0] == 0:
        return np.zeros((*lead, *size), np.float32)
    up = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return up.reshape(*lead, *size).numpy()


def dataset_examples(
    model_fn: ModelFn,
    model: nn.Module | None,
    layer: str | None,
    frames: np.ndarray,
    k: int = 8,
    reduce: str = "mean",
    largest: bool = True,
    batch_size: int = 256,
) -> Examples:
    """For each channel of `layer` (or the reward, layer None) the k frames that excite it most (mean or max)."""
    frames = _check_frames(frames)
    _reduce(np.zeros((1, 1, 1, 1)), reduce)  # validates `reduce` before any work
    scores = [_reduce(a, reduce).double().cpu().numpy() for a in _batches(model_fn, model, layer, frames, batch_size)]
    if not scores:
        raise RewardLabError("frames is empty; give at least one frame")
    scores = np.concatenate(scores)  # (N, U)
    idx = top_k(scores, k, largest)  # (U, k)
    top_scores = np.take_along_axis(scores.T, idx, axis=1)
    if layer is None:
        return Examples(["reward"], idx, top_scores, frames[idx], None, reduce)
    uniq, inverse = np.unique(idx, return_inverse=True)
    acts = layer_activations(model_fn, model, layer, frames[uniq], batch_size)  # (M, C, h, w)
    units = np.arange(idx.shape[0])[:, None]
    maps = _upsample(acts[inverse.reshape(idx.shape), units], frames.shape[2:])
    labels = [f"{layer} ch {c}" for c in range(idx.shape[0])]
    return Examples(labels, idx, top_scores, frames[idx], maps, reduce)


# -------------------------------------------------------------------------------------------------------- LayerNMF


@dataclass
class LayerNMF:
    """A layer's activations ~ maps x directions: K unit-norm channel directions and their spatial maps."""

    directions: np.ndarray  # (K, C), non-negative, unit L2 norm
    maps: np.ndarray  # (N, K, h, w), non-negative
    error: float  # ||A - W H||_F / ||A||_F on the (N*h*w, C) activations


def layer_nmf(acts: np.ndarray, n_factors: int, seed: int = 0, max_iter: int = 1000) -> LayerNMF:
    """scikit-learn NMF of non-negative activations (N, C, h, w) or (N, C) reshaped to (N*h*w, C) into K factors."""
    from sklearn.decomposition import NMF

    a = np.asarray(acts, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, :, None, None]
    if a.ndim != 4 or a.size == 0:
        raise RewardLabError(f"activations must be a non-empty array (N, C, h, w) or (N, C); got shape {a.shape}")
    if a.min() < 0:
        raise RewardLabError(
            f"LayerNMF needs non-negative activations (a layer after a ReLU); this one goes down to {a.min():.3g}"
        )
    n, c, h, w = a.shape
    if not 1 <= n_factors <= c:
        raise RewardLabError(f"n_factors must be between 1 and the layer's {c} channels, got {n_factors}")
    flat = a.transpose(0, 2, 3, 1).reshape(-1, c)
    if n_factors == 1:  # the best rank-1 fit is the leading singular pair, non-negative for non-negative A (sklearn's
        u, s, vt = np.linalg.svd(flat, full_matrices=False)  # solver starts there and then warns it did not converge)
        sign = 1.0 if vt[0].sum() >= 0 else -1.0
        wts, comps = np.maximum(sign * u[:, :1] * s[0], 0), np.maximum(sign * vt[:1], 0)
    else:
        nmf = NMF(n_components=int(n_factors), init="nndsvda", random_state=int(seed), max_iter=int(max_iter))
        wts, comps = nmf.fit_transform(flat), nmf.components_
    norms = np.linalg.norm(comps, axis=1)
    norms[norms == 0] = 1.0
    comps, wts = comps / norms[:, None], wts * norms[None, :]
    total = np.linalg.norm(flat)
    error = float(np.linalg.norm(flat - wts @ comps) / total) if total > 0 else 0.0
    maps = wts.reshape(n, h, w, n_factors).transpose(0, 3, 1, 2)
    return LayerNMF(comps.astype(np.float32), maps.astype(np.float32), error)


def factor_examples(
    nmf: LayerNMF, frames: np.ndarray, k: int = 8, reduce: str = "mean", largest: bool = True
) -> Examples:
    """For each LayerNMF factor the k frames (of those it was fitted on) where its map is largest, with the map."""
    frames = _check_frames(frames)
    if len(frames) != len(nmf.maps):
        raise RewardLabError(f"{len(frames)} frames for a LayerNMF fitted on {len(nmf.maps)}; pass the same frames")
    scores = _reduce(nmf.maps.astype(np.float64), reduce)
    idx = top_k(scores, k, largest)
    units = np.arange(idx.shape[0])[:, None]
    maps = _upsample(nmf.maps[idx, units], frames.shape[2:])
    labels = [f"factor {i}" for i in range(idx.shape[0])]
    return Examples(labels, idx, np.take_along_axis(scores.T, idx, axis=1), frames[idx], maps, reduce)


# --------------------------------------------------------------------------------------------------------- figures


def _rgb(image: np.ndarray) -> np.ndarray:
    """A uint8 image (3k, H, W) as floats (H, k*W, 3) in [0, 1]: its k RGB frames side by side."""
    c, h, w = image.shape
    return image.reshape(c // 3, 3, h, w).transpose(2, 0, 3, 1).reshape(h, (c // 3) * w, 3) / 255.0


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.6, cmap: str = "inferno") -> np.ndarray:
    """A uint8 frame (3k, H, W) with a heat map (H, W) in [0, 1] blended on (more where hotter): (H, k*W, 3)."""
    from rewardlab.interpret.plots import plt

    rgb = _rgb(image)
    heat = np.tile(np.clip(heat, 0.0, 1.0), (1, rgb.shape[1] // heat.shape[1]))
    a = alpha * heat[..., None]
    return (1 - a) * rgb + a * plt.get_cmap(cmap)(heat)[..., :3]


def _normalise(maps: np.ndarray) -> np.ndarray:
    lo, hi = maps.min(), maps.max()
    return (maps - lo) / (hi - lo) if hi > lo else np.zeros_like(maps)


def _grid(rows: int, cols: int, aspect: float, cell: float):
    from rewardlab.interpret.plots import plt

    size = (cols * cell * aspect, rows * cell * 1.15 + 0.4)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def plot_feature_vis(
    vis: FeatureVis, path: Path, titles: Sequence[str] | None = None, ncols: int = 8, cell: float = 1.6
) -> Path:
    """A grid of feature visualisations titled by label and final objective; PNG (+PDF), returns the PNG path."""
    from rewardlab.interpret.plots import save_figure

    n = len(vis.images)
    titles = list(titles) if titles is not None else [f"{lab}\nobj {v:.3g}" for lab, v in zip(vis.labels, vis.final)]
    ncols = max(1, min(ncols, n))
    rows = -(-n // ncols)
    fig, axes = _grid(rows, ncols, vis.images.shape[1] // 3, cell)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(_rgb(vis.images[i]))
        ax.set_title(titles[i], fontsize=7)
    fig.suptitle(f"Feature visualisation ({len(vis.history)} steps; obj = value maximised)", fontsize=9)
    return save_figure(fig, path)


def plot_dataset_examples(
    examples: Examples, path: Path, units: Sequence[int] | None = None, alpha: float = 0.6, cell: float = 1.4
) -> Path:
    """One row per unit: its top frames, the unit's activation map blended on as heat (per-row scale)."""
    from rewardlab.interpret.plots import save_figure

    units = list(units) if units is not None else list(range(len(examples.labels)))
    k = examples.indices.shape[1]
    fig, axes = _grid(len(units), k, examples.frames.shape[2] // 3, cell)
    for r, u in enumerate(units):
        heat = _normalise(examples.maps[u]) if examples.maps is not None else None
        for j in range(k):
            ax = axes[r, j]
            img = examples.frames[u, j]
            ax.imshow(overlay(img, heat[j], alpha) if heat is not None else _rgb(img))
            ax.set_title(f"#{examples.indices[u, j]}: {examples.scores[u, j]:.3g}", fontsize=6)
        axes[r, 0].set_ylabel(examples.labels[u], fontsize=7)
    what = "heat: activation map, scaled per row" if examples.maps is not None else "no map for the reward"
    fig.suptitle(f"Top dataset examples by {examples.reduce} activation (frame index: value; {what})", fontsize=8)
    return save_figure(fig, path)


def plot_layer_nmf(vis: FeatureVis, examples: Examples, path: Path, alpha: float = 0.6, cell: float = 1.4) -> Path:
    """The RL-Vision view: per LayerNMF factor its visualisation, then its top frames with its map overlaid."""
    from rewardlab.interpret.plots import save_figure

    n = len(examples.labels)
    if len(vis.images) != n or examples.maps is None:
        raise RewardLabError(
            f"plot_layer_nmf needs one visualisation per factor and the factors' maps; got {len(vis.images)} "
            f"visualisations for {n} factors (use direction_objective(layer, nmf.directions) and factor_examples)"
        )
    k = examples.indices.shape[1]
    fig, axes = _grid(n, k + 1, examples.frames.shape[2] // 3, cell)
    for r in range(n):
        axes[r, 0].imshow(_rgb(vis.images[r]))
        axes[r, 0].set_ylabel(examples.labels[r], fontsize=7)
        axes[r, 0].set_title("visualisation" if r == 0 else "", fontsize=7)
        heat = _normalise(examples.maps[r])
        for j in range(k):
            axes[r, j + 1].imshow(overlay(examples.frames[r, j], heat[j], alpha))
            axes[r, j + 1].set_title(f"#{examples.indices[r, j]}: {examples.scores[r, j]:.3g}", fontsize=6)
    fig.suptitle(f"LayerNMF factors: visualisation, top frames by {examples.reduce} with the factor's map", fontsize=8)
    return save_figure(fig, path)
