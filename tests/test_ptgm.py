"""PTGM on the mini-kitchen: environment dynamics, demonstrations, codebook, labels, pre-training, high-level SAC."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rewardlab.agents.hl_sac import Hierarchy, HighLevelSAC, HLSACConfig, Replay, train_hl
from rewardlab.agents.ptgm import (
    Codebook,
    CodebookConfig,
    GoalMLP,
    LowLevelPolicy,
    PretrainConfig,
    WindowSampler,
    build_codebook,
    cosine_labels,
    load_pretrained,
    pretrain,
)
from rewardlab.data.kitchen_demos import DemoConfig, scripted_demos
from rewardlab.data.offline import OfflineDataset, read_d4rl, write_d4rl
from rewardlab.envs.mini_kitchen import (
    ACT_DIM,
    AGENT_DIM,
    GOAL_IDX,
    N_OBJ,
    OBJECTS,
    OBS_DIM,
    TARGET_TASKS,
    BatchedMiniKitchen,
    KitchenSpec,
    handles,
)
from rewardlab.errors import RewardLabError


@pytest.fixture(scope="module")
def demos() -> OfflineDataset:
    return scripted_demos(DemoConfig(episodes=120, seed=3))


def push_open(env: BatchedMiniKitchen, obj: str, stop: float = 1.0, max_steps: int = 200) -> list[float]:
    """Drive kitchen 0 to an object's handle and push it open with a perfect controller; returns the rewards."""
    j = OBJECTS.index(obj)
    rewards = []
    for _ in range(max_steps):
        h, _ = handles(env.q)
        here = h[0, j]
        ahead_q = env.q.copy()
        ahead_q[0, j] = min(env.q[0, j] + 0.3, 1.0)
        ahead = handles(ahead_q)[0][0, j]
        touching = np.linalg.norm(here - env.pos[0]) < 0.6 * env.spec.contact_radius
        target = ahead if touching else here
        a = np.clip(2.0 * (target - env.pos[0]) / env.spec.speed, -1, 1)[None]
        _, r, term, trunc = env.step(a)
        rewards.append(float(r[0]))
        if env.q[0, j] >= stop or term[0] or trunc[0]:
            break
    return rewards


# ----------------------------------------------------------------------------------------------------- environment
def test_layout_and_spaces():
    env = gym.make("rewardlab/MiniKitchen-v0")
    obs, info = env.reset(seed=0)
    assert obs.shape == (OBS_DIM,) == (17,) and obs.dtype == np.float32
    assert env.action_space.shape == (ACT_DIM,)
    assert np.all(obs[AGENT_DIM : AGENT_DIM + N_OBJ] == 0)  # everything closed
    goal = obs[AGENT_DIM + N_OBJ :]
    assert sorted(np.array(OBJECTS)[goal == 1]) == sorted(TARGET_TASKS)  # the constant task-goal vector
    assert info["completed_tasks"] == []


def test_effector_moves_by_speed_times_action_and_stays_in_the_cube():
    env = BatchedMiniKitchen(2, seed=0)
    p0 = env.pos.copy()
    env.step(np.array([[1.0, 0.0, -0.5], [2.0, 0.0, 0.0]]))  # out-of-range actions are clipped to [-1, 1]
    assert np.allclose(env.pos - p0, [[0.04, 0, -0.02], [0.04, 0, 0]])
    for _ in range(60):
        env.step(np.ones((2, 3)))
    assert np.allclose(env.pos, 1.0)


def test_pushing_a_handle_completes_its_subtask_once_past_the_threshold():
    env = BatchedMiniKitchen(1, seed=0)
    j = OBJECTS.index("microwave")
    env.q[0, j] = 0.6
    h, tan = handles(env.q)
    env.pos[0] = h[0, j]
    qs, rewards = [], []
    for _ in range(40):  # small pushes along the handle's path
        h, tan = handles(env.q)
        env.pos[0] = h[0, j]  # stay on the handle (a hinge's path curves)
        _, r, _, _ = env.step((0.1 * tan[0, j] / np.abs(tan[0, j]).max())[None])
        qs.append(env.q[0, j])
        rewards.append(float(r[0]))
    qs = np.array(qs)
    assert np.all(np.diff(qs) >= 0) and np.all(np.diff(qs)[:20] > 0) and qs[-1] == 1.0  # q stops at fully open
    crossing = int(np.argmax(qs > 0.7))  # |q - 1| < 0.3 first holds here
    assert rewards[crossing] == 1.0 and sum(rewards) == 1.0  # +1 exactly once, at the crossing
    assert env.completed()[0] == 1
    push_open(env, "microwave", stop=1.0)
    assert env.completed()[0] == 1 and env.returns[0] == 1.0  # a completed subtask pays no more


