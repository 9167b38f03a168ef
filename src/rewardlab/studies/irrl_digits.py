"""Internally rewarded RL, digit recognition: RAM / DT-RAM on Cluttered MNIST with a classifier-made reward.

Reproduces Li et al. (ICML 2023), "Internally Rewarded Reinforcement Learning", section on digit recognition: a
glimpse policy rewarded by a jointly trained classifier's belief in the true digit (accuracy, linear or log
reward, clipped or not), reward hacking with a converged oracle as the reward, and the reward-noise analysis
delta = q_target(y|tau) - q_oracle(y|tau). Beyond the original: it runs on a CPU, loads MNIST itself, extracts
glimpses for the whole batch at once, freezes the oracle (the original let it drift: `hack.oracle_drift=true`),
offers `loss.detach_reward=true`, and loads the paper's released checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.agents.configs import LossConfig, RAMConfig, TrainConfig
from rewardlab.config import param
from rewardlab.core.runs import RunDir, resolve_device, write_text
from rewardlab.core.study import Arg, Curve, Effect, SeedMode, Study, figure
from rewardlab.errors import RewardLabError
from rewardlab.rewards.kinds import REWARD_KINDS

NAME = "irrl-digits"

# Validation accuracy (%) of RAM read off the project site's curves (docs/originals.md, IRRL reported results).
PAPER_RAM_ACCURACY = {
    "linear_clipping": {100: 47, 200: 57, 400: 76, 1500: 90},
    "log_clipping": {100: 44, 200: 53, 400: 64, 1500: 87.5},
    "accuracy": {100: 26, 200: 40, 400: 58, 1500: 85},
}
PAPER_DTRAM_ACCURACY = {"linear_clipping": {1500: 85}, "log_clipping": {1500: 76}, "accuracy": {1500: 75}}


@dataclass
class DataConfig:
    """Where the digits come from and how the cluttered canvases are drawn (docs/originals.md)."""

    digits: str = param(
        "mnist",
        help="mnist (the real MNIST), or sklearn: scikit-learn's 8x8 digits upscaled, "
        "a stand-in that only the demo uses when MNIST is absent",
        choices=("mnist", "sklearn"),
    )
    mnist_dir: str = param(
        "", help="folder with the four MNIST .gz files (default: $REWARDLAB_MNIST_DIR, the user cache, else a download)"
    )
    path: str = param("", help="an existing Cluttered MNIST .npz to use instead of generating one")
    canvas: int = param(60, help="canvas side in pixels", min=8, max=512)
    digit_size: int = param(28, help="side of the pasted digit (MNIST digits are resized if not 28)", min=4)
    clutter_size: int = param(8, help="side of each clutter crop", min=1, max=27)
    n_clutter: int = param(4, help="clutter crops per image", min=0, max=64)
    bank_size: int = param(100_000, help="clutter crops drawn once, then sampled", min=1)
    n_train: int = param(60_000, help="training images (drawn with replacement from the MNIST train set)", min=2)
    n_test: int = param(10_000, help="test images (drawn with replacement from the MNIST test set)", min=1)
    uniform_placement: bool = param(False, help="place digits uniformly; false keeps the paper's row bias")
    valid_fraction: float = param(
        0.1,
        help="fraction of the training images held out for validation (the best checkpoint is chosen on it)",
        gt=0.0,
        max=0.9,
    )
    seed: int = param(1234, help="seed of the generator (the original's)", min=0)

    def validate(self) -> None:
        if self.path:  # an existing file: its own sizes count, checked when it is read
            return
        if self.digit_size > self.canvas:
            raise RewardLabError(f"digit_size={self.digit_size} does not fit on a canvas of {self.canvas} pixels")
        if self.n_clutter > 0 and self.clutter_size >= self.canvas:
            raise RewardLabError(
                f"clutter_size={self.clutter_size} does not fit on a canvas of {self.canvas} pixels; give at most "
                f"{self.canvas - 1} (or n_clutter=0)"
            )
        if int(self.valid_fraction * self.n_train) < 1:
            raise RewardLabError(
                f"valid_fraction={self.valid_fraction} of n_train={self.n_train} images holds out no image: the "
                "validation set would be empty and no checkpoint could be chosen as the best; raise either"
            )


@dataclass
class HackConfig:
    """Reward hacking (docs/originals.md): a fresh RAM rewarded by a converged oracle on its own glimpses."""

    rewards: list[str] = param(
        default_factory=lambda: ["accuracy", "linear_clipping", "log_noclipping"],
        help="reward types to train with the oracle's reward (empty: skip the step)",
        empty_ok=True,
    )
    epochs: int = param(1500, help="training epochs per reward type (0: keep the initial model)", min=0)
    oracle_drift: bool = param(
        False,
        help="reproduce the original's bug: the oracle classifier is in the "
        "optimiser and a non-detached reward moves it",
    )


@dataclass
class IrrlDigitsConfig:
    """RAM / DT-RAM on Cluttered MNIST with an internal reward, reward hacking and reward noise."""

    seed: int = param(1, help="seed of initialisation, shuffling and location sampling (the scripts' 1)", min=0)
    device: str = param("auto", help="auto, cpu or cuda")
    data: DataConfig = param(default_factory=DataConfig, help="data")
    model: RAMConfig = param(default_factory=RAMConfig, help="agent architecture")
    loss: LossConfig = param(default_factory=LossConfig, help="reward and loss")
    train: TrainConfig = param(default_factory=TrainConfig, help="optimisation")
    oracle_ckpt: str = param(
        "",
        help="converged RAM checkpoint used as the oracle by `noise` and `hack` (ours or "
        "the paper's ram_18_4x4_linear_clipping epoch-1400 file); empty: this run's "
        "best checkpoint",
    )
    noise_ckpts: list[str] = param(
        default_factory=list,
        help="checkpoints whose reward noise `noise` measures (empty: every checkpoint this run saved)",
        empty_ok=True,
    )
    hack: HackConfig = param(default_factory=HackConfig, help="reward hacking")
    cases: int = param(9, help="test images drawn by `cases` (a 3x3 grid video uses the first 9)", min=1, max=64)

    def validate(self) -> None:
        self.model.validate()
        self.loss.validate()
        for r in self.hack.rewards:
            if r not in REWARD_KINDS:
                raise RewardLabError(f"unknown reward '{r}' in hack.rewards; choose from {', '.join(REWARD_KINDS)}")
        if self.model.model == "dtram" and self.hack.rewards and self.oracle_ckpt == "":
            pass
        if not self.data.path and self.data.canvas < self.model.patch_size:
            raise RewardLabError(
                f"model.patch_size={self.model.patch_size} is larger than the images (data.canvas={self.data.canvas})"
            )


study = Study(
    NAME,
    IrrlDigitsConfig,
    SeedMode.PER_RUN,
    paper="Li et al. (ICML 2023), Internally Rewarded Reinforcement Learning (digit recognition)",
    doc=__doc__,
    curves=[Curve("train/metrics.csv", "valid/accuracy", "Cluttered MNIST: validation accuracy")],
    ignore=("device", "train.threads"),
    torch_threads=1,
    demo_seconds=7,  # the demo preset on 2 CPU cores (python -m benchmarks demo)
)


@study.hook
def paper_numbers(summary: dict[str, Any], config: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """The paper's accuracy at 1500 epochs for this run's model and reward type (fractions, as our summary)."""
    table = PAPER_DTRAM_ACCURACY if summary.get("model") == "dtram" else PAPER_RAM_ACCURACY
    acc = table.get(str(summary.get("reward_type")), {}).get(1500)
    if acc is None:
        return {}
    note = f"paper, {summary.get('model', 'ram')} {summary.get('reward_type')} at 1500 epochs (project site's curves)"
    return {"test_accuracy": (acc / 100, note), "best_valid_accuracy": (acc / 100, note)}


# ----------------------------------------------------------------------------------------------------- data
def _digits(cfg: IrrlDigitsConfig):
    from rewardlab.data.mnist import load_mnist, sklearn_digits

    if cfg.data.digits == "sklearn":
        return sklearn_digits()
    return load_mnist(cfg.data.mnist_dir or None)


def _data_path(cfg: IrrlDigitsConfig, run: RunDir) -> Path:
    return Path(cfg.data.path) if cfg.data.path else run.root / "data" / "cluttered_mnist.npz"


@study.step(
    "data", uses=["data"], inputs=lambda cfg: {"data.path": cfg.data.path, "data.mnist_dir": cfg.data.mnist_dir}
)
def step_data(cfg: IrrlDigitsConfig, run: RunDir) -> dict[str, Any]:
    """Generate Cluttered MNIST (or check the given `data.path`) and draw a grid of examples."""
    from rewardlab.data.cluttered_mnist import (
        ClutteredSpec,
        example_grid,
        generate_cluttered,
        load_cluttered,
        save_cluttered,
    )
    from rewardlab.interpret.plots import plt, save_figure

    t0 = time.time()
    if cfg.data.path:
        data = load_cluttered(cfg.data.path)
        source = f"given file {cfg.data.path}"
    else:
        d = cfg.data
        digits = _digits(cfg)
        spec = ClutteredSpec(
            canvas=d.canvas,
            digit_size=d.digit_size,
            clutter_size=d.clutter_size,
            n_clutter=d.n_clutter,
            bank_size=d.bank_size,
            n_train=d.n_train,
            n_test=d.n_test,
            uniform_placement=d.uniform_placement,
            seed=d.seed,
        )
        data = generate_cluttered(digits, spec)
        save_cluttered(data, _data_path(cfg, run))
        source = digits.source
    if data.canvas < cfg.model.patch_size:
        raise RewardLabError(f"images of {data.canvas} pixels are smaller than a {cfg.model.patch_size}-pixel patch")
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(example_grid(data.x_train, 8), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"Cluttered MNIST: first 64 training images ({data.canvas}x{data.canvas})")
    ax.axis("off")
    save_figure(fig, run.figures / "cluttered_examples.png", pdf=False)
    tr, va = data.split(cfg.data.valid_fraction, cfg.seed)
    return {
        "source": source,
        "path": str(_data_path(cfg, run)),
        "canvas": data.canvas,
        "train": len(tr),
        "valid": len(va),
        "test": len(data.y_test),
        "seconds": time.time() - t0,
    }


def _load_data(cfg: IrrlDigitsConfig, run: RunDir):
    from rewardlab.data.cluttered_mnist import load_cluttered

    path = _data_path(cfg, run)
    if not path.exists():
        raise RewardLabError(f"no Cluttered MNIST at '{path}'; run the `data` step first")
    return load_cluttered(path)


# ---------------------------------------------------------------------------------------------------- train
def _new_model(cfg: IrrlDigitsConfig, seed: int) -> Any:
    import torch

    from rewardlab.agents.ram import RAM

    torch.manual_seed(seed)
    return RAM(RAMConfig(**asdict(cfg.model)))


def _meta(cfg: IrrlDigitsConfig, **extra: Any) -> dict[str, Any]:
    return {"reward": cfg.loss.reward, "detach_reward": cfg.loss.detach_reward, "seed": cfg.seed, **extra}


@study.step("train", uses=["seed", "model", "loss", "train"], after=["data"], reads=lambda cfg: _data_file(cfg))
def step_train(cfg: IrrlDigitsConfig, run: RunDir) -> dict[str, Any]:
    """Train the agent (validation every epoch, checkpoints, resume after an interruption)."""
    from rewardlab.agents.ram_train import train_ram

    data = _load_data(cfg, run)
    tr, va = data.split(cfg.data.valid_fraction, cfg.seed)
    device = resolve_device(cfg.device)
    t0 = time.time()
    res = train_ram(
        _new_model(cfg, cfg.seed),
        cfg.loss,
        cfg.train,
        data.x_train[tr],
        data.y_train[tr],
        data.x_train[va],
        data.y_train[va],
        run.step_dir("train"),
        seed=cfg.seed,
        device=device,
        meta=_meta(cfg),
    )
    res.pop("history")
    res.update(seconds=time.time() - t0, reward=cfg.loss.reward, model=cfg.model.model)
    _curve_figure(
        run, {f"{cfg.model.model.upper()}, {cfg.loss.reward}": run.root / "train"}, "valid_accuracy", cfg.model.model
    )
    run.update_summary(
        best_valid_accuracy=res["best_valid_accuracy"],
        epochs_run=res["epochs"],
        reward_type=cfg.loss.reward,
        model=cfg.model.model,
    )
    return res


def _curve_figure(run: RunDir, runs: dict[str, Path], key: str, model: str, name: str = "valid_accuracy") -> Path:
    from rewardlab.core.runs import read_metrics
    from rewardlab.interpret.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, folder in runs.items():
        m = read_metrics(folder / "metrics.csv").get("valid/accuracy")
        if m is not None:
            ax.plot(m[0], 100 * m[1], label=label)
    if model == "ram" and name == "valid_accuracy":
        for reward, pts in PAPER_RAM_ACCURACY.items():
            xs = [e for e in pts if e <= max(1, ax.get_xlim()[1])]
            if xs:
                ax.scatter(xs, [pts[e] for e in xs], marker="x", label=f"paper RAM, {reward}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.axhline(10, color="gray", lw=0.8, ls=":", label="chance")
    ax.legend(fontsize=7)
    ax.set_title("Validation accuracy during training")
    return save_figure(fig, run.figures / f"{name}.png")


# ----------------------------------------------------------------------------------------------------- test
def _checkpoint(run: RunDir, ckpt: str | None) -> Path:
    path = Path(ckpt) if ckpt else run.root / "train" / "best.pt"
    if not path.exists():
        raise RewardLabError(f"checkpoint '{path}' does not exist" + ("" if ckpt else "; run the `train` step first"))
    return path


_CKPT = Arg(
    "--ckpt",
    "a RAM checkpoint, ours or the paper's (default: this run's best); given, the step is a "
    "one-off that is not recorded as the run's result",
    adhoc=True,
    replaces=("train",),
    check=lambda path, cfg: _check_ram(path),
)


def _check_ram(path: str) -> None:
    from rewardlab.agents.ram import load_ram

    load_ram(path)


def _data_file(cfg: IrrlDigitsConfig) -> list[str]:
    """The run's own Cluttered MNIST file, unless data.path names the user's (an input of the `data` step)."""
    return [] if cfg.data.path else ["data/cluttered_mnist.npz"]


def _oracle_file(cfg: IrrlDigitsConfig) -> list[str]:
    return [] if cfg.oracle_ckpt else ["train/best.pt"]


@study.step(
    "test",
    uses=["seed", "train"],
    after=["data", "train"],
    args=[_CKPT],
    reads=lambda cfg: _data_file(cfg) + ["train/best.pt"],
)
def step_test(cfg: IrrlDigitsConfig, run: RunDir, ckpt: str | None = None) -> dict[str, Any]:
    """Test accuracy of a checkpoint (default: this run's best) on the test set."""
    from rewardlab.agents.ram import load_ram
    from rewardlab.agents.ram_train import evaluate

    device = resolve_device(cfg.device)
    path = _checkpoint(run, ckpt)
    model, meta = load_ram(path, map_location=device)
    data = _load_data(cfg, run)
    t0 = time.time()
    ev = evaluate(model, data.x_test, data.y_test, cfg.train.eval_batch_size, seed=cfg.seed, device=device)
    res = {
        "checkpoint": str(path),
        "test_accuracy": ev["accuracy"],
        "images": len(data.y_test),
        "mean_glimpses": ev["steps"],
        "images_per_second": len(data.y_test) / (time.time() - t0),
        "checkpoint_epoch": meta.get("epoch"),
    }
    print(f"test accuracy of {path}: {100 * ev['accuracy']:.2f}% on {len(data.y_test)} images")
    if ckpt is None:
        run.update_summary(test_accuracy=ev["accuracy"])
    return res


# ---------------------------------------------------------------------------------------------------- cases
@study.step(
    "cases",
    uses=["seed", "cases"],
    after=["data", "train"],
    args=[_CKPT],
    reads=lambda cfg: _data_file(cfg) + ["train/best.pt"],
)
def step_cases(cfg: IrrlDigitsConfig, run: RunDir, ckpt: str | None = None) -> dict[str, Any]:
    """Glimpse paths on test images: a figure per image and a 3x3 grid video (MP4 and GIF)."""
    import torch

    from rewardlab.agents.ram import load_ram
    from rewardlab.agents.ram_train import normalise
    from rewardlab.interpret.glimpses import case_figure, grid_video

    data = _load_data(cfg, run)
    model, _ = load_ram(_checkpoint(run, ckpt))
    model.eval()
    n = min(cfg.cases, len(data.y_test))
    x, y = data.x_test[:n], data.y_test[:n]
    with torch.no_grad():
        ro = model(normalise(x), generator=torch.Generator().manual_seed(cfg.seed))
    locs = ro.locations.numpy().transpose(1, 0, 2)  # (n, T, 2)
    stops = ro.t_stop.numpy()
    pred = ro.log_probs.argmax(1).numpy()
    out = run.step_dir("cases") / Path(ckpt).name.split(".")[0] if ckpt else run.step_dir("cases")
    out.mkdir(parents=True, exist_ok=True)
    figs = []
    for i in range(n):
        figs.append(
            str(case_figure(x[i], locs[i, : stops[i] + 1], model.cfg, int(y[i]), int(pred[i]), out / f"case_{i}.png"))
        )
    videos = grid_video(x[:9], locs[:9], stops[:9], model.cfg, y[:9], pred[:9], out / "cases_3x3")
    return {"figures": figs, "videos": [str(v) for v in videos], "correct": int((pred == y).sum()), "images": n}


# ---------------------------------------------------------------------------------------------------- noise
def _oracle(cfg: IrrlDigitsConfig, run: RunDir, drift: bool = False) -> tuple[Any, str]:
    from rewardlab.agents.ram import Oracle, load_ram

    path = Path(cfg.oracle_ckpt) if cfg.oracle_ckpt else run.root / "train" / "best.pt"
    if not path.exists():
        raise RewardLabError(
            f"oracle checkpoint '{path}' does not exist; set oracle_ckpt=PATH (a converged RAM, "
            "e.g. the paper's ram_18_4x4_linear_clipping epoch-1400 checkpoint) or run `train`"
        )
    model, _ = load_ram(path)
    if (model.cfg.patch_size, model.cfg.num_patches, model.cfg.glimpse_scale) != (
        cfg.model.patch_size,
        cfg.model.num_patches,
        cfg.model.glimpse_scale,
    ):
        raise RewardLabError(
            f"oracle '{path}' sees different glimpses ({model.cfg.patch_size}px x "
            f"{model.cfg.num_patches}) from this run's agent ({cfg.model.patch_size}px x "
            f"{cfg.model.num_patches})"
        )
    return Oracle(model, drift=drift), str(path)


def _ram_only(cfg: IrrlDigitsConfig) -> str | None:
    return (
        None
        if cfg.model.model == "ram"
        else "the reward-noise and reward-hacking analyses are defined for RAM (model.model=ram), as in the paper"
    )


@study.step(
    "noise",
    uses=["seed", "oracle_ckpt", "noise_ckpts", "train"],
    applies=_ram_only,
    after=lambda cfg: ["data"] + ([] if cfg.oracle_ckpt and cfg.noise_ckpts else ["train"]),
    inputs=lambda cfg: {
        "oracle_ckpt": cfg.oracle_ckpt,
        **{f"noise_ckpts[{i}]": p for i, p in enumerate(cfg.noise_ckpts)},
    },
    reads=lambda cfg: _data_file(cfg) + _oracle_file(cfg) + ([] if cfg.noise_ckpts else ["train/checkpoints/*.pt"]),
)
def step_noise(cfg: IrrlDigitsConfig, run: RunDir) -> dict[str, Any]:
    """Reward noise delta = q_target(y|tau) - q_oracle(y|tau) on the whole test set, per checkpoint, and violins."""
    from rewardlab.agents.ram import load_ram
    from rewardlab.agents.ram_train import evaluate

    data = _load_data(cfg, run)
    oracle, opath = _oracle(cfg, run)
    if cfg.noise_ckpts:
        targets = [Path(p) for p in cfg.noise_ckpts]
    else:
        targets = sorted(
            (run.root / "train" / "checkpoints").glob("epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1])
        )
    if not targets:
        raise RewardLabError("no checkpoints to analyse; run `train` first or set noise_ckpts=[PATH,...]")
    out = run.step_dir("noise")
    rows = []
    for path in targets:
        model, meta = load_ram(path)
        if model.dynamic:
            raise RewardLabError(f"'{path}' is a DT-RAM checkpoint; the noise analysis is defined for RAM")
        ev = evaluate(model, data.x_test, data.y_test, cfg.train.eval_batch_size, seed=cfg.seed, oracle=oracle)
        epoch = meta.get("epoch")
        label = f"epoch {epoch}" if epoch is not None else path.stem
        npy = out / f"noise_{epoch if epoch is not None else path.stem}.npy"
        from rewardlab.core.runs import atomic_path

        with atomic_path(npy) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, ev["delta"].astype(np.float32))
        d = ev["delta"]
        rows.append(
            {
                "checkpoint": str(path),
                "label": label,
                "epoch": epoch,
                "file": str(npy),
                "test_accuracy": ev["accuracy"],
                "mean": float(d.mean()),
                "std": float(d.std()),
                "q25": float(np.quantile(d, 0.25)),
                "q75": float(np.quantile(d, 0.75)),
            }
        )
    _violin(run, rows)
    return {"oracle": opath, "checkpoints": rows}


def _violin(run: RunDir, rows: list[dict[str, Any]]) -> Path:
    from rewardlab.interpret.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(rows) + 1), 4))
    arrays = [np.load(r["file"]) for r in rows]
    parts = ax.violinplot(arrays, showmeans=True, showextrema=False, quantiles=[[0.25, 0.75]] * len(arrays))
    for b in parts["bodies"]:
        b.set_alpha(0.6)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xticks(range(1, len(rows) + 1), [r["label"] for r in rows])
    ax.set_ylabel(r"$\tilde\delta = q_{target}(y|\tau) - q_{oracle}(y|\tau)$")
    ax.set_title("Reward noise on the test set (mean, quartiles)")
    return save_figure(fig, run.figures / "reward_noise.png")


