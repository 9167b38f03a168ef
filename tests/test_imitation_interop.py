"""imitation's reward nets in and out: a net pickled imitation's way (`torch.save`) is refused with one line naming
--trust-pickle (and runs no code); trusted, it is converted once to rewardlab's safe format and predicts exactly what
imitation's `predict` does (Box and Discrete spaces, MLP, CNN, shaped, normalised); a reward trained with imitation's
own preference comparisons is loaded, preprocessed by rewardlab's LP and stays at EPIC distance 0; a rewardlab net
exported with `to_imitation` gives imitation's `RewardVecEnvWrapper` the rewardlab net's rewards.

imitation is an optional part (`pip install --no-deps "imitation==1.0.1"`): without it this module is skipped,
except in CI (REWARDLAB_REQUIRE_EXTRAS=1), where it fails."""

import os
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

if os.environ.get("REWARDLAB_REQUIRE_EXTRAS") == "1":
    import imitation  # noqa: F401  (CI installs it: a missing package fails here instead of skipping)
else:
    pytest.importorskip("imitation")

import gymnasium as gym  # noqa: E402
from gymnasium import spaces  # noqa: E402
from imitation.rewards import reward_nets as rn  # noqa: E402
from imitation.util import networks  # noqa: E402

import rewardlab.envs  # noqa: E402, F401  (registers the environments)
from rewardlab.core.modules import load_module  # noqa: E402
from rewardlab.errors import RewardLabError  # noqa: E402
from rewardlab.rewards.imitation import RewardlabRewardNet, from_imitation, to_imitation  # noqa: E402
from rewardlab.rewards.io import converted_path, load_reward, pickled_globals  # noqa: E402

README = Path(__file__).parents[1] / "README.md"
MC = "rewardlab/ShapedMountainCar-unshaped-v0"
MC_DENSE = "rewardlab/ShapedMountainCar-dense-v0"
MAZE = "rewardlab/EmptyMaze4-v0"


def env_spaces(env_id: str) -> tuple[spaces.Space, spaces.Space]:
    env = gym.make(env_id)
    return env.observation_space, env.action_space


CAR, GRID = env_spaces(MC), env_spaces(MAZE)  # Box(2,) + Discrete(3); Discrete(16) + Discrete(5)
IMAGE_HWC = (spaces.Box(0, 255, (8, 8, 3), np.uint8), spaces.Discrete(3))
IMAGE_CHW = (spaces.Box(0, 255, (2, 6, 6), np.uint8), spaces.Discrete(4))


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