def test_non_target_objects_pay_nothing_and_all_four_targets_terminate():
    env = BatchedMiniKitchen(1, seed=0)
    assert sum(push_open(env, "slide cabinet")) == 0.0
    assert env.q[0, OBJECTS.index("slide cabinet")] == 1.0
    total = 0.0
    for t in TARGET_TASKS:
        total += sum(push_open(env, t))
    assert total == 4.0 and env.completed()[0] == 4
    _, _, term, trunc = env.step(np.zeros((1, 3)))
    assert term[0] and not trunc[0]


def test_moving_away_does_not_drag_an_object_shut():
    env = BatchedMiniKitchen(1, seed=0)
    push_open(env, "light switch", stop=0.5)
    q = env.q.copy()
    for _ in range(10):
        env.step(np.array([[-1.0, -1.0, 0.0]]))
    assert np.array_equal(env.q, q)


def test_episode_is_truncated_at_280_steps_and_reset_restarts():
    env = BatchedMiniKitchen(3, seed=0)
    for t in range(280):
        _, _, term, trunc = env.step(np.zeros((3, 3)))
        assert trunc.all() == (t == 279) and not term.any()
    env.reset(np.array([True, False, False]))
    assert env.t.tolist() == [0, 280, 280]


def test_inactive_kitchens_are_frozen_and_batched_equals_single():
    env = BatchedMiniKitchen(2, seed=0)
    p = env.pos.copy()
    env.step(np.ones((2, 3)), active=np.array([True, False]))
    assert np.array_equal(env.pos[1], p[1]) and env.t.tolist() == [1, 0]
    single = gym.make("rewardlab/MiniKitchen-v0").unwrapped
    single.reset(seed=5)
    batch = BatchedMiniKitchen(1, seed=5)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.uniform(-1, 1, (1, 3))
        o1, r1, *_ = single.step(a[0])
        o2, r2, *_ = batch.step(a)
        assert np.array_equal(o1, o2[0]) and r1 == r2[0]


def test_bad_env_inputs_give_clear_errors():
    with pytest.raises(RewardLabError, match="unknown subtask"):
        KitchenSpec(tasks=("microwave", "oven"))
    with pytest.raises(RewardLabError, match="actions must have shape"):
        BatchedMiniKitchen(2).step(np.zeros((3, 3)))
    with pytest.raises(RewardLabError, match="threshold"):
        KitchenSpec(threshold=2.0)


# ----------------------------------------------------------------------------------------------------- data
def test_demonstrations_cover_every_subtask_and_never_the_target_set(demos):
    b = demos.episode_bounds()
    assert len(b) >= 115  # 120 episodes, a rare accidental solve dropped
    final_q = demos.observations[b[:, 1] - 1, AGENT_DIM : AGENT_DIM + N_OBJ]
    opened = final_q > 0.7
    assert opened.any(axis=0).all()  # every subtask appears in the data
    assert (opened.sum(1) >= 3).mean() > 0.9  # most episodes do their 4 subtasks
    targets = [OBJECTS.index(t) for t in TARGET_TASKS]
    assert not opened[:, targets].all(axis=1).any()  # no episode completes the downstream task
    assert demos.rewards.sum() > 0 and not demos.terminals.any()
    assert demos.timeouts.sum() == len(b) and np.all(np.abs(demos.actions) <= 1)


def test_d4rl_round_trip_and_bad_files(demos, tmp_path):
    path = tmp_path / "d.hdf5"
    write_d4rl(path, demos)
    back = read_d4rl(path)
    for k in ("observations", "actions", "rewards", "terminals", "timeouts"):
        assert np.array_equal(getattr(back, k), getattr(demos, k)) and getattr(back, k).dtype == getattr(demos, k).dtype
    with pytest.raises(RewardLabError, match="does not exist"):
        read_d4rl(tmp_path / "none.hdf5")
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(RewardLabError, match="corrupt"):
        read_d4rl(tmp_path / "junk.hdf5")
    import h5py

    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(RewardLabError, match="not a D4RL-layout dataset"):
        read_d4rl(tmp_path / "other.hdf5")
    with pytest.raises(RewardLabError, match="17-d observations and 3-d actions, but the Kitchen pipeline needs 60"):
        back.check_dims(60, 9, "the Kitchen pipeline")


