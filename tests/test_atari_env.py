import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("envpool")

from rewardlab.envs.atari import (  # noqa: E402
    BACKGROUNDS,
    GAMES,
    AtariSpec,
    FramePipeline,
    area_matrix,
    make_atari,
    score_region,
)
from rewardlab.errors import RewardLabError  # noqa: E402


def envpool_reference(game: str, seeds: list[int], gray: bool):
    """envpool's own preprocessing (84x84 area resize, no stack; grayscale or RGB) with the same games and seeds."""
    import envpool

    return envpool.make(
        f"{game}-v5",
        env_type="gymnasium",
        num_envs=len(seeds),
        seed=seeds,
        img_height=84,
        img_width=84,
        gray_scale=gray,
        stack_num=1,
        use_inter_area_resize=True,
        frame_skip=4,
        noop_max=30,
        repeat_action_probability=0.0,
        use_fire_reset=True,
        max_episode_steps=27000,
        episodic_life=True,
        reward_clip=True,
    )


def by_id(obs, info):
    return obs[np.argsort(info["env_id"])]


def random_actions(env, steps, seed=0):
    return np.random.default_rng(seed).integers(0, env.single_action_space.n, (steps, env.num_envs))


def test_area_matrix_is_box_averaging():
    a = area_matrix(210, 84)
    assert a.shape == (84, 210) and np.allclose(a.sum(1), 1) and np.allclose(a.sum(0), 84 / 210)
    assert np.allclose(a[0, :3], [0.4, 0.4, 0.2])  # output row 0 covers input rows [0, 2.5)
    # independently: repeat every pixel so that output cells cover whole blocks (210 * 2 = 84 * 5 rows, 160 * 21 =
    # 84 * 40 columns), then average the blocks
    img = np.random.default_rng(0).random((210, 160)) * 255
    fine = np.repeat(np.repeat(img, 2, axis=0), 21, axis=1)
    blocks = fine.reshape(84, 5, 84, 40).mean(axis=(1, 3))
    ours = area_matrix(210, 84).astype(np.float64) @ img @ area_matrix(160, 84).T.astype(np.float64)
    assert np.abs(ours - blocks).max() < 1e-3


@pytest.mark.parametrize("game,gray", [("Breakout", True), ("Seaquest", False), ("Pong", False)])
def test_plain_frames_equal_envpool_preprocessing(game, gray):
    """The plain 84x84 frames (the newest of each stack, through episode ends and resets) equal envpool's own 84x84
    frames up to rounding: its grayscale ones (Breakout), or its area-resized RGB ones grayed with cv2's weights.

    envpool's grayscale mode max-pools the two last frames after graying them, while we (as SB3's MaxAndSkipEnv and
    WarpFrame) gray the pooled RGB frame: where the two frames hold different colours at a pixel (Pong's ball,
    Seaquest's divers) the grayscale reference differs by more (up to 16 on Pong); Breakout has no such pixels."""
    env = make_atari(AtariSpec(game, "plain", train=True), 3, seed=0)
    ref = envpool_reference(game, env.seeds, gray)
    weights = np.array([1.0]) if gray else np.array([0.299, 0.587, 0.114])

    def ref_gray(frames):  # (n, 1 or 3, 84, 84) -> (n, 84, 84) float
        return np.einsum("c,nchw->nhw", weights, frames.astype(np.float64))

    obs, _ = env.reset()
    ref_obs = by_id(*ref.reset())
    diffs, ends = [np.abs(obs[:, -1] - ref_gray(ref_obs))], 0
    for a in random_actions(env, 250):
        obs, _, term, trunc, infos = env.step(a)
        ref_obs, _, ref_term, ref_trunc, ref_info = ref.step(a.astype(np.int32))
        order = np.argsort(ref_info["env_id"])
        ref_obs, ref_done = ref_obs[order], (ref_term | ref_trunc)[order]
        done = term | trunc
        np.testing.assert_array_equal(done, ref_done)
        if done.any():  # envpool resets on the next step: reset those games now, as we do
            ends += done.sum()
            final = np.stack(list(infos["final_obs"][done]))
            diffs.append(np.abs(final[:, -1] - ref_gray(ref_obs[done])))
            ref_obs = ref_obs.copy()
            ref_obs[done] = by_id(*ref.reset(np.flatnonzero(done).astype(np.int32)))
        diffs.append(np.abs(obs[:, -1] - ref_gray(ref_obs)))
    d = np.concatenate([x.ravel() for x in diffs])
    assert ends > 0 or game == "Pong"  # episode ends and resets compared too (Pong has no lives)
    # rounding: ours <= 0.5, envpool's per channel <= 0.5 (their weighted sum too)
    assert d.max() <= 1 + 1e-6 and d.mean() < (0.01 if gray else 0.4), (d.max(), d.mean())
    env.close()


