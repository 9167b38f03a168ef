"""Gridworld supercell heatmaps (Jenner & Gleave 2022): per cell a centre circle for `stay` and four
triangles for the moves, coloured by r(s, a, s'); invalid moves are left blank."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.patches import Circle, Polygon

from rewardlab.envs.tabular_maze import MazeSpec
from rewardlab.interpret.plots import plt, save_figure

# Triangle corners (dx, dy) from the cell centre, in plot coordinates (y grows downwards, like rows).
_TRI = {
    1: [(-0.5, -0.5), (0.5, -0.5)],
    2: [(0.5, -0.5), (0.5, 0.5)],
    3: [(-0.5, 0.5), (0.5, 0.5)],
    4: [(-0.5, -0.5), (-0.5, 0.5)],
}


def action_rewards(spec: MazeSpec, r: np.ndarray) -> np.ndarray:
    """(n_states, 5) rewards for every (state, action) from rewards `r` over `spec.all_transitions()`,
    with NaN for moves off the grid."""
    out = np.asarray(r, dtype=float).reshape(spec.n_states, 5).copy()
    out[~spec.valid_action] = np.nan
    return out


def draw_supercells(
    ax, spec: MazeSpec, values: np.ndarray, vmin: float = -1.2, vmax: float = 1.2, cmap: str = "RdBu"
) -> None:
    """Draw (n_states, 5) values as supercells; key mazes show the no-key and has-key halves side by side."""
    patches, colours = [], []
    blocks = 2 if spec.key else 1
    for s in range(spec.n_states):
        b, cell = divmod(s, spec.n_cells)
        row, col = divmod(cell, spec.size)
        cx, cy = col + b * (spec.size + 1) + 0.5, row + 0.5
        for a in range(1, 5):
            if np.isfinite(values[s, a]):
                (x1, y1), (x2, y2) = _TRI[a]
                patches.append(Polygon([(cx, cy), (cx + x1, cy + y1), (cx + x2, cy + y2)], closed=True))
                colours.append(values[s, a])
        if np.isfinite(values[s, 0]):
            patches.append(Circle((cx, cy), 0.18))
            colours.append(values[s, 0])
    pc = PatchCollection(patches, cmap=cmap, edgecolor="0.6", linewidth=0.2)
    pc.set_array(np.asarray(colours))
    pc.set_clim(vmin, vmax)
    ax.add_collection(pc)
    width = blocks * spec.size + (blocks - 1)
    ax.set_xlim(0, width)
    ax.set_ylim(spec.size, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    g = spec.goal_cell
    for b in range(blocks):
        ax.add_patch(
            plt.Rectangle(
                (g % spec.size + b * (spec.size + 1), g // spec.size), 1, 1, fill=False, edgecolor="gold", linewidth=1.5
            )
        )
    return pc


def heatmap_grid(
    spec: MazeSpec,
    rows: Sequence[str],
    cols: Sequence[str],
    values: dict[tuple[str, str], np.ndarray],
    path: Path,
    title: str,
    center: Sequence[str] = (),
    vlim: float = 1.2,
) -> Path:
    """A rows x cols grid of supercell heatmaps (rows: shapings, cols: objectives); columns in `center` are
    mean-centred. Fixed colour range [-vlim, vlim]."""
    aspect = (2 * spec.size + 1) / spec.size if spec.key else 1.0
    fig, axes = plt.subplots(
        len(rows),
        len(cols),
        figsize=(2.2 * len(cols) * aspect + 1.2, 2.2 * len(rows) + 0.5),
        squeeze=False,
        layout="constrained",
    )
    pc = None
    for i, rname in enumerate(rows):
        for j, cname in enumerate(cols):
            v = values[(rname, cname)].copy()
            if cname in center:
                v = v - np.nanmean(v)
            pc = draw_supercells(axes[i, j], spec, v, -vlim, vlim)
            if i == 0:
                axes[i, j].set_title(cname + (" (centred)" if cname in center else ""), fontsize=9)
            if j == 0:
                axes[i, j].set_ylabel(rname, fontsize=9)
    fig.colorbar(pc, ax=axes, shrink=0.6, label="r(s, a, s')")
    fig.suptitle(title + ("  (left: without key, right: with key)" if spec.key else ""), fontsize=10)
    return save_figure(fig, path)
