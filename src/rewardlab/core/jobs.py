"""The one job runner: independent jobs (a sweep's runs, a study's per-method RL runs), each in its own folder, run
on a local process pool or on Ray. Every job records `status.json` (running, finished, failed with its error, or
interrupted); finished jobs are skipped on a rerun, so an interrupted batch resumes; a failed job is reported and
the others go on. An optional manifest (`sweep.json`) lists every job and its status."""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rewardlab.core.runs import available_cores, read_json, write_json
from rewardlab.errors import RewardLabError

BACKENDS = ("local", "ray")


@dataclass
class Job:
    """One job: a study at one setting and one seed, in its own directory `out`; `extra` carries what the job's
    function needs beyond that (picklable plain values)."""

    study: str
    preset: str
    setting: str
    seed: int
    overrides: list[str]
    out: str
    extra: dict[str, Any] = field(default_factory=dict)


def job_status(job: Job) -> dict[str, Any]:
    """The job's status.json, or {'status': 'pending'}."""
    p = Path(job.out) / "status.json"
    if p.is_file():
        try:
            status = read_json(p)
            if isinstance(status, dict):
                return status
        except RewardLabError:
            pass
    return {"status": "pending"}


def run_job(fn: Callable[[Job], Any], job: Job) -> dict[str, Any]:
    """Run fn(job) in this process with status.json written before (running) and after (finished or failed).
    Any error is caught and recorded; the caller gets the status either way."""
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    base = {"setting": job.setting, "seed": job.seed, "host": socket.gethostname(), "pid": os.getpid(), "started": t0}
    write_json(out / "status.json", {**base, "status": "running"})
    try:
        fn(job)
        status = {**base, "status": "finished", "seconds": time.time() - t0}
    except KeyboardInterrupt:
        write_json(out / "status.json", {**base, "status": "interrupted", "seconds": time.time() - t0})
        raise
    except BaseException as e:  # a failing job is recorded, never fatal to the others
        msg = str(e) if isinstance(e, RewardLabError) else f"{type(e).__name__}: {e}"
        (out / "error.txt").write_text(traceback.format_exc())
        status = {**base, "status": "failed", "error": msg, "seconds": time.time() - t0}
    write_json(out / "status.json", status)
    return status


def _local(jobs: list[Job], fn: Callable[[Job], Any], workers: int, on_done: Callable) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_job, fn, j): j for j in jobs}
        for f in as_completed(futures):
            job = futures[f]
            try:
                on_done(job, f.result())
            except BrokenProcessPool as e:  # a worker died (killed, out of memory): the job is failed
                on_done(job, {"status": "failed", "error": f"worker process died: {e}"})


def _ray(jobs: list[Job], fn: Callable[[Job], Any], workers: int, address: str | None, on_done: Callable) -> None:
    try:
        import ray
    except ImportError as e:
        raise RewardLabError("the ray backend needs Ray: pip install 'rewardlab[ray]'") from e
    started = not ray.is_initialized()
    if started:
        path = os.pathsep.join(os.path.abspath(p or ".") for p in sys.path)
        env = {"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
        kw: dict[str, Any] = {
            "runtime_env": env,
            "log_to_driver": False,
            "include_dashboard": False,
            "ignore_reinit_error": True,
        }
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=workers, **kw)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_job)
        refs = {remote.remote(fn, j): j for j in jobs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            job = refs[done[0]]
            try:
                on_done(job, ray.get(done[0]))
            except Exception as e:  # the worker itself failed (killed, out of memory)
                on_done(job, {"status": "failed", "error": f"ray task failed: {type(e).__name__}: {e}"})
    finally:
        if started:
            ray.shutdown()


def check_backend(backend: str, workers: int) -> None:
    """Refuse an unknown backend or a negative worker count."""
    if backend not in BACKENDS:
        raise RewardLabError(f"unknown backend '{backend}'; choose from {', '.join(BACKENDS)}")
    if workers < 0:
        raise RewardLabError(f"workers must be >= 0 (0: one per core), got {workers}")


def run_jobs(
    jobs: Sequence[Job],
    fn: Callable[[Job], Any],
    backend: str = "local",
    workers: int = 0,
    address: str | None = None,
    redo: bool = False,
    manifest: Path | None = None,
    echo: Callable[[str], None] = print,
    label: str = "sweep",
) -> dict[str, dict[str, Any]]:
    """Run every job not yet finished (all of them if `redo`); returns {job folder: status}. `fn` runs one job in
    a worker process and must be importable (a module-level function). A failed job is reported and the others
    go on. `manifest`, when given, is a JSON file whose `runs` list is kept up to date."""
    check_backend(backend, workers)
    statuses = {j.out: job_status(j) for j in jobs}
    todo = [j for j in jobs if redo or statuses[j.out].get("status") != "finished"]
    skipped = len(jobs) - len(todo)
    echo(f"{label}: {len(jobs)} runs, {skipped} already finished, {len(todo)} to run ({backend})")

    def save() -> None:
        if manifest is not None:
            data = read_json(manifest) if manifest.is_file() else {}
            data["runs"] = [{**{k: v for k, v in asdict(j).items() if k != "extra"}, **statuses[j.out]} for j in jobs]
            write_json(manifest, data)

    def on_done(job: Job, status: dict) -> None:
        statuses[job.out] = status
        line = f"  {status['status']:>8}  {job.setting}/seed{job.seed}  ({status.get('seconds', 0):.1f} s)"
        if status["status"] == "failed":
            line += f": {status.get('error', '')}"
        echo(line)
        save()

    save()
    if todo:
        n = min(workers or available_cores(), len(todo))
        if backend == "local":
            _local(todo, fn, n, on_done)
        else:
            _ray(todo, fn, n, address, on_done)
    failed = [j for j in jobs if statuses[j.out].get("status") != "finished"]
    echo(
        f"{label}: {len(jobs) - len(failed)} of {len(jobs)} runs finished"
        + (f"; {len(failed)} failed: " + ", ".join(f"{j.setting}/seed{j.seed}" for j in failed) if failed else "")
    )
    return statuses
