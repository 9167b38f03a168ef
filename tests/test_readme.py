"""Every `rewardlab` command of the README works as written. The short ones run (with tiny settings added); the long
ones (paper presets, whole fast presets, the demo, seed sweeps) are checked with `--dry-run`, which parses them,
resolves their config, checks their input files and exits 0 without writing anything. `MODES` lists which is which;
a README command missing from it fails the test, so a new command gets a mode."""

import os
import re
import shlex
import tarfile
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
TINY = ["reward=[linear_clipping]", "iterations=2000", "eval_every=1000"]  # irrl-skills in seconds
CKPT = "ram_18_4x4_linear_clipping_epoch1400.pth.tar"

MODES = {
    "rewardlab demo": "dry",
    "rewardlab demo --list": "run",
    "rewardlab <study> run --preset fast|paper --out DIR [key=value ...]": "run",
    "rewardlab <study> <step> --out DIR [key=value ...]": "run",
    "rewardlab <study> status --out DIR": "run",
    "rewardlab <study> print-config --preset paper": "run",
    "rewardlab <study> run --dry-run --preset paper --out DIR": "run",
    "rewardlab sweep irrl-skills --preset fast --seeds 0-9 learner.lr=0.004,0.01 --out runs/sweeps/lr": "run",
    "rewardlab sweep ptgm --preset fast --seeds 0-4 rl.target_divergence=2,5 --backend ray [--address auto] --out "
    "runs/sweeps/kl": "dry",
    "rewardlab learned-rewards run --preset fast --out runs/lr5 seeds=0-4": "dry",
    "rewardlab report runs/sweeps/lr": "run",
    "rewardlab learned-rewards run --preset paper --out runs/learned_rewards/paper": "dry",
    "rewardlab preprocessing run --preset paper --out runs/preprocessing/paper": "dry",
    "rewardlab irrl-digits run --preset paper --out runs/irrl/ram_linear": "dry",
    "rewardlab irrl-digits run --out runs/irrl/ram_log --preset paper loss.reward=log_clipping": "dry",
    f"rewardlab irrl-digits test --out runs/irrl/ram_linear --ckpt {CKPT}": "dry",
    "rewardlab irrl-skills run --preset fast --out runs/irrl_skills/fast": "dry",
    "rewardlab irrl-skills run --preset paper --out runs/irrl_skills/paper reward=linear_clipping seeds=1,2,3": "dry",
    "rewardlab ptgm run --preset fast --out runs/ptgm/fast": "dry",
    "rewardlab ptgm run --preset paper --out runs/ptgm/paper": "dry",
    "rewardlab ptgm run --preset paper --out runs/ptgm/300k rl.env_steps=300000 rl.critic_layers=2": "dry",
    "rewardlab atari run --preset fast --out runs/atari/fast": "dry",
    "rewardlab atari run --preset paper --out runs/atari/paper": "dry",
    "rewardlab coinrun run --preset fast --out runs/coinrun/fast": "dry",
    "rewardlab coinrun run --preset paper --out runs/coinrun/paper": "dry",
    "rewardlab compare true:goal true:goal-dense true:path --env rewardlab/EmptyMaze10-v0 "
    "--out runs/compare/maze.json": "run",
    "rewardlab compare true:unshaped true:dense --env rewardlab/ShapedMountainCar-unshaped-v0 --method dard": "run",
    "rewardlab preprocess true:path-random --env rewardlab/KeyMaze10-v0 --objective smooth_l1 "
    "--out runs/compare/key.pt": "run",
    "rewardlab compare runs/compare/key.pt true:path --env rewardlab/KeyMaze10-v0": "run",
    # runs on the learned-rewards run made before the safe format in tests/data/legacy_runs.tar.xz
    "rewardlab learned-rewards dataset --redo --trust-pickle --out runs/old-run": "run",
}


def readme_commands() -> list[str]:
    """The `rewardlab ...` lines of the README's bash blocks, comments removed, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    return [line.split("  #")[0].strip() for b in blocks for line in b.splitlines() if line.startswith("rewardlab ")]


def as_args(command: str) -> list[str]:
    """The command's arguments, its placeholders filled in: irrl-skills for <study>, train for <step>, fast for
    fast|paper; optional parts in brackets left out."""
    command = re.sub(r"\s*\[[^\]]*\]", "", command)
    command = command.replace("<study>", "irrl-skills").replace("<step>", "train").replace("fast|paper", "fast")
    return shlex.split(command)[1:]


def test_every_readme_command_works_as_written(tmp_path, monkeypatch, cli):
    commands = readme_commands()
    assert set(commands) == set(MODES), set(commands) ^ set(MODES)
    if os.environ.get("REWARDLAB_IRRL_CKPT_DIR"):  # resolved before the chdir: .ci/run gives a relative path
        os.symlink(Path(os.environ["REWARDLAB_IRRL_CKPT_DIR"]).resolve() / CKPT, tmp_path / CKPT)
    else:
        (tmp_path / CKPT).write_bytes(b"a stand-in: a dry run only checks that the file is there and readable")
    for var in ("REWARDLAB_MNIST_DIR", "REWARDLAB_IRRL_CKPT_DIR"):  # relative paths in CI: keep them valid
        if os.environ.get(var):
            monkeypatch.setenv(var, str(Path(os.environ[var]).resolve()))
    monkeypatch.chdir(tmp_path)
    with tarfile.open(Path(__file__).parent / "data" / "legacy_runs.tar.xz") as tar:
        tar.extractall(tmp_path / "legacy", filter="data")
    (tmp_path / "runs").mkdir()
    (tmp_path / "legacy" / "learned-rewards").rename(tmp_path / "runs" / "old-run")
    seen = {"run": 0, "dry": 0}
    for command in commands:
        args = as_args(command)
        if MODES[command] == "dry":
            args.append("--dry-run")
        elif args[0] in ("irrl-skills", "sweep") and any(a in args for a in ("run", "train", "sweep")):
            args += TINY
            if args[0] == "sweep":
                args[args.index("--seeds") + 1] = "0-1"  # 2 settings x 2 seeds instead of 2 x 10
        if "DIR" in args:  # the run the other template commands work in; the dry-run template checks a new one
            args[args.index("DIR")] = str(tmp_path / "runs" / ("new" if "--dry-run" in args else "skills"))
        code, out, err = cli(*args)
        assert code == 0, (command, err)
        seen[MODES[command]] += 1
    assert seen == {"run": sum(m == "run" for m in MODES.values()), "dry": sum(m == "dry" for m in MODES.values())}
    assert (tmp_path / "runs" / "sweeps" / "lr" / "report.html").is_file()
    assert (tmp_path / "runs" / "skills" / "run.json").is_file() and not (tmp_path / "runs" / "new").exists()
    dry_outs = [as_args(c)[as_args(c).index("--out") + 1] for c, m in MODES.items() if m == "dry" and "--out" in c]
    assert not any((tmp_path / d).exists() for d in dry_outs)  # the dry runs wrote nothing
    assert (tmp_path / "runs" / "old-run" / "expert" / "model.pt").is_file()  # its SB3 zip, converted once


@pytest.mark.parametrize("command", sorted(MODES))
def test_modes_name_real_readme_commands(command):
    assert command in readme_commands()