@pytest.mark.parametrize("game", GAMES)
def test_score_masks(game):
    """noscore: the region of the raw frame is constant (the background) while the score changes. plain: the region
    changes at score events (in a score step or the next: the max-pool spreads a redraw over two), and only then
    (but in SpaceInvaders, whose shots cross the score). blurscore: the region differs from plain, the rest of the
    frame is identical."""
    envs = {v: make_atari(AtariSpec(game, v, train=False), 4, seed=1) for v in ("plain", "noscore", "blurscore")}
    r0, r1, c0, c1 = score_region(game)
    outside = np.ones((210, 160), dtype=bool)
    outside[r0:r1, c0:c1] = False
    for env in envs.values():
        env.reset()
    before, scored_before = envs["plain"].rgb[:, r0:r1, c0:c1], np.zeros(4, dtype=bool)
    scored = plain_changed = blur_differs = False
    for t, a in enumerate(random_actions(envs["plain"], 600, seed=1)):
        steps = {v: env.step(a) for v, env in envs.items()}
        rgb = {v: env.rgb for v, env in envs.items()}
        infos, ended = steps["plain"][4], steps["plain"][2] | steps["plain"][3]
        np.testing.assert_array_equal(steps["noscore"][4]["score"], infos["score"])
        assert (rgb["noscore"][:, r0:r1, c0:c1] == np.array(BACKGROUNDS[game], dtype=np.uint8)).all()
        for v in ("noscore", "blurscore"):
            np.testing.assert_array_equal(rgb[v][:, outside], rgb["plain"][:, outside])
        region = rgb["plain"][:, r0:r1, c0:c1]
        changed = (region != before).any(axis=(1, 2, 3))
        at_score = (infos["score"] != 0) | scored_before
        if game != "SpaceInvaders":
            assert not (changed & ~at_score & ~ended).any(), t
        scored |= bool((infos["score"] != 0).any())
        plain_changed |= bool((changed & at_score).any())
        blur_differs |= bool((rgb["blurscore"][:, r0:r1, c0:c1] != region).any())
        before, scored_before = region, infos["score"] != 0
        if scored and plain_changed and blur_differs and t >= 100:
            break
    assert scored and plain_changed and blur_differs, (t, scored, plain_changed, blur_differs)
    for env in envs.values():
        env.close()


def test_blur_is_a_gaussian_inside_the_region():
    pipe = FramePipeline("Breakout", "blurscore")
    raw = np.zeros((1, 3, 210, 160), dtype=np.uint8)
    raw[0, :, 10, 58] = 255  # a bright dot inside Breakout's region
    raw[0, :, 100, 100] = 255  # one outside
    pipe.mask(raw)
    assert raw[0, 0, 100, 100] == 255 and raw[0, 0, 10, 58] < 20  # spread out (sigma 3: peak 255 / (2 pi 9) ~ 4.5)
    assert raw[0, 0, 10, 55] > 0 and raw[0, 0, 10, 55] == raw[0, 0, 10, 61]  # symmetric about the dot
    assert (raw[0] == raw[0, :1]).all()  # the channels alike


def test_same_step_autoreset():
    env = make_atari(AtariSpec("Breakout", train=True), 4, seed=3)
    obs, _ = env.reset()
    assert obs.shape == (4, 4, 84, 84) and obs.dtype == np.uint8 and (obs[:, :3] == 0).all() and obs[:, 3].any()
    assert env.observation_space.shape == (4, 4, 84, 84) and env.single_observation_space.shape == (4, 84, 84)
    assert env.single_action_space.n == 4
    ended = False
    for a in random_actions(env, 200, seed=3):
        new, _, term, trunc, infos = env.step(a)
        done = term | trunc
        for key, dtype in (("score", np.float32), ("game_over", bool), ("lives", np.int32)):
            assert infos[key].shape == (4,) and infos[key].dtype == dtype
        if done.any():
            np.testing.assert_array_equal(infos["_final_obs"], done)
            for i in np.flatnonzero(done):
                final = infos["final_obs"][i]
                np.testing.assert_array_equal(final[:3], obs[i, 1:])  # the episode's last stack
                assert final[3].any()
                assert (new[i, :3] == 0).all() and new[i, 3].any()  # the next episode's first stack
            ended = True
            keep = np.flatnonzero(~done)
            np.testing.assert_array_equal(new[keep, :3], obs[keep, 1:])
            after, *_ = env.step(a)  # the reset game steps on at once
            np.testing.assert_array_equal(after[done, 2], new[done, 3])
            assert (after[done, :2] == 0).all()
            break
        obs = new
    assert ended
    env.close()