# ----------------------------------------------------------------------------------------------------- hack
@study.step(
    "hack",
    uses=["seed", "hack", "oracle_ckpt", "model", "loss", "train"],
    applies=lambda cfg: _ram_only(cfg) or (None if cfg.hack.rewards else "hack.rewards is empty"),
    after=lambda cfg: ["data"] + ([] if cfg.oracle_ckpt else ["train"]),
    inputs=lambda cfg: {"oracle_ckpt": cfg.oracle_ckpt},
    reads=lambda cfg: _data_file(cfg) + _oracle_file(cfg),
)
def step_hack(cfg: IrrlDigitsConfig, run: RunDir) -> dict[str, Any]:
    """Train a fresh RAM per reward type with the (frozen) oracle's reward on the agent's own glimpses."""
    from rewardlab.agents.ram_train import train_ram

    data = _load_data(cfg, run)
    tr, va = data.split(cfg.data.valid_fraction, cfg.seed)
    device = resolve_device(cfg.device)
    results, folders = {}, {}
    for reward in cfg.hack.rewards:
        oracle, opath = _oracle(cfg, run, drift=cfg.hack.oracle_drift)
        loss = LossConfig(**{**asdict(cfg.loss), "reward": reward})
        tcfg = TrainConfig(**{**asdict(cfg.train), "epochs": cfg.hack.epochs})
        folder = run.step_dir("hack") / reward
        r = train_ram(
            _new_model(cfg, cfg.seed),
            loss,
            tcfg,
            data.x_train[tr],
            data.y_train[tr],
            data.x_train[va],
            data.y_train[va],
            folder,
            seed=cfg.seed,
            oracle=oracle,
            device=device,
            meta=_meta(cfg, oracle=opath, hacked_reward=reward),
        )
        r.pop("history")
        results[reward] = r
        folders[f"oracle reward: {reward}"] = folder
    if (run.root / "train" / "metrics.csv").exists():
        folders[f"own reward: {cfg.loss.reward}"] = run.root / "train"
    if results:
        _curve_figure(run, folders, "valid_accuracy", "hack", name="reward_hacking")
    return {
        "oracle": cfg.oracle_ckpt or "this run's best checkpoint",
        "oracle_drift": cfg.hack.oracle_drift,
        "runs": results,
    }


