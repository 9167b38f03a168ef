"""No file rewardlab reads runs code: SB3 zips and pickles in a run directory are refused with one line naming
--trust-pickle (each crafted file below would create a marker file if it were unpickled), and a pickle disguised as
a checkpoint is refused by `weights_only`."""

import base64
import json
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch

from rewardlab.errors import RewardLabError


class _Payload:
    """Unpickling this opens (creates) the marker file: a stand-in for any code a file could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pickle(marker) -> bytes:
    return pickle.dumps(_Payload(marker))


def write_evil_sb3_zip(path, marker) -> None:
    """An SB3 zip whose `data` holds a serialized (cloudpickled) object, as SB3's own zips do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "policy_class": {":type:": "<class 'type'>", ":serialized:": base64.b64encode(evil_pickle(marker)).decode()}
    }
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data", json.dumps(data))
        z.writestr("_stable_baselines3_version", "2.9.2")


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_crafted_files_do_run_code_when_unpickled(tmp_path):
    """The test files are real attacks: SB3's and pickle's own loaders run them (so the tests below can fail)."""
    from stable_baselines3 import PPO

    write_evil_sb3_zip(tmp_path / "m.zip", tmp_path / "a")
    try:
        PPO.load(tmp_path / "m.zip")
    except Exception:
        pass
    assert (tmp_path / "a").exists()
    pickle.loads(evil_pickle(tmp_path / "b"))
    assert (tmp_path / "b").exists()


def test_expert_zip_in_a_run_is_not_loaded(cli, run_copy, tmp_path):
    marker = tmp_path / "marker"
    (run_copy / "expert" / "model.pt").unlink()
    write_evil_sb3_zip(run_copy / "expert" / "model.zip", marker)
    before = (run_copy / "dataset" / "transitions.h5").read_bytes()
    code, _, err = cli("learned-rewards", "dataset", "--redo", "--out", run_copy)
    assert code == 2 and one_line(err), err
    assert "Stable-Baselines3 zip" in err and "--trust-pickle" in err
    assert not marker.exists()
    assert (run_copy / "dataset" / "transitions.h5").read_bytes() == before  # the redo put the old result back
    code, _, err = cli("learned-rewards", "interpret", "--redo", "--out", run_copy)
    assert code == 2 and one_line(err) and "--trust-pickle" in err and not marker.exists()


def test_a_pickle_named_like_a_checkpoint_is_refused_by_weights_only(cli, run_copy, tmp_path):
    marker = tmp_path / "marker"
    torch.save({"policy": _Payload(marker)}, run_copy / "expert" / "model.pt")
    code, _, err = cli("learned-rewards", "dataset", "--redo", "--out", run_copy)
    assert code == 2 and one_line(err), err
    assert "expert/model.pt" in err and "weights_only" not in err
    assert not marker.exists()


def test_ppo_resume_from_a_zip_checkpoint_is_refused(tmp_path):
    from rewardlab.agents.ppo import PPOConfig, train_ppo
    from rewardlab.envs.maze import BatchedMaze
    from rewardlab.envs.vec import BatchedVecEnv

    marker = tmp_path / "marker"
    write_evil_sb3_zip(tmp_path / "expert" / "checkpoints" / "last.zip", marker)
    cfg = PPOConfig(total_timesteps=256, n_envs=2, n_steps=64, batch_size=64)
    with pytest.raises(RewardLabError, match="--trust-pickle") as e:
        train_ppo(cfg, BatchedVecEnv(BatchedMaze(2, seeds=0)), tmp_path / "expert", seed=0)
    assert "\n" not in str(e.value) and not marker.exists()


@pytest.fixture
def ptgm_copy(ptgm_run, tmp_path):
    dst = tmp_path / "ptgm"
    shutil.copytree(ptgm_run, dst)
    return dst


def test_flat_sac_zip_is_not_loaded_by_diagnose(cli, ptgm_copy, tmp_path):
    marker = tmp_path / "marker"
    run = ptgm_copy / "rl" / "flat_sac" / "seed0"
    assert (run / "flat_sac.pt").is_file() and (run / "replay.npz").is_file() and not list(run.glob("*.zip"))
    (run / "flat_sac.pt").unlink()
    write_evil_sb3_zip(run / "flat_sac.zip", marker)
    code, _, err = cli("ptgm", "diagnose", "--redo", "--out", ptgm_copy)
    assert code == 2 and one_line(err) and "--trust-pickle" in err, err
    assert not marker.exists()


def test_pickled_replay_buffer_is_not_loaded_on_resume(ptgm_copy, tmp_path):
    from rewardlab.agents.configs import FlatSACConfig
    from rewardlab.agents.flat_sac import train_flat_sac
    from rewardlab.envs.mini_kitchen import KitchenSpec

    marker = tmp_path / "marker"
    run = ptgm_copy / "rl" / "flat_sac" / "seed0"
    (run / "replay.npz").unlink()
    (run / "replay.pkl").write_bytes(evil_pickle(marker))
    cfg = FlatSACConfig(learning_starts=500, batch=64)
    with pytest.raises(RewardLabError, match="--trust-pickle") as e:
        train_flat_sac(cfg, KitchenSpec(), 6000, run, 0, 1500, 4)
    assert "\n" not in str(e.value) and not marker.exists()


def test_flat_sac_saved_and_loaded_equals_original(ptgm_copy):
    """The safe files of a flat SAC run rebuild it exactly: policy, optimisers, entropy coefficient, replay."""
    from stable_baselines3.common.buffers import ReplayBuffer

    from rewardlab.agents.configs import FlatSACConfig
    from rewardlab.agents.flat_sac import load_flat_sac
    from rewardlab.agents.sb3 import load_replay, save_replay, save_sb3

    run = ptgm_copy / "rl" / "flat_sac" / "seed0"
    cfg = FlatSACConfig(learning_starts=500, batch=64)
    model = load_flat_sac(run / "flat_sac.pt")
    assert model.num_timesteps >= 3000
    save_sb3(run / "again.pt", model, cfg)
    back = load_flat_sac(run / "again.pt")
    for (k, a), b in zip(model.get_parameters().items(), back.get_parameters().values()):
        if k == "policy":
            assert all(torch.equal(a[n], b[n]) for n in a), k
    assert torch.equal(model.log_ent_coef, back.log_ent_coef)
    buf = ReplayBuffer(cfg.buffer, model.observation_space, model.action_space, n_envs=cfg.n_envs)
    load_replay(run / "replay.npz", buf)
    assert buf.pos > 0 and not buf.full
    save_replay(run / "again.npz", buf)
    buf2 = ReplayBuffer(cfg.buffer, model.observation_space, model.action_space, n_envs=cfg.n_envs)
    load_replay(run / "again.npz", buf2)
    assert buf2.pos == buf.pos and np.array_equal(buf2.observations, buf.observations)
