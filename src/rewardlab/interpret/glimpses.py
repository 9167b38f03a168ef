"""Where a glimpse agent looked: a path figure per image and a 3x3 grid video (MP4 and GIF).

Boxes are yellow at the first glimpse, green in the middle and red at the last (or stopping) glimpse, as in the
IRRL paper's `plot_glimpses.py`; the path between glimpse centres is drawn in lime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from rewardlab.core.runs import atomic_path
from rewardlab.interpret.plots import plt, save_figure

COLORS = {"start": "yellow", "middle": "lime", "stop": "red"}


def _pixels(loc: np.ndarray, side: int) -> np.ndarray:
    """Glimpse centres in pixel coordinates (x, y) for locations in [-1, 1]^2 (the retina's rule)."""
    return np.floor(0.5 * (np.asarray(loc, dtype=np.float32) + 1.0) * side)


def _box_sizes(cfg) -> list[int]:
    from rewardlab.agents.ram import glimpse_sizes

    return glimpse_sizes(cfg)


def _draw(ax, image: np.ndarray, centres: np.ndarray, upto: int, n_total: int, cfg, title: str) -> None:
    from matplotlib.patches import Rectangle

    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.plot(centres[: upto + 1, 0], centres[: upto + 1, 1], "-", color="lime", lw=1, alpha=0.8)
    kind = "start" if upto == 0 else ("stop" if upto == n_total - 1 else "middle")
    cx, cy = centres[upto]
    for s in _box_sizes(cfg):
        ax.add_patch(Rectangle((cx - s / 2 - 0.5, cy - s / 2 - 0.5), s, s, fill=False, lw=1.5, edgecolor=COLORS[kind]))
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def case_figure(image: np.ndarray, locations: np.ndarray, cfg, label: int, pred: int, path: Path) -> Path:
    """One image with every glimpse box (start yellow, middle green, stop red) and the path through them."""
    from matplotlib.patches import Rectangle

    side = image.shape[-1]
    c = _pixels(locations, side)
    fig, ax = plt.subplots(figsize=(3.2, 3.2))
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.plot(c[:, 0], c[:, 1], "-o", color="lime", lw=1, ms=2)
    for t, (cx, cy) in enumerate(c):
        kind = "start" if t == 0 else ("stop" if t == len(c) - 1 else "middle")
        for s in _box_sizes(cfg):
            ax.add_patch(
                Rectangle(
                    (cx - s / 2 - 0.5, cy - s / 2 - 0.5),
                    s,
                    s,
                    fill=False,
                    lw=1.5 if kind != "middle" else 0.7,
                    edgecolor=COLORS[kind],
                )
            )
    ax.set_xlim(-0.5, side - 0.5)
    ax.set_ylim(side - 0.5, -0.5)
    ax.set_title(f"label {label}, predicted {pred}, {len(c)} glimpses", fontsize=8)
    ax.axis("off")
    return save_figure(fig, path, pdf=False)


def _frame(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def grid_video(
    images: np.ndarray,
    locations: np.ndarray,
    stops: np.ndarray,
    cfg,
    labels: Sequence[int],
    preds: Sequence[int],
    stem: Path,
    frame_ms: int = 500,
) -> list[Path]:
    """A 3x3 grid (fewer if fewer images), one frame per glimpse, written as `stem.mp4` and `stem.gif`."""
    import imageio.v2 as imageio

    n = len(images)
    rows = int(np.ceil(n / 3))
    side = images.shape[-1]
    centres = [_pixels(locations[i], side) for i in range(n)]
    n_frames = int(max(stops[:n]) + 1)
    frames = []
    fig, axes = plt.subplots(rows, 3, figsize=(6, 2 * rows), squeeze=False)
    for t in range(n_frames):
        for k, ax in enumerate(axes.flat):
            ax.clear()
            ax.axis("off")
            if k >= n:
                continue
            upto = min(t, int(stops[k]))
            _draw(
                ax, images[k], centres[k], upto, int(stops[k]) + 1, cfg, f"y={labels[k]} pred={preds[k]} t={upto + 1}"
            )
        fig.tight_layout()
        frames.append(_frame(fig))
    plt.close(fig)
    h, w = frames[0].shape[:2]
    frames = [f[: h - h % 2, : w - w % 2] for f in frames]  # even sizes for h264
    stem = Path(stem)
    out = []
    with atomic_path(stem.with_suffix(".gif")) as tmp:
        imageio.mimsave(tmp, frames, format="GIF", duration=frame_ms, loop=0)
    out.append(stem.with_suffix(".gif"))
    with atomic_path(stem.with_suffix(".mp4")) as tmp:
        w_ = imageio.get_writer(
            tmp, format="FFMPEG", fps=1000 / frame_ms, codec="libx264", macro_block_size=1, pixelformat="yuv420p"
        )
        for f in frames:
            w_.append_data(f)
        w_.close()
    out.append(stem.with_suffix(".mp4"))
    return out
