"""Sweep backends: overhead per run for trivial runs (local pool and Ray), and the speed-up of an 8-run sweep of real
runs over running them one after another in one process.

    python -m benchmarks sweep [--runs 8] [--iterations 400000] [--trivial 16] [--no-ray]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit
from rewardlab.core.jobs import Job, run_job, run_jobs
from rewardlab.core.runs import available_cores
from rewardlab.studies import STUDIES
from rewardlab.sweep import expand, parse_grid, run_study_job

B = "sweep"


def trivial_job(job: Job) -> None:
    """A run that does nothing: the job runner records its status around it, as around every run."""


def _quiet(_: str) -> None:
    pass


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks sweep")
    ap.add_argument("--runs", type=int, default=8, help="real runs in the speed-up sweep")
    ap.add_argument("--iterations", type=int, default=400000, help="irrl-skills iterations per real run")
    ap.add_argument("--trivial", type=int, default=16, help="trivial runs for the overhead figure")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    a = ap.parse_args(argv)
    try:
        import ray  # noqa: F401

        backends = ["local"] + ([] if a.no_ray else ["ray"])
    except ImportError:
        backends = ["local"]
    workers = available_cores()
    tmp = Path(tempfile.mkdtemp(prefix="rewardlab-bench-sweep-"))
    try:
        # 1. overhead: trivial runs, each backend started from cold (pool or Ray start-up included)
        for backend in backends:
            jobs = [
                Job("irrl-skills", "fast", "trivial", s, [], str(tmp / f"trivial-{backend}" / f"seed{s}"))
                for s in range(a.trivial)
            ]
            t = time.perf_counter()
            run_jobs(jobs, fn=trivial_job, backend=backend, workers=workers, echo=_quiet)
            wall = time.perf_counter() - t
            emit(
                B,
                f"{backend}_overhead_per_trivial_run",
                wall / a.trivial,
                "s/run",
                runs=a.trivial,
                workers=workers,
                note="start-up of the pool or local Ray instance included",
            )
        # 2. speed-up: the same real runs in one process one after another, then on each backend
        grid = parse_grid(
            ["reward=[linear_clipping]", f"iterations={a.iterations}", f"eval_every={max(a.iterations // 4, 1)}"]
        )
        seeds = list(range(a.runs))

        def jobs_in(name: str) -> list[Job]:
            return expand(STUDIES["irrl-skills"], "fast", grid, seeds, tmp / name)

        t = time.perf_counter()
        for j in jobs_in("sequential"):
            assert run_job(run_study_job, j)["status"] == "finished"
        seq = time.perf_counter() - t
        emit(B, "sequential_wall_time", seq, "s", runs=a.runs, study="irrl-skills", iterations=a.iterations)
        for backend in backends:
            t = time.perf_counter()
            st = run_jobs(jobs_in(backend), run_study_job, backend=backend, workers=workers, echo=_quiet)
            wall = time.perf_counter() - t
            assert all(s["status"] == "finished" for s in st.values())
            emit(B, f"{backend}_sweep_wall_time", wall, "s", runs=a.runs, workers=workers)
            emit(
                B,
                f"{backend}_speedup_over_sequential",
                seq / wall,
                "x",
                runs=a.runs,
                workers=workers,
                study="irrl-skills",
                iterations=a.iterations,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
