"""A toy study in a few lines: what docs/extending.md walks through, run by test_study_contract.py through `run`,
`sweep`, `status` and `report`. Its two steps draw samples, then score them."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardlab.config import param
from rewardlab.core.runs import write_text
from rewardlab.core.study import Curve, SeedMode, Study
from rewardlab.errors import RewardLabError


@dataclass
class ToyConfig:
    """Draw n normal samples; score their spread."""

    seed: int = param(0, help="seed of the samples", min=0)
    n: int = param(100, help="samples to draw", min=1)
    scale: float = param(1.0, help="the score is scale x std; above 5 the score step fails (a test's failure)", min=0)


study = Study(
    "toy",
    ToyConfig,
    SeedMode.PER_RUN,
    paper="none (a test)",
    doc="A toy study: samples and a score.",
    curves=[Curve("sample/metrics.csv", "mean", "Toy: running mean")],
    presets=Path(__file__).parent / "toy_presets",
)


@study.step("sample", uses=["seed", "n"])
def sample(cfg: ToyConfig, run) -> dict:
    """Draw the samples (sample/x.npy)."""
    x = np.random.default_rng(cfg.seed).normal(size=cfg.n)
    np.save(run.path("sample", "x.npy"), x)
    rows = "".join(f"0,{i},mean,{float(x[: i + 1].mean())!r}\n" for i in range(0, cfg.n, 20))
    write_text(run.path("sample", "metrics.csv"), "time,step,tag,value\n" + rows)
    return {"mean": float(x.mean())}


@study.step("score", uses=["scale"], after=["sample"])
def score(cfg: ToyConfig, run) -> dict:
    """Score the samples: scale x their standard deviation."""
    x = np.load(run.root / "sample" / "x.npy")
    run.update_summary(score=float(cfg.scale * x.std()))
    if cfg.scale > 5:
        raise RewardLabError("scale above 5: the score step fails, as asked")
    return {"score": float(cfg.scale * x.std())}


@study.step("report", cached=False)
def report(cfg: ToyConfig, run) -> Path:
    """Write report.md."""
    path = run.root / "report.md"
    write_text(path, f"# toy\n\nscore {run.summary().get('score')}\n")
    return path