@pytest.mark.parametrize("train", [True, False])
def test_train_and_eval_protocols(train):
    """Training: clipped rewards, a life loss ends the episode. Evaluation: the game's score, episodes end only at
    game over (SpaceInvaders: 3 lives, 5 to 30 points an invader)."""
    env = make_atari(AtariSpec("SpaceInvaders", train=train), 3, seed=0)
    env.reset()
    before = np.full(3, 3)
    big_score = life_lost = life_loss_ended = False
    for a in random_actions(env, 500):
        _, reward, term, trunc, infos = env.step(a)
        score, over, lives = infos["score"], infos["game_over"], infos["lives"]
        np.testing.assert_array_equal(reward, np.sign(score) if train else score)
        lost = (lives < before) & ~over
        big_score |= bool((np.abs(score) > 1).any())
        life_lost |= bool(lost.any())
        life_loss_ended |= bool((term & lost).any())
        if train:
            np.testing.assert_array_equal(term | trunc, lost | over)
        else:
            np.testing.assert_array_equal(term | trunc, over)
        before = np.where(over, 3, lives)
        if big_score and life_lost:
            break
    assert big_score and life_lost and life_loss_ended == train
    env.close()


def test_same_seed_same_frames():
    a, b = (make_atari(AtariSpec("Seaquest", "noscore"), 2, seed=7) for _ in range(2))
    oa, _ = a.reset()
    ob, _ = b.reset()
    np.testing.assert_array_equal(oa, ob)
    for act in random_actions(a, 60):
        np.testing.assert_array_equal(a.step(act)[0], b.step(act)[0])
    np.testing.assert_array_equal(a.rgb, b.rgb)
    again, _ = a.reset(seed=7)  # re-seeding restarts the same games
    np.testing.assert_array_equal(again, oa)
    a.close()
    b.close()


def test_ale_engine_same_observation_semantics():
    pytest.importorskip("ale_py")
    env = make_atari(AtariSpec("Breakout", train=True), 2, seed=0, engine="ale")
    obs, _ = env.reset()
    assert obs.shape == (2, 4, 84, 84) and (obs[:, :3] == 0).all() and env.rgb.shape == (2, 210, 160, 3)
    ended = False
    for a in random_actions(env, 80):
        prev = obs
        obs, reward, term, trunc, infos = env.step(a)
        np.testing.assert_array_equal(reward, np.sign(infos["score"]))
        if (term | trunc).any():
            i = int(np.flatnonzero(term | trunc)[0])
            np.testing.assert_array_equal(infos["final_obs"][i][:3], prev[i, 1:])
            assert (obs[i, :3] == 0).all() and infos["lives"][i] < 5
            ended = True
    assert ended
    env.close()


def test_errors_are_one_line(monkeypatch):
    def one_line(call, *words):
        with pytest.raises(RewardLabError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and all(w in msg for w in words), msg

    one_line(lambda: make_atari(AtariSpec("Breakuot"), 1, 0), "Breakuot", "Breakout")
    one_line(lambda: make_atari(AtariSpec("Qbert", "noscore"), 1, 0), "Qbert", "Seaquest", "Tennis")
    one_line(lambda: make_atari(AtariSpec("Pong", "hidden"), 1, 0), "hidden", "blurscore")
    one_line(lambda: score_region("Qbert"), "Qbert", "Breakout")
    monkeypatch.setitem(sys.modules, "envpool", None)  # a missing envpool
    one_line(lambda: make_atari(AtariSpec("Pong"), 1, 0), "pip install envpool")
    monkeypatch.setitem(sys.modules, "ale_py", None)
    one_line(lambda: make_atari(AtariSpec("Pong"), 1, 0, engine="ale"), "pip install ale-py")
    one_line(lambda: make_atari(AtariSpec("Pong"), 1, 0, engine="stella"), "stella", "envpool")


def test_any_ale_game_plain_and_lazy_import():
    env = make_atari(AtariSpec("Qbert"), 1, seed=0)
    obs, _ = env.reset()
    assert obs.shape == (1, 4, 84, 84) and env.score_region is None and env.single_action_space.n == 6
    env.close()
    code = "import sys, rewardlab.envs.atari; assert 'envpool' not in sys.modules and 'ale_py' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered_single_env_is_the_batched_one_with_n_1():
    """`gym.make("rewardlab/BreakoutNoScore-v0")`: Gymnasium's env checker passes; the score region of its screens
    never changes while points are scored; an episode's end hands back its last observation."""
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import rewardlab.envs  # noqa: F401  (registers the ids)

    env = gym.make("rewardlab/BreakoutNoScore-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    r0, r1, c0, c1 = env.unwrapped.batch.score_region
    region = env.render()[r0:r1, c0:c1].copy()
    scored = 0.0
    rng = np.random.default_rng(0)
    for _ in range(400):
        obs, r, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        scored += info["score"]
        assert np.array_equal(env.render()[r0:r1, c0:c1], region)
        if term or trunc:
            assert obs.shape == (4, 84, 84) and obs[-1].any()
            obs, _ = env.reset()
    assert scored > 0
    env.close()
