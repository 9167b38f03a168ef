import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def cli(capsys):
    """Call `rewardlab ARGS...` in this process: (exit code, stdout, stderr)."""
    from rewardlab.cli import main

    def call(*args):
        code = main(list(map(str, args)))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory) -> Path:
    """The learned-rewards `fast` preset, run once end to end through the CLI (about 1.5 minutes)."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("lr") / "fast"
    assert main(["learned-rewards", "run", "--preset", "fast", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(fast_run, tmp_path) -> Path:
    """A private copy of the fast run that a test may damage."""
    dst = tmp_path / "run"
    shutil.copytree(fast_run, dst)
    return dst


@pytest.fixture(scope="session")
def preprocessing_run(tmp_path_factory) -> Path:
    """The preprocessing `fast` preset, run once end to end through the CLI."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("pp") / "fast"
    assert main(["preprocessing", "run", "--preset", "fast", "--out", str(out)]) == 0
    return out


# The fast preset's 60x60 canvases stay near chance for hundreds of epochs, so its 12 are not worth their time in the
# suite: 6 epochs (checkpoints 0, 2, 4, 6) exercise every step the same way. The demo's settings that do learn are
# tested in test_demo.py.
DIGITS_SHORT = ["train.epochs=6", "train.checkpoint_every=2", "hack.epochs=2"]


@pytest.fixture(scope="session")
def irrl_digits_run(tmp_path_factory) -> Path:
    """The irrl-digits `fast` preset with half its epochs, run once end to end through the CLI (about a minute)."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("irrl") / "fast"
    assert main(["irrl-digits", "run", "--preset", "fast", "--out", str(out), *DIGITS_SHORT]) == 0
    return out


@pytest.fixture(scope="session")
def irrl_skills_run(tmp_path_factory) -> Path:
    """The irrl-skills `fast` preset, run once end to end through the CLI (about 75 seconds)."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("skills") / "fast"
    assert main(["irrl-skills", "run", "--preset", "fast", "--out", str(out)]) == 0
    return out


# A few minutes of the ptgm fast preset would not fit CI beside the other studies: this is its pipeline at toy size
# (every step, every method, 2 seeds). The demo test reuses the run through the ptgm study's `demo_overrides` hook.
PTGM_TINY = [
    "data.episodes=150",
    "codebook.n_codes=12",
    "pretrain.steps=400",
    "pretrain.log_every=200",
    "rl.env_steps=3000",
    "rl.warmup=200",
    "rl.eval_every=1500",
    "rl.eval_episodes=4",
    "rl.batch=64",
    "flat.learning_starts=500",
    "flat.batch=64",
    "seeds=[0,1]",
]


@pytest.fixture(scope="session")
def ptgm_run(tmp_path_factory) -> Path:
    """The ptgm pipeline end to end through the CLI at toy size (about a minute)."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("ptgm") / "tiny"
    assert main(["ptgm", "run", "--preset", "fast", "--out", str(out), *PTGM_TINY]) == 0
    return out


# The atari study at toy size (every step, every figure, about a minute): a barely trained expert still scores
# often enough for a 40 / 40 dataset.
ATARI_TINY = [
    "expert.ppo.total_timesteps=2048",
    "expert.ppo.checkpoint_every=1024",
    "expert.eval_games=4",
    "expert.eval_step_cap=1000",
    "expert.video_steps=30",
    "dataset.n_train=40",
    "dataset.n_test=40",
    "dataset.zero_keep=0.2",
    "dataset.screens=3",
    "reward_model.epochs=30",
    "interpret.frames=4",
    "interpret.measure_frames=12",
    "interpret.timeseries_steps=40",
    "interpret.timeseries_skip=10",
    "retrain.ppo.total_timesteps=1024",
    "retrain.eval_games=2",
    "retrain.eval_step_cap=1000",
]


@pytest.fixture(scope="session")
def atari_run(tmp_path_factory) -> Path:
    """The atari study end to end through the CLI at toy size."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("atari") / "tiny"
    assert main(["atari", "run", "--preset", "fast", "--out", str(out), *ATARI_TINY]) == 0
    return out


# irrl-skills at toy size (a few seconds a run): the sweep and report tests' real runs.
SWEEP_TINY = ["reward=[linear_clipping]", "iterations=4000", "eval_every=1000"]


SWEEP_GRID = "learner.lr=0.004,0.01"


def damage_sweep(out: Path) -> None:
    """Damage the runs of one setting of a sweep by hand before it starts (their config.yaml is not YAML): they fail
    when they run, the others finish."""
    for s in (0, 1):
        d = out / "learner.lr=0.01" / f"seed{s}"
        d.mkdir(parents=True)
        (d / "config.yaml").write_text("{seeds: [0")


@pytest.fixture(scope="session")
def sweep_run(tmp_path_factory) -> Path:
    """A local sweep of 2 settings x 2 seeds, the runs of one setting damaged (they fail, the others finish)."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("sweep") / "local"
    damage_sweep(out)
    rc = main(["sweep", "irrl-skills", *SWEEP_TINY, SWEEP_GRID, "--seeds", "0-1", "--out", str(out)])
    assert rc == 1  # some runs failed: exit code 1, after every other run finished
    return out


COINRUN_TINY = [
    "expert.ppo.total_timesteps=1024",
    "expert.ppo.n_envs=8",
    "expert.ppo.n_steps=64",
    "expert.ppo.batch_size=256",
    "expert.ppo.checkpoint_every=512",
    "expert.eval_episodes=8",
    "expert.video_steps=20",
    "rollouts.n_train=500",
    "rollouts.n_test=200",
    "rollouts.n_unseen=200",
    "rollouts.n_envs=8",
    "reward_model.hid_channels=[8,16]",
    "reward_model.epochs=2",
    "interpret.channels=4",
    "interpret.featvis_steps=8",
    "interpret.examples=3",
    "interpret.nmf_factors=2",
    "interpret.frames=200",
    "interpret.saliency_frames=2",
    "interpret.measure_frames=8",
    "preprocess.n_transitions=300",
    "preprocess.hid_channels=[4]",
    "preprocess.curve_episodes=1",
]


def require_procgen() -> None:
    """Skip when envpool's Procgen cannot load (no Qt5 runtime), unless CI requires the extras
    (REWARDLAB_REQUIRE_EXTRAS=1: .ci/run installs libqt5gui5), where the test then fails."""
    import os

    from rewardlab.envs.coinrun import check_procgen
    from rewardlab.errors import RewardLabError

    try:
        check_procgen()
    except RewardLabError as e:
        if os.environ.get("REWARDLAB_REQUIRE_EXTRAS") == "1":
            raise
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def coinrun_run(tmp_path_factory) -> Path:
    """The coinrun study end to end through the CLI at toy size."""
    from rewardlab.cli import main

    require_procgen()

    out = tmp_path_factory.mktemp("coinrun") / "tiny"
    assert main(["coinrun", "run", "--preset", "fast", "--out", str(out), *COINRUN_TINY]) == 0
    return out