def test_d4rl_loader_reads_a_real_style_file_without_timeouts(tmp_path):
    import h5py

    with h5py.File(tmp_path / "kitchen.hdf5", "w") as f:  # the kitchen_*-v0.hdf5 keys (no timeouts)
        f["observations"] = np.random.rand(25, 60)
        f["actions"] = np.random.rand(25, 9)
        f["rewards"] = np.zeros(25)
        f["terminals"] = np.r_[np.zeros(9), 1, np.zeros(14), 1].astype(bool)
    ds = read_d4rl(tmp_path / "kitchen.hdf5")
    assert ds.observations.dtype == np.float32 and ds.obs_dim == 60 and ds.act_dim == 9
    assert ds.episode_bounds().tolist() == [[0, 10], [10, 25]]


# ----------------------------------------------------------------------------------------------------- codebook
@pytest.mark.parametrize("method", ["tsne_kmeans", "kmeans", "random"])
def test_codebook_shapes_and_codes_are_real_samples(demos, method):
    cfg = CodebookConfig(n_codes=12, stride=6, offset=8, method=method)
    cb = build_codebook(demos, GOAL_IDX, cfg)
    assert cb.features.shape == (12, len(GOAL_IDX)) and cb.states.shape == (12, OBS_DIM)
    assert np.all((cb.indices - 8) % 6 == 0)  # strided samples
    assert np.array_equal(cb.states, demos.observations[cb.indices])  # each code is a real dataset state
    assert np.array_equal(cb.features, cb.states[:, list(GOAL_IDX)])
    assert len(set(cb.indices.tolist())) == 12


def test_tsne_codebook_picks_the_sample_nearest_each_centre(demos):
    cb = build_codebook(demos, GOAL_IDX, CodebookConfig(n_codes=10, stride=10, method="tsne_kmeans"))
    emb, assign = cb.embedding, cb.assignment
    samples = np.arange(8, len(demos), 10)
    pos = np.searchsorted(samples, cb.indices)
    for c in range(10):
        members = np.flatnonzero(assign == c)
        centre = emb[members].mean(0)  # k-means centres are the cluster means
        d = ((emb[members] - centre) ** 2).sum(1)
        assert assign[pos[c]] == c and np.isclose(((emb[pos[c]] - centre) ** 2).sum(), d.min(), rtol=1e-4)


def test_codebook_save_load_and_errors(demos, tmp_path):
    cb = build_codebook(demos, GOAL_IDX, CodebookConfig(n_codes=5, method="random"))
    cb.save(tmp_path / "c.npz")
    back = Codebook.load(tmp_path / "c.npz")
    assert np.array_equal(back.features, cb.features) and np.array_equal(back.goal_idx, cb.goal_idx)
    with pytest.raises(RewardLabError, match="does not exist"):
        Codebook.load(tmp_path / "none.npz")
    with pytest.raises(RewardLabError, match="codes"):
        build_codebook(demos, GOAL_IDX, CodebookConfig(n_codes=10_000, method="random"))
    with pytest.raises(RewardLabError, match="unknown codebook method"):
        build_codebook(demos, GOAL_IDX, CodebookConfig(method="spectral"))


def test_cosine_labels():
    codes = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    goals = np.array([[5.0, 0.1], [0.2, 3.0], [2.0, 2.1], [-1.0, -1.0]])
    assert cosine_labels(goals, codes).tolist() == [0, 1, 2, 0]  # scale-free: direction only
    g = torch.randn(64, 4)
    c = torch.randn(7, 4)
    ref = torch.stack([torch.tensor([torch.dot(x, y) / (x.norm() * y.norm()) for y in c]).argmax() for x in g])
    assert torch.equal(cosine_labels(g, c), ref)
    with pytest.raises(RewardLabError, match="features"):
        cosine_labels(g, torch.randn(7, 5))


