"""Occlusion saliency for pixel reward models (Greydanus et al. 2018, as Michaud et al. 2020 use it), batched.

For centres on a stride-5 grid over the 84x84 frame (17 x 17 = 289 of them), a mask M is a point at the centre
blurred with a Gaussian of sigma 5 (scipy's `gaussian_filter`, as the original) and divided by its maximum; every
stacked frame I is perturbed as I (1 - M) + blur_3(I) M, with blur_3 a Gaussian of sigma 3; the saliency of the
centre is 1/2 (R(perturbed) - R(I))^2. The original ran one forward pass per perturbation; here all perturbations of
several frames go through the model in a few large batches (`occlusion_saliency`), and `occlusion_saliency_loop`
keeps the original's way as the reference the tests and the benchmark compare with.

`upsample` resizes a 17 x 17 map to the 210 x 160 Atari screen (bilinear), `overlay` adds it, divided by its
maximum, to the green channel of the screen, and `region_fraction` measures where the saliency is: the share of its
mass inside a region divided by the region's share of the screen (1: no preference, above 1: the region attracts
it).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch

SIZE, STRIDE, MASK_SIGMA, BLUR_SIGMA = 84, 5, 5.0, 3.0
SCREEN = (210, 160)


@functools.lru_cache(maxsize=4)
def occlusion_masks(size: int = SIZE, stride: int = STRIDE, sigma: float = MASK_SIGMA) -> np.ndarray:
    """(K, size, size) float32 masks, one per centre of the stride grid (row-major), each of maximum 1."""
    from scipy.ndimage import gaussian_filter

    centres = range(0, size, stride)
    masks = []
    for i in centres:
        for j in centres:
            m = np.zeros((size, size), dtype=np.float64)
            m[i, j] = 1.0
            m = gaussian_filter(m, sigma=sigma)
            masks.append(m / m.max())
    return np.stack(masks).astype(np.float32)


def grid_side(size: int = SIZE, stride: int = STRIDE) -> int:
    """Centres per side of the grid (17 for 84 and 5)."""
    return len(range(0, size, stride))


def blur_frames(frames: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Gaussian blur of every frame of (B, C, H, W) over its two spatial axes (float32)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(frames.astype(np.float32), sigma=(0, 0, sigma, sigma)).astype(np.float32)


@torch.no_grad()
def occlusion_saliency(
    reward: Callable[[torch.Tensor], torch.Tensor],
    frames: np.ndarray,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Saliency maps (B, 17, 17) of `reward` (a function of float frames (N, C, 84, 84) in [0, 255] -> (N,)) for the
    stacked frames (B, C, 84, 84), every perturbation of every frame batched."""
    frames = np.asarray(frames)
    b, c, h, w = frames.shape
    masks = torch.as_tensor(occlusion_masks(h), device=device)[:, None]  # (K, 1, H, W)
    k = masks.shape[0]
    x = torch.as_tensor(frames.astype(np.float32), device=device)
    xb = torch.as_tensor(blur_frames(frames), device=device)
    base = reward(x)  # (B,)
    out = torch.empty(b, k, device=device)
    per = max(1, batch_size // k)  # frames whose perturbations share one forward pass
    for start in range(0, b, per):
        sl = slice(start, min(b, start + per))
        xi, bi = x[sl, None], xb[sl, None]  # (n, 1, C, H, W)
        pert = xi * (1 - masks) + bi * masks  # (n, K, C, H, W)
        r = reward(pert.reshape(-1, c, h, w)).reshape(-1, k)
        out[sl] = 0.5 * (r - base[sl, None]) ** 2
    side = grid_side(h)
    return out.reshape(b, side, side).cpu().numpy()


@torch.no_grad()
def occlusion_saliency_loop(
    reward: Callable[[torch.Tensor], torch.Tensor], frames: np.ndarray, device: str | torch.device = "cpu"
) -> np.ndarray:
    """The original's way (one forward pass per perturbation of one frame): the reference for tests and benchmarks."""
    from scipy.ndimage import gaussian_filter

    frames = np.asarray(frames, dtype=np.float32)
    b, c, h, w = frames.shape
    side = grid_side(h)
    out = np.zeros((b, side, side), dtype=np.float32)
    for n in range(b):
        img = frames[n]
        blurred = np.stack([gaussian_filter(ch, sigma=BLUR_SIGMA) for ch in img])
        base = float(reward(torch.as_tensor(img[None], device=device))[0])
        for ii, i in enumerate(range(0, h, STRIDE)):
            for jj, j in enumerate(range(0, w, STRIDE)):
                m = np.zeros((h, w))
                m[i, j] = 1.0
                m = gaussian_filter(m, sigma=MASK_SIGMA)
                m = (m / m.max()).astype(np.float32)
                pert = img * (1 - m) + blurred * m
                r = float(reward(torch.as_tensor(pert[None], device=device))[0])
                out[n, ii, jj] = 0.5 * (r - base) ** 2
    return out


def upsample(saliency: np.ndarray, shape: tuple[int, int] = SCREEN) -> np.ndarray:
    """A (S, S) map (or a batch (B, S, S)) resized bilinearly to the screen (H, W)."""
    t = torch.as_tensor(np.asarray(saliency, dtype=np.float32))
    single = t.ndim == 2
    t = t[None, None] if single else t[:, None]
    up = torch.nn.functional.interpolate(t, size=shape, mode="bilinear", align_corners=False)[:, 0]
    return (up[0] if single else up).numpy()


def overlay(rgb: np.ndarray, saliency: np.ndarray, strength: float = 255.0) -> np.ndarray:
    """The screen (H, W, 3) uint8 with the map, upsampled and divided by its maximum, added to its green channel."""
    up = upsample(saliency, rgb.shape[:2])
    peak = up.max()
    up = up / peak if peak > 0 else up
    out = rgb.astype(np.float32)
    out[..., 1] += strength * up
    return np.clip(out, 0, 255).astype(np.uint8)


def region_fraction(saliency: np.ndarray, region, shape: tuple[int, int] = SCREEN):
    """Saliency mass inside `region` (row0, row1, col0, col1; end-exclusive, screen coordinates) over the region's
    share of the screen, for a map (S, S) or each of a batch (B, S, S): 1 means no preference for the region. For a
    batch, `region` may also be one region per map (B, 4)."""
    up = upsample(saliency, shape)
    single = up.ndim == 2
    up = up[None] if single else up
    reg = np.broadcast_to(np.asarray(region, dtype=np.int64).reshape(-1, 4), (len(up), 4))
    rows, cols = np.arange(shape[0]), np.arange(shape[1])
    in_r = (rows[None] >= reg[:, :1]) & (rows[None] < reg[:, 1:2])  # (B, H)
    in_c = (cols[None] >= reg[:, 2:3]) & (cols[None] < reg[:, 3:4])  # (B, W)
    inside = np.einsum("bhw,bh,bw->b", up, in_r.astype(up.dtype), in_c.astype(up.dtype))
    total = up.sum(axis=(1, 2))
    share = in_r.sum(1) * in_c.sum(1) / (shape[0] * shape[1])
    ok = (total > 0) & (share > 0)
    frac = np.where(ok, inside / np.where(ok, total, 1) / np.where(ok, share, 1), np.nan)
    return float(frac[0]) if single else frac
