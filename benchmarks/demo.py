"""Wall time of `rewardlab demo` on this machine, per study and in total (target: 10 minutes on 2 CPU cores), in a
fresh process with empty numba and torch.compile caches (compilation included) and, unless --mnist, no MNIST copy
(the demo then uses scikit-learn's digits, as on a fresh machine). Also prints each study's effect and whether it
agrees with its paper's direction."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", default=None, help="studies to run (comma-separated; default: all)")
    p.add_argument("--mnist", action="store_true", help="keep REWARDLAB_MNIST_DIR (the real MNIST) if set")
    p.add_argument("--out", default=None, help="keep the demo's folder here (default: a temporary one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "demo")
        env = {
            **os.environ,
            "NUMBA_CACHE_DIR": str(Path(tmp) / "numba"),
            "TORCHINDUCTOR_CACHE_DIR": str(Path(tmp) / "inductor"),
            "XDG_CACHE_HOME": str(Path(tmp) / "cache"),
        }
        if not args.mnist:
            env["REWARDLAB_MNIST_DIR"] = str(Path(tmp) / "no-mnist")
        cmd = [sys.executable, "-m", "rewardlab.cli", "demo", "--out", str(out)]
        if args.only:
            cmd += ["--only", args.only]
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=sys.stderr)  # the demo's own lines; JSON lines on stdout
        wall = time.perf_counter() - t
        rec = json.loads((out / "demo.json").read_text())
    digits = "mnist" if args.mnist else "sklearn stand-in"
    for name, sec in rec["seconds"].items():
        eff = rec["effects"].get(name, {})
        emit("demo", f"{name}_wall_time", sec, "s", effect=eff.get("ours"), agrees=eff.get("holds"), digits=digits)
    emit("demo", "total_wall_time", wall, "s", target=600, studies=list(rec["seconds"]), digits=digits)


if __name__ == "__main__":
    main()