def test_windows_have_goals_one_to_ten_steps_ahead(demos):
    ws = WindowSampler(demos, GOAL_IDX, horizon=10)
    s, a, g = ws.sample(64, torch.Generator().manual_seed(0))
    assert s.shape == (640, OBS_DIM) and a.shape == (640, ACT_DIM) and g.shape == (640, len(GOAL_IDX))
    obs = torch.as_tensor(demos.observations)
    s, g = s.reshape(64, 10, -1), g.reshape(64, 10, -1)
    for b in range(64):
        row = int(np.flatnonzero((demos.observations == s[b, 0].numpy()).all(1))[0])
        assert torch.equal(s[b], obs[row : row + 10])  # consecutive steps
        assert torch.equal(g[b, 0], obs[row + 10, list(GOAL_IDX)])  # the goal is the state just after the window
        assert (g[b] == g[b, 0]).all()
        ep = demos.episode_bounds()
        e = np.flatnonzero((ep[:, 0] <= row) & (row < ep[:, 1]))[0]
        assert row + 10 < ep[e, 1]  # inside one episode


# ----------------------------------------------------------------------------------------------------- nets
def test_goal_mlp_has_the_ptgm_kitchen_shape():
    net = GoalMLP(81, 18)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(128, 81), (128, 128), (128, 128), (128, 128), (18, 128)]
    assert [m.bias is None for m in linears] == [False, True, True, True, False]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == 3


def test_bc_loss_falls_and_the_model_round_trips(demos, tmp_path):
    cb = build_codebook(demos, GOAL_IDX, CodebookConfig(n_codes=8, method="random"))
    res = pretrain(demos, cb, PretrainConfig(steps=300, log_every=100, seed=0), tmp_path)
    h = res["history"]
    assert h[-1]["low_nll"] < h[0]["low_nll"] - 1.0  # the Gaussian NLL falls by more than 1 nat
    assert h[-1]["prior_ce"] < h[0]["prior_ce"] - 0.5 and h[-1]["prior_acc"] > 0.4
    low, prior = load_pretrained(tmp_path / "pretrain.pt")
    low2, prior2 = load_pretrained(tmp_path / "pretrain.pt")
    x = torch.rand(5, OBS_DIM)
    assert torch.equal(prior(x), prior2(x))
    mean, log_std = low.dist(x, torch.rand(5, len(GOAL_IDX)))
    assert mean.shape == (5, ACT_DIM) and (log_std >= -10).all() and (log_std <= 2).all()
    # resuming a finished run trains nothing more; a longer one continues from the checkpoint
    again = pretrain(demos, cb, PretrainConfig(steps=300, log_every=100, seed=0), tmp_path)
    assert again["steps"] == 300 and len(again["history"]) == len(h)
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(RewardLabError, match="corrupt"):
        load_pretrained(tmp_path / "bad.pt")


def test_nll_is_the_summed_gaussian_log_likelihood():
    pol = LowLevelPolicy(4, 2, 3)
    pol.eval()
    s, g, a = torch.rand(6, 4), torch.rand(6, 2), torch.rand(6, 3)
    mean, log_std = pol.dist(s, g)
    ref = -torch.distributions.Normal(mean, log_std.exp()).log_prob(a).sum(-1).mean()
    assert torch.allclose(pol.nll(s, g, a), ref, atol=1e-5)


# ----------------------------------------------------------------------------------------------------- high-level SAC
def _agent(use_prior=True, **kw) -> HighLevelSAC:
    torch.manual_seed(123)  # the prior's initialisation differs from a fresh policy's (seed 0)
    prior = GoalMLP(OBS_DIM, 6).eval()
    return HighLevelSAC(HLSACConfig(use_prior=use_prior, critic_layers=1, critic_hidden=32, **kw), prior, OBS_DIM)


def _replay(agent: HighLevelSAC, n: int = 512) -> Replay:
    rp = Replay(n, OBS_DIM, agent.n)
    s, s2 = torch.rand(n, OBS_DIM), torch.rand(n, OBS_DIM)
    rp.add(
        s=s,
        s2=s2,
        i=torch.randint(agent.n, (n,)),
        r=torch.rand(n),
        d=torch.zeros(n),
        lp=agent.prior_logp(s),
        lp2=agent.prior_logp(s2),
    )
    return rp


def test_policy_starts_as_the_prior_and_the_kl_is_computed_batched():
    ag = _agent()
    s = torch.rand(32, OBS_DIM)
    assert torch.equal(ag.policy(s), ag.prior(s)) and not ag.policy.training
    assert torch.allclose(ag.divergence(ag.policy(s), ag.prior_logp(s)), torch.zeros(32), atol=1e-5)
    logits = torch.randn(32, 6)
    lp = ag.prior_logp(s)
    ref = torch.stack(
        [torch.nn.functional.kl_div(torch.log_softmax(logits[b], -1), lp[b].exp(), reduction="sum") for b in range(32)]
    )  # the original's per-sample torch kl_div(log pi, p)
    assert torch.allclose(ag.divergence(logits, lp), ref, atol=1e-4)
    assert not _agent(use_prior=False).policy(s).equal(ag.prior(s))  # the ablation starts from scratch


