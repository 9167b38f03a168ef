"""Device check of the PTGM trainers (`python -m benchmarks.ptgm_device_check cuda`, on a lent GPU): placement, no
per-update host sync, checkpoints across devices, flat SAC on the GPU, and the study end to end with device=cuda."""

import sys
import tempfile
import time
from pathlib import Path

import torch

from rewardlab.agents.configs import CodebookConfig, FlatSACConfig, HLSACConfig, PretrainConfig
from rewardlab.agents.hl_sac import Hierarchy, HighLevelSAC, Replay, code_reach, evaluate, train_hl
from rewardlab.agents.ptgm import build_codebook, load_pretrained, pretrain
from rewardlab.core.runs import load_checkpoint
from rewardlab.data.kitchen_demos import DemoConfig, scripted_demos
from rewardlab.envs.mini_kitchen import GOAL_IDX, KitchenSpec

dev = sys.argv[1] if len(sys.argv) > 1 else "cuda"
study_part = "--no-study" not in sys.argv
print(torch.__version__, torch.cuda.is_available(), dev, flush=True)
cuda = dev.startswith("cuda")
sync = torch.cuda.synchronize if cuda else (lambda: None)
tmp = Path(tempfile.mkdtemp())
ok = True


def check(name, cond):
    global ok
    ok &= bool(cond)
    print(("OK   " if cond else "FAIL ") + name, flush=True)


def devices(*mods):
    return {t.device.type for m in mods for t in [*m.parameters(), *m.buffers()]}


t0 = time.time()
ds = scripted_demos(DemoConfig(episodes=60, seed=3))
cb = build_codebook(ds, GOAL_IDX, CodebookConfig(n_codes=8, method="random"))
res = pretrain(ds, cb, PretrainConfig(steps=200, log_every=100, batch=32), tmp / "pre", device=dev)
check(
    f"pretrain on cuda: nll {res['history'][0]['low_nll']:.2f} -> {res['low_nll']:.2f}",
    res["low_nll"] < res["history"][0]["low_nll"],
)
st = load_checkpoint(tmp / "pre" / "pretrain.pt", map_location=None)  # as saved


