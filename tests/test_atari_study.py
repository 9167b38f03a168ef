"""The atari study end to end at toy size (every step, every figure), its datasets and models, and bad inputs."""

import json
import shutil

import numpy as np
import pytest
import torch

from rewardlab.studies import STUDIES

pytestmark = pytest.mark.slow


def test_every_step_ran_and_wrote_what_it_promises(atari_run):
    s = json.loads((atari_run / "summary.json").read_text())
    assert set(s["expert_score"]) == {"Breakout"}
    assert s["reward_model_test_mse"]["Breakout"] >= 0
    assert s["score_region_saliency"]["Breakout"]["with_score_model"] is not None
    assert set(s["retrain_true_score"]["Breakout"]) == {"learned", "true"}
    figs = {p.name for p in (atari_run / "figures").iterdir()}
    assert {"saliency_Breakout.png", "noscore_timeseries_Breakout.png", "expert_Breakout.mp4"} <= figs
    report = (atari_run / "report.md").read_text()
    assert "| Breakout |" in report and "saliency_Breakout.png" in report
    assert not list(atari_run.rglob("*.zip")) and not list(atari_run.rglob("*.pkl"))  # no pickles written


def test_dataset_is_class_balanced_uint8_with_its_metadata(atari_run):
    from rewardlab.data.frames import read_display, read_frames, read_frames_meta

    for variant in ("plain", "noscore"):
        path = atari_run / "dataset" / "Breakout" / f"{variant}.h5"
        meta = read_frames_meta(path)
        assert meta["game"] == "Breakout" and meta["variant"] == variant and meta["engine"] == "envpool"
        for split in ("train", "test"):
            fr = read_frames(path, split)
            assert fr.next_obs.dtype == np.uint8 and fr.next_obs.shape[1:] == (4, 84, 84)
            assert fr.rewarding.sum() == len(fr) // 2  # half rewarding, as the original
            assert np.all(fr.rewards[fr.rewarding] == 1.0)  # Breakout's clipped rewards
            # s' continues s: the last three frames of s are the first three of s' (unless the episode ended)
            alive = ~fr.dones
            assert np.array_equal(fr.obs[alive, 1:], fr.next_obs[alive, :3])
    screens, index = read_display(atari_run / "dataset" / "Breakout" / "plain.h5")
    assert screens.shape[1:] == (210, 160, 3) and len(index) == len(screens) > 0


def test_saved_reward_model_loads_to_the_same_outputs(atari_run):
    from rewardlab.core.modules import load_module
    from rewardlab.data.frames import read_frames
    from rewardlab.rewards.nets import AtariRewardCNN

    net, meta = load_module(atari_run / "reward_model" / "Breakout" / "plain" / "model.pt", expect=AtariRewardCNN)
    assert meta == {"game": "Breakout", "variant": "plain"}
    fr = read_frames(atari_run / "dataset" / "Breakout" / "plain.h5", "test")
    a = net.predict(None, None, fr.next_obs[:16], None)
    b = net.frame_reward(torch.as_tensor(fr.next_obs[:16])).detach().numpy()
    np.testing.assert_allclose(a, b, rtol=0, atol=0)


def test_reward_model_learns_the_balanced_reward(atari_run):
    """Even at toy size (40 frames, 30 epochs) the model beats predicting the mean on held-out frames (MSE 0.25)."""
    res = json.loads((atari_run / "reward_model" / "result.json").read_text())
    assert res["Breakout"]["plain"]["test_mse"] < 0.2


def test_rerun_reuses_every_step_and_bad_inputs_are_one_line(atari_run, cli, tmp_path):
    from conftest import ATARI_TINY

    run = tmp_path / "run"
    shutil.copytree(atari_run, run)
    stamp = (run / "expert" / "Breakout" / "model.pt").stat().st_mtime_ns
    assert cli("atari", "run", "--out", run)[0] == 0
    assert (run / "expert" / "Breakout" / "model.pt").stat().st_mtime_ns == stamp
    code, _, err = cli("atari", "run", "--out", tmp_path / "x", *ATARI_TINY, "games=[Zork]")
    assert code == 2 and "Zork" in err and len(err.strip().splitlines()) == 1
    # a dataset of another variant where the plain one belongs
    shutil.copy(run / "dataset" / "Breakout" / "noscore.h5", run / "dataset" / "Breakout" / "plain.h5")
    code, _, err = cli("atari", "reward-model", "--redo", "--out", run)
    assert code == 2 and "variant='noscore'" in err, err