@pytest.mark.parametrize("target,direction", [(5.0, -1), (0.0, +1)])
def test_temperature_moves_towards_the_target_kl(target, direction):
    ag = _agent(target_divergence=target, lr=1e-2)
    rp = _replay(ag)
    g = torch.Generator().manual_seed(0)
    start = float(ag.log_alpha.detach())
    divs = []
    for _ in range(30):
        divs.append(ag.update(rp.sample(64, g), g)["divergence"])
    # KL starts at 0: below a target of 5 alpha shrinks; above a target of 0 it grows
    assert np.sign(float(ag.log_alpha.detach()) - start) == direction
    assert max(divs) < 5.0


def test_entropy_ablation_tunes_alpha_towards_the_target_entropy():
    ag = _agent(use_prior=False, target_entropy_ratio=0.2, lr=1e-2)
    rp = _replay(ag)
    g = torch.Generator().manual_seed(0)
    d = ag.update(rp.sample(64, g), g)["divergence"]  # log N - H: near 0 for a fresh, nearly uniform policy
    assert 0 <= d < 0.1 * np.log(6)
    assert np.isclose(ag.target, 0.8 * np.log(6))  # D = log N - H below log N - 0.2 log N: entropy above target
    for _ in range(20):
        ag.update(rp.sample(64, g), g)
    assert float(ag.log_alpha.detach()) < 0  # so alpha shrinks


def _reference():
    """benchmarks/ref_hl_sac.py: the high-level SAC update and replay as they were before issue 19."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ref_hl_sac.py"
    spec = importlib.util.spec_from_file_location("ref_hl_sac", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _close(a, b, atol=1e-5):
    """Two agents' state_dicts (modules, optimisers, temperature) equal to float tolerance."""
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict) and "state_dict" in a[k]:
            assert a[k]["kind"] == b[k]["kind"] and a[k]["config"] == b[k]["config"]
            for n, t in a[k]["state_dict"].items():
                assert torch.allclose(t, b[k]["state_dict"][n], atol=atol), (k, n)
        elif k.startswith("opt_"):
            assert a[k]["param_groups"] == b[k]["param_groups"] and a[k]["state"].keys() == b[k]["state"].keys()
            for i, s in a[k]["state"].items():
                for f, t in s.items():
                    assert torch.allclose(t, b[k]["state"][i][f], atol=atol), (k, i, f)
        elif k == "log_alpha":
            assert torch.allclose(a[k], b[k], atol=atol)
        else:
            assert a[k] == b[k]


@pytest.mark.parametrize("use_prior", [True, False])
def test_update_computes_what_the_reference_update_computes(use_prior):
    """Stacked critics, one backward pass, fused Adam, one-gather replay: same losses and weights as before."""
    ref_mod = _reference()
    torch.manual_seed(123)
    prior = GoalMLP(OBS_DIM, 6).eval()
    cfg = HLSACConfig(use_prior=use_prior, critic_layers=2, critic_hidden=32, lr=1e-3)
    new, ref = HighLevelSAC(cfg, prior, OBS_DIM, seed=3), ref_mod.RefHighLevelSAC(cfg, prior, OBS_DIM, seed=3)
    _close(new.state_dict(), ref.state_dict(), atol=0)  # the same initial weights from the same seed
    rp, rp_ref = Replay(300, OBS_DIM, 6), ref_mod.RefReplay(300, OBS_DIM, 6)
    s, s2 = torch.rand(300, OBS_DIM), torch.rand(300, OBS_DIM)
    data = dict(s=s, s2=s2, i=torch.randint(6, (300,)), r=torch.rand(300), d=(torch.rand(300) < 0.2).float())
    for r in (rp, rp_ref):
        r.add(**data, lp=new.prior_logp(s), lp2=new.prior_logp(s2))
    assert all(torch.equal(v, rp_ref.state_dict()[k]) for k, v in rp.state_dict().items() if k not in ("size", "ptr"))
    g, g_ref = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for _ in range(3):
        b, b_ref = rp.sample(64, g), rp_ref.sample(64, g_ref)
        assert all(torch.equal(b[k], b_ref[k]) for k in b_ref) and b["i"].dtype == torch.long
        m, m_ref = new.update(b, g), ref.update(b_ref, g_ref)
        for k in m_ref:
            assert np.isclose(float(m[k]), m_ref[k], rtol=1e-5, atol=1e-6), k
    _close(new.state_dict(), ref.state_dict())
    assert torch.equal(g.get_state(), g_ref.get_state())  # the same random draws