# --------------------------------------------------------------------------------------------------- report
@study.step("report", cached=False)
def step_report(cfg: IrrlDigitsConfig, run: RunDir) -> Path:
    """Write `report.md` with the run's numbers and figures."""
    lines = [f"# {NAME}", "", __doc__.strip().splitlines()[0], ""]
    data = run.step_result("data") or {}
    if data:
        lines += [
            f"Data: {data['source']}; {data['train']} train / {data['valid']} validation / {data['test']} test "
            f"images of {data['canvas']}x{data['canvas']}.",
            "",
        ]
        if "scikit-learn" in str(data["source"]):
            lines += [
                "**MNIST was not available: this run used scikit-learn's bundled 8x8 digits, upscaled, as a "
                "stand-in. Its numbers are not comparable with the paper's.**",
                "",
            ]
    tr, te = run.step_result("train"), run.step_result("test")
    if tr:
        lines += [
            f"Training: {tr['model']}, reward {tr['reward']}, {tr['epochs']} epochs, best validation accuracy "
            f"{100 * (tr['best_valid_accuracy'] or 0):.2f}% ({tr['seconds']:.0f} s).",
            "",
        ]
    if te:
        lines += [
            f"Test accuracy of the best checkpoint: {100 * te['test_accuracy']:.2f}% on {te['images']} images.",
            "",
        ]
    noise = run.step_result("noise")
    if noise:
        lines += [
            "## Reward noise",
            "",
            f"Oracle: {noise['oracle']}",
            "",
            "| checkpoint | test acc | mean delta | std | IQR |",
            "|---|---|---|---|---|",
        ]
        for r in noise["checkpoints"]:
            lines.append(
                f"| {r['label']} | {100 * r['test_accuracy']:.1f}% | {r['mean']:+.3f} | {r['std']:.3f} | "
                f"[{r['q25']:+.3f}, {r['q75']:+.3f}] |"
            )
        lines.append("")
    hack = run.step_result("hack")
    if hack and hack["runs"]:
        lines += [
            "## Reward hacking",
            "",
            f"Oracle: {hack['oracle']} (drift: {hack['oracle_drift']})",
            "",
            "| reward from the oracle | epochs | best validation accuracy |",
            "|---|---|---|",
        ]
        for k, r in hack["runs"].items():
            lines.append(f"| {k} | {r['epochs']} | {100 * (r['best_valid_accuracy'] or 0):.2f}% |")
        lines.append("")
    for p in sorted(run.figures.glob("*.png")):
        lines += [f"![{p.stem}](figures/{p.name})", ""]
    cases = run.step_result("cases")
    if cases:
        lines += ["Cases: " + ", ".join(f"[{Path(v).name}](cases/{Path(v).name})" for v in cases["videos"]), ""]
    path = run.root / "report.md"
    write_text(path, "\n".join(lines))
    return path


