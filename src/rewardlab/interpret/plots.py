"""Figure helpers shared by every study: Agg backend, atomic PNG (+PDF) saving, mean-and-spread curves."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rewardlab.core.runs import atomic_path  # noqa: E402


def save_figure(fig: "plt.Figure", path: Path, pdf: bool = True) -> Path:
    """Save `fig` as PNG (and PDF beside it), atomically, and close it. Returns the PNG path."""
    path = Path(path).with_suffix(".png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    if pdf:
        with atomic_path(path.with_suffix(".pdf")) as tmp:
            fig.savefig(tmp, bbox_inches="tight", format="pdf")
    plt.close(fig)
    return path


def mean_spread(
    ax: "plt.Axes",
    steps: np.ndarray,
    runs: Sequence[np.ndarray],
    label: str,
    color: str | None = None,
    spread: str = "std",
) -> None:
    """Plot the mean over runs (rows) with a shaded band: +-1 std ("std"), min-max ("minmax"), the 95% confidence
    interval of the mean, Student t ("ci95"), or its 95% bootstrap interval ("bootstrap", `rewardlab.stats`)."""
    y = np.asarray(runs, dtype=float)
    m = y.mean(axis=0)
    if spread == "bootstrap":
        from rewardlab.stats import curve_band

        m, lo, hi = curve_band(y)
    elif spread == "ci95":
        from scipy.stats import t as student_t

        n = len(y)
        half = student_t.ppf(0.975, n - 1) * y.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(m)
        lo, hi = m - half, m + half
    elif spread == "std":
        lo, hi = m - y.std(axis=0), m + y.std(axis=0)
    else:
        lo, hi = y.min(axis=0), y.max(axis=0)
    (line,) = ax.plot(steps, m, label=f"{label} (n={len(y)})", color=color)
    ax.fill_between(steps, lo, hi, alpha=0.2, color=line.get_color())


def profile_plot(
    ax: "plt.Axes",
    taus: np.ndarray,
    profile: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    label: str,
    color: str | None = None,
) -> None:
    """A performance profile (fraction of runs above each threshold) with its interval band."""
    (line,) = ax.plot(taus, profile, label=label, color=color)
    ax.fill_between(taus, low, high, alpha=0.2, color=line.get_color())
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("fraction of runs with score > tau")


def save_video(frames: Sequence[np.ndarray], path: Path, fps: float = 30, scale: int = 1) -> Path:
    """Write RGB frames (H, W, 3) uint8 as an H.264 MP4, atomically, each pixel repeated `scale` times per side (and
    cropped to even sizes, as H.264 needs). Returns the path."""
    import imageio.v2 as imageio

    path = Path(path)
    with atomic_path(path, suffix=".mp4") as tmp:
        w = imageio.get_writer(
            tmp, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p"
        )
        for f in frames:
            f = np.repeat(np.repeat(np.asarray(f, dtype=np.uint8), scale, axis=0), scale, axis=1)
            w.append_data(f[: f.shape[0] - f.shape[0] % 2, : f.shape[1] - f.shape[1] % 2])
        w.close()
    return path