def test_checkpoints_load_across_the_stacked_and_the_reference_critics(tmp_path):
    """hl_sac.pt keeps its layout (a Critic record per critic, Adam over the Critic parameters): a checkpoint of
    either implementation resumes in the other and both continue alike."""
    ref_mod = _reference()
    torch.manual_seed(123)
    prior = GoalMLP(OBS_DIM, 6).eval()
    cfg = HLSACConfig(critic_layers=1, critic_hidden=16)
    new, ref = HighLevelSAC(cfg, prior, OBS_DIM), ref_mod.RefHighLevelSAC(cfg, prior, OBS_DIM)
    rp = _replay(new, 128)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        b = rp.sample(32, g)
        new.update(b, g), ref.update(b, torch.Generator().manual_seed(0))  # different states on purpose
    from rewardlab.core.runs import load_checkpoint, save_checkpoint

    for name, agent in (("new", new), ("ref", ref)):
        save_checkpoint(tmp_path / f"{name}.pt", {"agent": agent.state_dict()})
    new_into_ref = ref_mod.RefHighLevelSAC(cfg, prior, OBS_DIM, seed=9)
    new_into_ref.load_state_dict(load_checkpoint(tmp_path / "new.pt")["agent"])
    ref_into_new = HighLevelSAC(cfg, prior, OBS_DIM, seed=9)
    ref_into_new.load_state_dict(load_checkpoint(tmp_path / "ref.pt")["agent"])
    _close(new_into_ref.state_dict(), new.state_dict(), atol=0)
    _close(ref_into_new.state_dict(), ref.state_dict(), atol=0)
    assert ref_into_new.opt_q.param_groups[0]["fused"] or ref_into_new.opt_q.param_groups[0]["foreach"]
    b = rp.sample(32, g)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    m1, m2 = new.update(b, g1), new_into_ref.update(b, g2)
    assert all(np.isclose(float(m1[k]), m2[k], rtol=1e-5, atol=1e-6) for k in m2)
    _close(new.state_dict(), new_into_ref.state_dict())


def _tiny_models(demos, tmp_path):
    cb = build_codebook(demos, GOAL_IDX, CodebookConfig(n_codes=6, method="random"))
    pretrain(demos, cb, PretrainConfig(steps=50, log_every=50), tmp_path / "pre")
    low, prior = load_pretrained(tmp_path / "pre" / "pretrain.pt")
    return low, prior, cb


@pytest.mark.parametrize("store_next", [False, True])
def test_the_executed_code_is_the_one_stored(demos, tmp_path, monkeypatch, store_next):
    from rewardlab.core.runs import load_checkpoint

    low, prior, cb = _tiny_models(demos, tmp_path)
    executed = []
    orig = Hierarchy.run_code

    def spy(self, env, obs, code, gen, active=None):
        executed.append(code.clone())
        return orig(self, env, obs, code, gen, active)

    monkeypatch.setattr(Hierarchy, "run_code", spy)
    cfg = HLSACConfig(
        env_steps=200,
        n_envs=2,
        warmup=0,
        batch=8,
        critic_layers=1,
        critic_hidden=16,
        eval_every=10_000,
        eval_episodes=1,
        store_next_code=store_next,
    )
    train_hl(cfg, low, prior, cb, KitchenSpec(), tmp_path / "rl", seed=0)
    rp = load_checkpoint(tmp_path / "rl" / "hl_sac.pt")["replay"]
    # the first call is the evaluation at step 0 (one episode of up to 28 high-level steps); training follows
    train_calls = [c for c in executed if len(c) == 2]
    stored = rp["i"].reshape(-1, 2)
    if store_next:  # the released code's off-by-one: each transition carries the next step's code
        assert torch.equal(stored, torch.stack(train_calls[1 : len(stored) + 1]))
    else:
        assert torch.equal(stored, torch.stack(train_calls[: len(stored)]))