def cpu_only(x):
    if isinstance(x, torch.Tensor):
        return x.device.type == "cpu"
    if isinstance(x, dict):
        return all(cpu_only(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(cpu_only(v) for v in x)
    return True


check("pretrain.pt holds only CPU tensors", cpu_only(st) and st.get("gen_device", "cpu") == torch.device(dev).type)
res2 = pretrain(ds, cb, PretrainConfig(steps=300, log_every=100, batch=32), tmp / "pre", device=dev)
check("pretrain resumes on cuda", res2["steps"] == 300)
res3 = pretrain(ds, cb, PretrainConfig(steps=400, log_every=100, batch=32), tmp / "pre", device="cpu")
check("a cuda pretrain.pt resumes on cpu", res3["steps"] == 400)
low, prior = load_pretrained(tmp / "pre" / "pretrain.pt", map_location=dev)
check("load_pretrained on cuda", devices(low, prior) == {torch.device(dev).type})
pretrain(ds, cb, PretrainConfig(steps=100, log_every=100, batch=32), tmp / "pre_rnd", low_from=low, device=dev)
print(f"pretrain part {time.time() - t0:.1f}s", flush=True)

# placement and the update without host synchronisation
cfg = HLSACConfig(critic_layers=2, critic_hidden=128, batch=256)
ag = HighLevelSAC(cfg, prior, low.obs_dim, 0, dev)
tensors = [ag.log_alpha] + [p for o in (ag.opt_pi, ag.opt_q, ag.opt_alpha) for g in o.param_groups for p in g["params"]]
check(
    "HighLevelSAC on cuda",
    devices(ag.policy, ag.prior, ag.q, ag.qt) == {torch.device(dev).type}
    and {t.device.type for t in tensors} == {torch.device(dev).type},
)
rp = Replay(4096, low.obs_dim, ag.n, dev)
s, s2 = torch.rand(4096, low.obs_dim, device=dev), torch.rand(4096, low.obs_dim, device=dev)
rp.add(
    s=s,
    s2=s2,
    i=torch.randint(ag.n, (4096,), device=dev),
    r=torch.rand(4096, device=dev),
    d=torch.zeros(4096, device=dev),
    lp=ag.prior_logp(s),
    lp2=ag.prior_logp(s2),
)
g = torch.Generator(device=dev).manual_seed(0)
for _ in range(5):  # warm-up (first fused Adam steps, lazy inits)
    ag.update(rp.sample(256, g), g)
sync()
if cuda:
    torch.cuda.set_sync_debug_mode("error")
try:
    stats = []
    for _ in range(50):
        stats.append(ag.update(rp.sample(256, g), g))
    synced = None
except RuntimeError as e:
    synced = str(e).splitlines()[0]
if cuda:
    torch.cuda.set_sync_debug_mode(0)
check(f"50 updates without a host sync ({synced})", synced is None)
sync()
t = time.time()
for _ in range(500):
    ag.update(rp.sample(256, g), g)
sync()
print(f"update: {(time.time() - t) / 500 * 1e3:.3f} ms on {dev}", flush=True)
check("metrics finite", all(torch.isfinite(torch.stack(list(m.values()))).all() for m in stats))

# whole runs on cuda, resumed on cuda and on cpu; evaluation and code_reach on cuda
rl = HLSACConfig(
    env_steps=3000, n_envs=8, warmup=100, batch=64, critic_layers=2, critic_hidden=64, eval_every=1500, eval_episodes=4
)
t = time.time()
r = train_hl(rl, low, prior, cb, KitchenSpec(), tmp / "rl", seed=0, device=dev)
print(f"train_hl 3000 steps on cuda: {time.time() - t:.1f}s, {r['updates']} updates, {r['history']}", flush=True)
saved = load_checkpoint(tmp / "rl" / "hl_sac.pt", map_location=None)
check("hl_sac.pt holds only CPU tensors", cpu_only(saved) and saved.get("gen_device", "cpu") == torch.device(dev).type)
rl2 = HLSACConfig(**{**rl.__dict__, "env_steps": 4000})
r2 = train_hl(rl2, low, prior, cb, KitchenSpec(), tmp / "rl", seed=0, device=dev)
check("train_hl resumes on cuda", r2["env_steps"] >= 4000 and r2["updates"] > r["updates"])
low_cpu, prior_cpu = load_pretrained(tmp / "pre" / "pretrain.pt")
rl3 = HLSACConfig(**{**rl.__dict__, "env_steps": 4500})
r3 = train_hl(rl3, low_cpu, prior_cpu, cb, KitchenSpec(), tmp / "rl", seed=0, device="cpu")
check("a cuda hl_sac.pt resumes on cpu", r3["env_steps"] >= 4500 and r3["updates"] > r2["updates"])
ag = HighLevelSAC(rl, prior, low.obs_dim, 0, dev)
ag.load_state_dict(load_checkpoint(tmp / "rl" / "hl_sac.pt")["agent"])
hier = Hierarchy(low, cb, rl.k, rl.low_deterministic, dev)
done = evaluate(ag, hier, KitchenSpec(), 8, seed=3)
check(f"evaluate on cuda ({done.mean():.2f} subtasks)", done.shape == (8,))
reach = code_reach(hier, KitchenSpec(), "kettle", kitchens=10, hl_steps=2)
check(f"code_reach on cuda {reach.round(2).tolist()}", reach.shape == (cb.n,))

# flat SAC on the GPU, resumed on the CPU
from rewardlab.agents.flat_sac import load_flat_sac, train_flat_sac  # noqa: E402

fcfg = FlatSACConfig(n_envs=4, batch=64, learning_starts=200)
t = time.time()
fr = train_flat_sac(fcfg, KitchenSpec(), 1200, tmp / "flat", 0, 600, 4, device=dev)
print(f"flat SAC 1200 steps on cuda: {time.time() - t:.1f}s {fr['history']}", flush=True)
from rewardlab.envs.mini_kitchen import VectorMiniKitchen  # noqa: E402

k = VectorMiniKitchen(1, KitchenSpec(), 0)
m = load_flat_sac(tmp / "flat" / "flat_sac.pt", spaces=(k.single_observation_space, k.single_action_space), device=dev)
check(
    "flat SAC loads on cuda", m.device.type == torch.device(dev).type and devices(m.policy) == {torch.device(dev).type}
)
m = load_flat_sac(tmp / "flat" / "flat_sac.pt", spaces=(k.single_observation_space, k.single_action_space))
check("flat SAC loads on cpu", devices(m.policy) == {"cpu"})
fr2 = train_flat_sac(fcfg, KitchenSpec(), 1600, tmp / "flat", 0, 600, 4, device="cpu")
check("flat SAC made on cuda resumes on cpu", fr2["env_steps"] >= 1600)
# the study end to end at toy size on cuda, then the diagnose step redone on the cpu from the cuda-made checkpoints
import subprocess  # noqa: E402

if not study_part:
    print("ALL OK" if ok else "SOME FAILED", flush=True)
    sys.exit(0 if ok else 1)
tiny = [
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
    "workers=8",
]
t = time.time()
rc = subprocess.run(
    [
        sys.executable,
        "-m",
        "rewardlab",
        "ptgm",
        "run",
        "--preset",
        "fast",
        "--out",
        str(tmp / "study"),
        *tiny,
        f"device={dev}",
    ]
).returncode
print(f"study on cuda: rc {rc}, {time.time() - t:.1f}s", flush=True)
check("ptgm run device=cuda", rc == 0)
before = (tmp / "study" / "rl" / "result.json").stat().st_mtime_ns
rc = subprocess.run(
    [sys.executable, "-m", "rewardlab", "ptgm", "run", "--out", str(tmp / "study"), *tiny, "device=cpu"]
).returncode
check(
    "rerun with device=cpu redoes nothing",
    rc == 0 and (tmp / "study" / "rl" / "result.json").stat().st_mtime_ns == before,
)
rc = subprocess.run(
    [sys.executable, "-m", "rewardlab", "ptgm", "diagnose", "--redo", "--out", str(tmp / "study"), *tiny, "device=cpu"]
).returncode
check("diagnose on cpu from cuda-made checkpoints", rc == 0)
print(open(tmp / "study" / "summary.json").read()[:1500], flush=True)
print(f"total {time.time() - t0:.1f}s", flush=True)
print("ALL OK" if ok else "SOME FAILED", flush=True)
sys.exit(0 if ok else 1)