def test_a_stop_after_a_games_evaluation_keeps_it(atari_run, cli, tmp_path, monkeypatch):
    """Each game's expert result is kept (with its model's digest) as soon as it is evaluated: a step interrupted
    after that game, and rerun, neither retrains nor re-evaluates it; a changed model is evaluated again."""
    import rewardlab.studies.atari as atari
    from rewardlab.core.files import file_digest

    run = tmp_path / "run"
    shutil.copytree(atari_run, run)
    kept = json.loads((run / "expert" / "Breakout" / "result.json").read_text())
    assert kept["model_digest"] == file_digest(run / "expert" / "Breakout" / "model.pt") and kept["games"] == 4
    (run / "expert" / "result.json").unlink()  # the step itself never finished
    calls = []
    monkeypatch.setattr(atari, "play_games", lambda *a, **k: calls.append(a) or np.zeros(4))
    assert cli("atari", "expert", "--out", run)[0] == 0
    assert calls == [] and json.loads((run / "expert" / "result.json").read_text())["Breakout"] == kept


def test_evaluation_games_cut_at_the_step_cap():
    """A policy that never fires stalls Breakout after its first life; a cap scores each game as it stands."""
    import time

    from rewardlab.studies.atari import play_games

    t = time.perf_counter()
    scores = play_games(lambda obs: np.zeros(len(obs), dtype=np.int64), "Breakout", "plain", 3, 0, n_envs=2, cap=50)
    assert scores.shape == (3,) and np.all(scores >= 0) and time.perf_counter() - t < 60


def test_paper_and_cpu_presets_have_the_published_settings():
    paper = STUDIES["atari"].resolve("paper")
    ppo = paper.expert.ppo
    assert (ppo.n_envs, ppo.n_steps, ppo.n_epochs, ppo.batch_size) == (8, 128, 4, 256)
    assert (ppo.learning_rate, ppo.clip_range, ppo.ent_coef, ppo.vf_coef) == (2.5e-4, 0.1, 0.01, 0.5)
    assert ppo.lr_schedule == ppo.clip_schedule == "linear" and ppo.policy == "CnnPolicy"
    assert ppo.total_timesteps == 10_000_000 and paper.retrain.n_seeds == 2
    assert (paper.dataset.n_train, paper.dataset.n_test) == (50_000, 25_000)
    rm = paper.reward_model
    assert (rm.lr, rm.batch_size, rm.epochs) == (1e-3, 20, 5)
    cpu = STUDIES["atari"].resolve("cpu")
    assert cpu.expert.ppo.total_timesteps == 1_000_000 and cpu.retrain.games == ["Breakout"]
    assert cpu.retrain.ppo.total_timesteps == 300_000


def test_missing_engine_and_foreign_checkpoints_are_one_line(atari_run, fast_run, cli, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(atari_run, run)
    # a maze expert where the Breakout expert belongs
    shutil.copy(fast_run / "expert" / "model.pt", run / "expert" / "Breakout" / "model.pt")
    code, _, err = cli("atari", "dataset", "--redo", "--out", run)
    assert code == 2 and "another environment" in err and len(err.strip().splitlines()) == 1, err
    # a reward model of another architecture (the maze's MLP where the NatureCNN belongs)
    shutil.copy(fast_run / "reward_model" / "model.pt", run / "reward_model" / "Breakout" / "plain" / "model.pt")
    code, _, err = cli("atari", "retrain", "--redo", "--out", run)
    assert code == 2 and "reward.maze_mlp" in err and len(err.strip().splitlines()) == 1, err
    # no engine installed: one line naming the install command, before anything is written
    import sys

    monkeypatch.setitem(sys.modules, "envpool", None)
    code, _, err = cli("atari", "run", "--out", tmp_path / "new")
    assert code == 2 and "pip install envpool" in err, err
    assert not (tmp_path / "new").exists()