def test_high_level_training_resumes_and_learns_nothing_twice(demos, tmp_path):
    low, prior, cb = _tiny_models(demos, tmp_path)
    cfg = lambda n: HLSACConfig(
        env_steps=n,
        n_envs=2,
        warmup=20,
        batch=8,
        critic_layers=1,
        critic_hidden=16,  # noqa
        eval_every=100,
        eval_episodes=2,
    )
    first = train_hl(cfg(100), low, prior, cb, KitchenSpec(), tmp_path / "rl", seed=0)
    assert [h["env_steps"] for h in first["history"]][0] == 0 and first["env_steps"] >= 100
    more = train_hl(cfg(200), low, prior, cb, KitchenSpec(), tmp_path / "rl", seed=0)
    assert more["env_steps"] >= 200 and more["updates"] > first["updates"]
    assert more["history"][: len(first["history"])] == first["history"]
    with pytest.raises(RewardLabError, match="different widths"):
        train_hl(cfg(10), low, GoalMLP(5, 6), cb, KitchenSpec(), tmp_path / "rl2", seed=0)


def test_code_reach_measures_the_low_level_from_a_given_situation(demos):
    """code_reach: one rate per code; a target already open counts as reached; unknown objects are refused."""
    from rewardlab.agents.hl_sac import code_reach

    cb = build_codebook(demos, GOAL_IDX, CodebookConfig(n_codes=4, method="random"))
    torch.manual_seed(0)
    hier = Hierarchy(LowLevelPolicy(OBS_DIM, len(GOAL_IDX), ACT_DIM), cb, k=2)
    spec = KitchenSpec()
    r = code_reach(hier, spec, "kettle", kitchens=8, hl_steps=1)
    assert r.shape == (4,) and np.all((0 <= r) & (r <= 1))
    assert np.all(code_reach(hier, spec, "kettle", opened=("kettle",), kitchens=8, hl_steps=1) == 1.0)
    with pytest.raises(RewardLabError, match="unknown object"):
        code_reach(hier, spec, "toaster")


# ----------------------------------------------------------------------------------------------------- devices
def _same(a, b, where="") -> None:
    """Two checkpoint trees equal bit for bit (tensors by torch.equal, with the same dtype)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            if k != "seconds":  # wall time
                _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (these nets are tiny; a second thread only waits on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _untrained_models(demos):
    """A random codebook and untrained low level and prior: enough for the trainers' plumbing."""
    cb = build_codebook(demos, GOAL_IDX, CodebookConfig(n_codes=6, method="random"))
    torch.manual_seed(0)
    return LowLevelPolicy(OBS_DIM, len(GOAL_IDX), ACT_DIM).eval(), GoalMLP(OBS_DIM, 6).eval(), cb


@pytest.mark.skipif(torch.cuda.is_available(), reason="device=auto is the GPU on this machine")
def test_device_cpu_and_auto_give_what_the_cpu_always_gave(demos, tmp_path, one_thread):
    """On a machine without a GPU, device="cpu" and the study's default "auto" give bit for bit what the trainers
    give without a device: the same high-level SAC updates, trained weights, optimiser state, replay and generator,
    and the same pre-trained models."""
    from rewardlab.core.runs import load_checkpoint, resolve_device
    from rewardlab.studies.ptgm import PtgmConfig

    auto = resolve_device(PtgmConfig().device)
    torch.manual_seed(123)
    prior = GoalMLP(OBS_DIM, 6).eval()
    cfg = HLSACConfig(critic_layers=1, critic_hidden=32, lr=1e-2)
    agents = [HighLevelSAC(cfg, prior, OBS_DIM, seed=3, **kw) for kw in ({}, {"device": "cpu"}, {"device": auto})]
    rp = _replay(agents[0], 256)
    gens = [torch.Generator().manual_seed(0) for _ in agents]
    for _ in range(5):
        metrics = [ag.update(rp.sample(32, g), g) for ag, g in zip(agents, gens)]
        for m in metrics[1:]:
            _same(m, metrics[0])
    for ag in agents[1:]:
        _same(ag.state_dict(), agents[0].state_dict())
    # whole runs: pre-training; collection, updates, evaluation and checkpoint of the high level
    low, prior, cb = _untrained_models(demos)
    pre = PretrainConfig(steps=20, log_every=10, batch=8)
    rl = HLSACConfig(
        env_steps=120, n_envs=2, warmup=20, batch=8, critic_layers=1, critic_hidden=16, eval_every=60, eval_episodes=2
    )
    runs = []
    for name, kw in (("default", {}), ("cpu", {"device": "cpu"}), ("auto", {"device": auto})):
        pretrain(demos, cb, pre, tmp_path / name / "pre", **kw)
        res = train_hl(rl, low, prior, cb, KitchenSpec(), tmp_path / name / "rl", seed=0, **kw)
        ckpts = [load_checkpoint(tmp_path / name / f) for f in ("pre/pretrain.pt", "rl/hl_sac.pt")]
        runs.append((res["history"], res["updates"], *ckpts))
    assert runs[0][1] > 0
    for r in runs[1:]:
        _same(r, runs[0])