def randomise(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights (not imitation's initialisation) and, for normalisers, statistics away from (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for m in net.modules():
            if isinstance(m, networks.BaseNorm):
                m.update_stats(torch.randn(64, len(m.running_mean), generator=g) * 3 + 1)
    return net


def batch(obs: spaces.Space, act: spaces.Space, n: int, seed: int) -> tuple[np.ndarray, ...]:
    obs.seed(seed), act.seed(seed + 1)
    s, a, s2 = (np.stack([sp.sample() for _ in range(n)]) for sp in (obs, act, obs))
    return s, a, s2, np.random.default_rng(seed).random(n) < 0.3


def imitation_reward(net: rn.RewardNet, s, a, s2, d) -> np.ndarray:
    """imitation's reward: `predict`, or for a NormalizedRewardNet the normalised one (without updating it)."""
    if isinstance(net, rn.NormalizedRewardNet):
        return net.predict_processed(s, a, s2, d, update_stats=False)
    return net.predict(s, a, s2, d)


NETS = {
    "basic-car": lambda: rn.BasicRewardNet(*CAR),
    "basic-car-all-inputs": lambda: rn.BasicRewardNet(*CAR, use_next_state=True, use_done=True),
    "basic-grid": lambda: rn.BasicRewardNet(*GRID, use_next_state=True),
    "basic-car-normalised-input-tanh": lambda: rn.BasicRewardNet(
        *CAR, hid_sizes=(16,), activation=torch.nn.Tanh, normalize_input_layer=networks.RunningNorm
    ),
    "basic-box-actions": lambda: rn.BasicRewardNet(CAR[0], spaces.Box(-1, 1, (2,)), use_done=True),
    "cnn-hwc": lambda: rn.CnnRewardNet(*IMAGE_HWC, use_next_state=True, hid_channels=(4, 6)),
    "cnn-chw-done": lambda: rn.CnnRewardNet(*IMAGE_CHW, use_done=True, hwc_format=False, hid_channels=(3,)),
    "cnn-no-action-done": lambda: rn.CnnRewardNet(*IMAGE_HWC, use_action=False, use_done=True, hid_channels=(4,)),
    "shaped-car": lambda: rn.BasicShapedRewardNet(*CAR, discount_factor=0.9),
    "shaped-grid": lambda: rn.BasicShapedRewardNet(*GRID, use_next_state=True),
    "shaped-cnn": lambda: rn.ShapedRewardNet(
        rn.CnnRewardNet(*IMAGE_HWC, hid_channels=(4,)), rn.BasicPotentialCNN(IMAGE_HWC[0], hid_sizes=(5,)), 0.95
    ),
    "normalized-shaped-car": lambda: rn.NormalizedRewardNet(rn.BasicShapedRewardNet(*CAR), networks.RunningNorm),
    "normalized-grid-ema": lambda: rn.NormalizedRewardNet(rn.BasicRewardNet(*GRID), networks.EMANorm),
}


def save_imitation(net: torch.nn.Module, path: Path) -> Path:
    torch.save(net, path)  # imitation's way: the pickled module
    return path


# -------------------------------------------------------------------------------------------- refused by default
def test_untrusted_pickle_is_refused_with_one_line(tmp_path, cli):
    path = save_imitation(rn.BasicRewardNet(*CAR), tmp_path / "reward_net.pt")
    assert pickled_globals(path)[0] == "imitation.rewards.reward_nets.BasicRewardNet"
    with pytest.raises(RewardLabError) as e:
        load_reward(path)
    msg = str(e.value)
    assert one_line(msg) and "BasicRewardNet" in msg and "pickled with torch.save" in msg and "runs code" in msg
    assert "--trust-pickle" in msg and "trust_pickle=True" in msg and str(converted_path(path)) in msg
    assert "corrupt" not in msg
    code, _, err = cli("compare", path, "true:unshaped", "--env", MC)
    assert code == 2 and one_line(err) and "--trust-pickle" in err
    assert not converted_path(path).exists()  # nothing written without trust


class _Payload:
    """Unpickling this creates the marker file: a stand-in for any code a pickle could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_imitation_pickle_runs_no_code_when_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save([rn.BasicRewardNet(*CAR), _Payload(tmp_path / "a")], path)
    with pytest.raises(RewardLabError, match="--trust-pickle"):
        load_reward(path)
    assert not (tmp_path / "a").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(path, weights_only=False)  # it is a real attack: torch's own loader runs it
    assert (tmp_path / "a").exists()
    (tmp_path / "a").unlink()
    with pytest.raises(RewardLabError, match="holds a list, not an imitation reward net"):
        load_reward(path, trust_pickle=True)  # trusted: unpickled (the user's choice), then refused as no net


# ---------------------------------------------------------------------------------- converted, same numbers
@pytest.mark.parametrize("name", sorted(NETS))
def test_trusted_nets_predict_as_imitation_does(tmp_path, name):
    net = randomise(NETS[name](), seed=len(name))
    path = save_imitation(net, tmp_path / f"{name}.pt")
    loaded = load_reward(path, trust_pickle=True)
    safe = converted_path(path)
    assert safe.is_file() and safe != path
    for seed in (0, 1):
        s, a, s2, d = batch(net.observation_space, net.action_space, 200, seed)
        want = imitation_reward(net, s, a, s2, d)
        np.testing.assert_allclose(loaded.predict(s, a, s2, d), want, atol=1e-5, rtol=0)
        again, meta = load_module(safe)  # rewardlab's own format, weights_only
        np.testing.assert_allclose(again.predict(s, a, s2, d), want, atol=1e-5, rtol=0)
    assert meta["converted_from"] == path.name and meta["source_class"] == type(net).__name__
    if isinstance(net, rn.NormalizedRewardNet):  # imitation's predict on the wrapper is the base's reward
        np.testing.assert_allclose(loaded.base.predict(s, a, s2, d), net.predict(s, a, s2, d), atol=1e-5, rtol=0)
    assert loaded.observation_space == net.observation_space and loaded.action_space == net.action_space


def test_state_dict_keys_map_to_imitations(tmp_path):
    """BasicRewardNet and CnnRewardNet convert with the very same state_dict keys; wrappers rename _base to base."""
    for net in (rn.BasicRewardNet(*CAR, normalize_input_layer=networks.RunningNorm), NETS["cnn-hwc"]()):
        assert list(from_imitation(net).state_dict()) == list(net.state_dict())
    shaped = rn.NormalizedRewardNet(rn.BasicShapedRewardNet(*CAR), networks.RunningNorm)
    keys = set(from_imitation(shaped).state_dict()) - {"base.shift"}
    assert keys == {k.replace("_base.", "base.").replace("_potential_net.", "mlp.") for k in shaped.state_dict()}


def test_converted_once_then_read_without_trust(tmp_path, cli):
    net = randomise(rn.BasicRewardNet(*CAR), 3)
    path = save_imitation(net, tmp_path / "r.pt")
    first = load_reward(path, trust_pickle=True)
    safe_bytes = converted_path(path).read_bytes()
    again = load_reward(path)  # the converted copy: no trust option, nothing unpickled
    s, a, s2, d = batch(*CAR, 50, 0)
    np.testing.assert_array_equal(again.predict(s, a, s2, d), first.predict(s, a, s2, d))
    code, out, err = cli("compare", path, "true:unshaped", "--env", MC, "--samples", 256)
    assert code == 0, err
    assert converted_path(path).read_bytes() == safe_bytes
    save_imitation(randomise(rn.BasicRewardNet(*CAR), 4), path)  # the pickle changed: the copy is stale
    with pytest.raises(RewardLabError, match="--trust-pickle"):
        load_reward(path)
    code, _, err = cli("compare", path, "true:unshaped", "--env", MC, "--samples", 256, "--trust-pickle")
    assert code == 0, err
    assert converted_path(path).read_bytes() != safe_bytes


def test_a_file_in_the_copys_place_is_never_replaced(tmp_path):
    path = save_imitation(rn.BasicRewardNet(*CAR), tmp_path / "r.pt")
    converted_path(path).write_bytes(b"the user's own file")
    assert isinstance(load_reward(path, trust_pickle=True), torch.nn.Module)
    assert converted_path(path).read_bytes() == b"the user's own file"


def test_unsupported_nets_and_missing_imitation_are_one_line(tmp_path, monkeypatch):
    ensemble = rn.RewardEnsemble(*CAR, members=[rn.BasicRewardNet(*CAR), rn.BasicRewardNet(*CAR)])
    multi = rn.BasicRewardNet(spaces.MultiDiscrete([2, 3]), CAR[1])
    odd_cnn = rn.CnnRewardNet(*IMAGE_HWC, hid_channels=(4,), kernel_size=5)
    for i, (net, words) in enumerate(
        [(ensemble, "RewardEnsemble"), (multi, "MultiDiscrete"), (odd_cnn, "3x3 convolutions")]
    ):
        path = save_imitation(net, tmp_path / f"u{i}.pt")
        with pytest.raises(RewardLabError) as e:
            load_reward(path, trust_pickle=True)
        assert one_line(str(e.value)) and words in str(e.value) and "it converts BasicRewardNet" in str(e.value)
        assert not converted_path(path).exists()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "imitation" else real(name, *a))
    path = save_imitation(rn.BasicRewardNet(*CAR), tmp_path / "r.pt")
    with pytest.raises(RewardLabError) as e:
        load_reward(path, trust_pickle=True)
    assert one_line(str(e.value)) and 'pip install --no-deps "imitation==1.0.1"' in str(e.value)


# -------------------------------------------------------------------- a reward trained by imitation's own code
def test_preference_comparisons_reward_loads_and_preprocesses(tmp_path):
    """A few hundred steps of imitation's preference comparisons (random agent, synthetic preferences from the dense
    mountain car's reward), saved imitation's way; rewardlab loads it, gets imitation's numbers, preprocesses it with
    the exact LP (a linear potential and a shift) and the result is at EPIC distance 0 from the loaded reward."""
    from imitation.algorithms import preference_comparisons as pc
    from imitation.data import rollout
    from imitation.data.wrappers import RolloutInfoWrapper
    from imitation.util import logger as imitation_logger
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rewardlab.envs.mountain_car import GAMMA
    from rewardlab.interpret.distances import compare_rewards
    from rewardlab.interpret.preprocess import linear_features, linear_net_from_lp, solve_lp_features

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    venv = DummyVecEnv([lambda: RolloutInfoWrapper(gym.make(MC_DENSE)) for _ in range(2)])
    venv.seed(0)

    class RandomAgent(pc.TrajectoryGenerator):
        def sample(self, steps):
            return rollout.generate_trajectories(None, venv, rollout.make_sample_until(min_timesteps=steps), rng=rng)

        def train(self, steps, **kwargs):
            pass

    log = imitation_logger.configure(folder=str(tmp_path / "log"), format_strs=[])
    net = rn.BasicRewardNet(venv.observation_space, venv.action_space, normalize_input_layer=networks.RunningNorm)
    trainer = pc.PreferenceComparisons(
        RandomAgent(custom_logger=log),
        net,
        num_iterations=3,
        fragmenter=pc.RandomFragmenter(rng=rng, warning_threshold=0),
        preference_gatherer=pc.SyntheticGatherer(rng=rng),
        reward_trainer=pc.BasicRewardTrainer(pc.PreferenceModel(net), pc.CrossEntropyRewardLoss(), rng=rng, epochs=3),
        fragment_length=25,
        transition_oversampling=1,
        initial_comparison_frac=0.2,
        initial_epoch_multiplier=20,
        custom_logger=log,
    )
    stats = trainer.train(total_timesteps=600, total_comparisons=60)
    assert stats["reward_accuracy"] > 0.7  # it learned the synthetic preferences
    path = save_imitation(net, tmp_path / "preference_reward.pt")

    loaded = load_reward(path, trust_pickle=True)
    trans = rollout.flatten_trajectories(
        rollout.generate_trajectories(None, venv, rollout.make_min_timesteps(2000), rng)
    )
    s, a, s2, d = trans.obs, trans.acts, trans.next_obs, trans.dones
    r = loaded.predict(s, a, s2, d)
    np.testing.assert_allclose(r, net.predict(s, a, s2, d), atol=1e-5, rtol=0)
    assert r.std() > 1e-3  # a reward that varies, not a constant

    lp = solve_lp_features(r.astype(float), linear_features(s, s2, d, GAMMA), "sparse_l1")
    pre = linear_net_from_lp(loaded, 2, GAMMA, lp["theta"])
    np.testing.assert_allclose(pre.predict(s, a, s2, d), lp["shaped"], atol=1e-4, rtol=0)
    assert np.abs(lp["shaped"]).mean() <= np.abs(r).mean() + 1e-9  # sparser (L1) than the reward it came from
    res = compare_rewards([loaded, pre], MC, "epic", samples=512, canonical_samples=256, reps=50, seed=0)
    assert res["distance"][0, 1] < 1e-3


# ---------------------------------------------------------------------------------------------------- export
@pytest.mark.filterwarnings("ignore:tried to wrap")
def test_exported_net_rewards_imitations_vec_env(tmp_path):
    """`to_imitation` inside imitation's RewardVecEnvWrapper: the injected rewards are the rewardlab net's, on a Box
    (mountain car) and a Discrete (tabular maze, one-hot in imitation) observation space."""
    from imitation.rewards.reward_wrapper import RewardVecEnvWrapper
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rewardlab.envs.tabular_maze import maze_spec, reward_table
    from rewardlab.rewards.tabular import TabularRewardNet

    car = from_imitation(randomise(rn.BasicShapedRewardNet(*CAR, use_next_state=True), 5))
    grid = TabularRewardNet.from_table(reward_table(maze_spec(MAZE), "path", "dense"))
    for env_id, rl_net in ((MC, car), (MAZE, grid)):
        exported = to_imitation(rl_net)
        assert isinstance(exported, rn.RewardNet)
        venv = DummyVecEnv([lambda: gym.make(env_id) for _ in range(3)])
        venv.seed(1)
        wrapped = RewardVecEnvWrapper(venv, reward_fn=exported.predict_processed)
        obs = wrapped.reset()
        rng = np.random.default_rng(0)
        for _ in range(60):
            acts = rng.integers(0, venv.action_space.n, size=3)
            nxt, rews, dones, infos = wrapped.step(acts)
            final = np.stack([info["terminal_observation"] if done else o for o, done, info in zip(nxt, dones, infos)])
            np.testing.assert_allclose(rews, rl_net.predict(obs, acts, final, dones), atol=1e-6, rtol=0)
            obs = nxt
        s, a, s2, d = batch(venv.observation_space, venv.action_space, 100, 2)
        np.testing.assert_allclose(exported.predict(s, a, s2, d), rl_net.predict(s, a, s2, d), atol=1e-6, rtol=0)


def test_exported_net_trains_in_imitation_and_comes_back(tmp_path):
    """An exported net is an ordinary imitation module: gradients reach the rewardlab weights, torch.save pickles it
    imitation's way, and load_reward (trusted) gives the rewardlab net back."""
    base = from_imitation(randomise(rn.BasicRewardNet(*GRID, use_next_state=True), 6))
    exported = to_imitation(base)
    s, a, s2, d = batch(*GRID, 32, 0)
    exported(*exported.preprocess(s, a, s2, d)).sum().backward()
    assert all(p.grad is not None for p in base.parameters())
    path = save_imitation(exported, tmp_path / "exported.pt")
    assert "rewardlab.rewards.imitation.RewardlabRewardNet" in pickled_globals(path)
    with pytest.raises(RewardLabError, match="RewardlabRewardNet"):
        load_reward(path)
    back = load_reward(path, trust_pickle=True)
    assert type(back) is type(base) and not isinstance(back, RewardlabRewardNet)
    np.testing.assert_array_equal(back.predict(s, a, s2, d), base.predict(s, a, s2, d))


def test_to_imitation_refuses_what_is_not_a_rewardlab_net():
    with pytest.raises(RewardLabError, match="rewardlab RewardNet"):
        to_imitation(torch.nn.Linear(2, 1))


# ---------------------------------------------------------------------------------------------------- README
def test_readme_imitation_section_runs_as_written(tmp_path, monkeypatch, cli):
    """The README's python block of its imitation section, then its command line, in a fresh folder."""
    text = README.read_text()
    section = text[text.index("### imitation's reward nets") :]
    section = section[: section.index("\n## ", 1) if "\n## " in section else None].split("\n### ")[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    command = re.search(r"`(rewardlab compare [^`]*)`", section).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "reward_net.rewardlab.pt").is_file()
    rc, out, err = cli(*command.split()[1:])
    assert rc == 0, err
    assert "EPIC distance" in out


def test_pickled_globals_reads_protocol_4_pickles(tmp_path):
    """pickled_globals reads opcodes only; a protocol-4 pickle's STACK_GLOBAL names are found as well."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "p4.pt", "w") as z:
        z.writestr("x/data.pkl", pickle.dumps(rn.BasicRewardNet(*CAR), protocol=4))
    assert pickled_globals(tmp_path / "p4.pt")[0] == "imitation.rewards.reward_nets.BasicRewardNet"
    (tmp_path / "plain.txt").write_text("not a zip")
    assert pickled_globals(tmp_path / "plain.txt") is None