@study.hook
def demo_overrides() -> list[str]:
    """What `rewardlab demo` changes: scikit-learn's digits when the real MNIST is not on this machine."""
    from rewardlab.data.mnist import mnist_available

    return [] if mnist_available() else ["data.digits=sklearn"]


@study.hook
def effect(summary: dict[str, Any], config: dict[str, Any]) -> Effect:
    """RAM learns to classify cluttered digits from glimpses, trained by its own classifier's reward."""
    acc = figure(summary, "test_accuracy")
    reward = summary.get("reward_type", (config.get("loss") or {}).get("reward", "linear_clipping"))
    data = config.get("data") or {}
    where = f"{data['canvas']}x{data['canvas']} canvas, {data['n_clutter']} clutter; " if "canvas" in data else ""
    return Effect(
        "RAM learns to classify digits from glimpses with an internal (classifier-made) reward",
        "not measured" if acc is None else f"test accuracy {acc:.1%} ({reward}; {where}chance 10%)",
        None if acc is None else acc >= 0.6,
        "0.90 (Li et al. 2023, clipped linear, 60x60 canvas, 4 clutter, 1,400 epochs of 60k images)",
        "figures/valid_accuracy.png climbs far above chance; the paper's comparison of rewards (clipped linear "
        "above clipped log) needs hundreds of epochs and is not shown at this budget.",
    )