def test_trainers_build_their_nets_and_buffers_on_the_requested_device(demos):
    """Built for a device ("meta": tensors without data, so this runs without a GPU), every parameter, buffer,
    optimiser parameter, replay buffer, code table and dataset tensor is there; the weights are the CPU's."""
    cb = build_codebook(demos, GOAL_IDX, CodebookConfig(n_codes=4, method="random"))
    torch.manual_seed(123)
    prior = GoalMLP(OBS_DIM, 4).eval()
    for use_prior in (True, False):
        ag = HighLevelSAC(
            HLSACConfig(use_prior=use_prior, critic_layers=1, critic_hidden=16), prior, OBS_DIM, 0, "meta"
        )
        tensors = [t for m in (ag.policy, ag.prior, ag.q, ag.qt) for t in [*m.parameters(), *m.buffers()]]
        tensors += [ag.log_alpha] + [
            p for o in (ag.opt_pi, ag.opt_q, ag.opt_alpha) for g in o.param_groups for p in g["params"]
        ]
        assert ag.device == torch.device("meta") and {t.device.type for t in tensors} == {"meta"}
    assert next(prior.parameters()).device.type == "cpu"  # the caller's prior is copied, not moved
    assert Replay(8, OBS_DIM, 4, device="meta").buf.device.type == "meta"
    low = LowLevelPolicy(OBS_DIM, len(GOAL_IDX), ACT_DIM)
    hier = Hierarchy(low, cb, k=2, device="meta")
    assert hier.codes.device.type == "meta" and {t.device.type for t in [*low.parameters(), *low.buffers()]} == {"meta"}
    ws = WindowSampler(demos, GOAL_IDX, 10, device="meta")
    assert {t.device.type for t in (ws.obs, ws.act, ws.goal_idx, ws.start, ws.length)} == {"meta"}


def test_a_checkpoint_from_another_device_resumes(demos, tmp_path, one_thread):
    """hl_sac.pt and pretrain.pt hold CPU tensors; a generator state drawn on a GPU (another algorithm than the
    CPU's) cannot continue on the CPU, so a run resumed there reseeds its generator and goes on."""
    from rewardlab.agents.ptgm import generator_state, restore_generator
    from rewardlab.core.runs import load_checkpoint, save_checkpoint

    low, prior, cb = _untrained_models(demos)
    cfg = lambda n: HLSACConfig(  # noqa: E731
        env_steps=n, n_envs=2, warmup=20, batch=8, critic_layers=1, critic_hidden=16, eval_every=100, eval_episodes=2
    )
    first = train_hl(cfg(100), low, prior, cb, KitchenSpec(), tmp_path / "rl", seed=0)
    saved = load_checkpoint(tmp_path / "rl" / "hl_sac.pt")
    assert "gen_device" not in saved  # a CPU run's checkpoint keeps its layout
    cuda_like = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state: seed and offset
    save_checkpoint(tmp_path / "rl" / "hl_sac.pt", saved | {"gen": cuda_like, "gen_device": "cuda"})
    more = train_hl(cfg(200), low, prior, cb, KitchenSpec(), tmp_path / "rl", seed=0)
    assert more["env_steps"] >= 200 and more["updates"] > first["updates"]
    assert load_checkpoint(tmp_path / "rl" / "hl_sac.pt")["gen"].numel() != 16  # a CPU generator's state again
    g = torch.Generator().manual_seed(5)
    restore_generator(g, {"gen": cuda_like, "gen_device": "cuda"}, reseed=77)
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(77).get_state())
    restore_generator(g, generator_state(torch.Generator().manual_seed(3)), reseed=77)
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(3).get_state())
