"""Run directories (with their lock), atomic writes and checkpoints, metrics (CSV + TensorBoard), progress bars,
devices."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from rewardlab.errors import RewardLabError


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on failure removed.

    A crash or Ctrl-C therefore never leaves a half-written file at `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sfx = suffix if suffix is not None else "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp" + sfx, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions a normal open() would
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None  # JSON has no NaN or infinity: an undefined figure is null
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (numpy scalars and arrays converted; NaN and infinity written as null)."""
    write_text(path, json.dumps(_jsonable(data), indent=2) + "\n")


def read_json(path: str | os.PathLike, fix: str = "restore it, or remake what wrote it with --redo") -> Any:
    """Read JSON, with a clear error for a missing or corrupt file (`fix` says how to repair it)."""
    path = Path(path)
    if path.is_dir():
        raise RewardLabError(f"'{path}' is a directory, not a JSON file")
    if not path.is_file():
        raise RewardLabError(f"'{path}' does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise RewardLabError(f"'{path}' is not valid JSON ({type(e).__name__}); {fix}") from None


def to_cpu(x: Any) -> Any:
    """Tensors in nested dicts, lists and tuples copied to the CPU (CPU tensors as they are): what a checkpoint
    holds, so that it loads on any machine."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: to_cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_cpu(v) for v in x)
    return x


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save a checkpoint (a dict of state_dicts, tensors and plain values) atomically with torch.save."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint saved by `save_checkpoint` safely (weights_only), with clear errors."""
    import pickle

    import torch

    path = Path(path)
    if path.is_dir():
        raise RewardLabError(f"checkpoint '{path}' is a directory; give a checkpoint file")
    if not path.is_file():
        raise RewardLabError(f"checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # torch's message advises weights_only=False, which would run the file's code
        if "Unsupported global" not in str(e):
            raise RewardLabError(
                f"checkpoint '{path}' is corrupt or not a torch checkpoint; retrain it or point to another file"
            ) from None
        raise RewardLabError(
            f"checkpoint '{path}' holds pickled objects, which rewardlab does not load (they can run code); "
            "give a rewardlab checkpoint"
        ) from None
    except Exception as e:  # a damaged file surfaces as many kinds of error (struct.error, RuntimeError, ...)
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise RewardLabError(
            f"checkpoint '{path}' is corrupt or not a rewardlab checkpoint ({first}); "
            "retrain it or point to another file"
        ) from None
    if not isinstance(state, dict):
        raise RewardLabError(f"checkpoint '{path}' is not a rewardlab checkpoint (expected a dict)")
    return state


class MetricsLogger:
    """Append scalar metrics to `metrics.csv` (long format: wall time, step, tag, value) and TensorBoard."""

    def __init__(self, directory: str | os.PathLike, tensorboard: bool = True):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.dir / "metrics.csv"
        new = not self.csv_path.exists()
        self._fh = open(self.csv_path, "a", newline="")
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(["time", "step", "tag", "value"])
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.dir / "tb"))

    def log(self, step: int, **scalars: float) -> None:
        """Record each scalar at `step`."""
        now = time.time()
        for tag, value in scalars.items():
            v = float(value)
            self._csv.writerow([f"{now:.3f}", int(step), tag, repr(v)])
            if self._tb is not None:
                self._tb.add_scalar(tag, v, int(step))
        self._fh.flush()

    def close(self) -> None:
        """Flush and close the files."""
        self._fh.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_metrics(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read a metrics.csv into {tag: (steps, values)}, with one clear error for a damaged file."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                s, v = out.setdefault(row["tag"], ([], []))
                s.append(int(row["step"]))
                v.append(float(row["value"]))
    except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError, csv.Error) as e:
        raise RewardLabError(
            f"'{path}' is not a rewardlab metrics file ({type(e).__name__}); restore it, or remake its step with --redo"
        ) from None
    return {k: (np.asarray(s), np.asarray(v)) for k, (s, v) in out.items()}


def progress(iterable: Any = None, total: int | None = None, desc: str = "", **kw: Any) -> Any:
    """A tqdm progress bar, silent when stderr is not a terminal."""
    from tqdm.auto import tqdm

    disable = kw.pop("disable", None)
    if disable is None:
        disable = not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True, leave=False, **kw)


def check_device_name(device: str, key: str = "device") -> None:
    """Refuse, without importing torch, a device setting other than auto, cpu, cuda or cuda:N (configs' validate)."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise RewardLabError(f"{key}={device!r} is not allowed; choose auto, cpu or cuda")


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when a GPU is present, else 'cpu'; other names are checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RewardLabError(f"device={device} was asked for but no CUDA GPU is available; use device=auto or cpu")
    if device != "cpu" and not device.startswith("cuda") and device != "mps":
        raise RewardLabError(f"unknown device '{device}'; use auto, cpu or cuda")
    return device


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_BLAS_CONTROLLER: list[Any] = []


def one_blas_thread() -> Any:
    """A context limiting numpy's BLAS to one thread (threadpoolctl; nothing if it is missing): small matrix
    problems on 2 busy cores run an order of magnitude faster on one."""
    import contextlib

    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS_CONTROLLER.append(ThreadpoolController())
        except ImportError:
            _BLAS_CONTROLLER.append(None)
    ctrl = _BLAS_CONTROLLER[0]
    return contextlib.nullcontext() if ctrl is None else ctrl.limit(limits=1, user_api="blas")


def set_torch_threads(n: int = 1) -> None:
    """Set torch's intra-op threads (default 1): the nets here are tiny, and on 2 cores PPO on mountain car
    ran 4x slower with 2 threads than with 1 (measured, `set_num_threads` 1 vs 2, 20k steps)."""
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


class RunDir:
    """A run directory: `run.json` (its study, rewardlab version and per-step records), `config.yaml`,
    `summary.json`, per-step subfolders, `figures/`. Nothing is created until something is written."""

    def __init__(self, root: str | os.PathLike, trust_pickle: bool = False):
        self.root = Path(root)
        # Whether the user allowed files that run code when read (SB3 zips, pickles) to be loaded here, and converted
        # to the safe formats (`--trust-pickle`): the steps pass it to their loaders.
        self.trust_pickle = trust_pickle
        if self.root.exists() and not self.root.is_dir():
            raise RewardLabError(f"'{self.root}' exists and is not a directory; choose another --out")

    def path(self, *parts: str) -> Path:
        """A path inside the run directory (parent folders created)."""
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def step_dir(self, name: str) -> Path:
        """The folder of one pipeline step (created)."""
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def figures(self) -> Path:
        p = self.root / "figures"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def step_result(self, step: str) -> dict[str, Any] | None:
        """The saved result of a finished step (`<step>/result.json`), or None if it has not finished."""
        path = self.root / step / "result.json"
        return read_json(path) if path.exists() else None

    def finish_step(self, step: str, result: dict[str, Any]) -> dict[str, Any]:
        """Write a result atomically as `<step>/result.json` (the step decorator does this for declared steps;
        a step calls it for the parts it finishes one by one, to resume from them); returns the result."""
        write_json(self.root / step / "result.json", result)
        return result

    def update_summary(self, **values: Any) -> dict[str, Any]:
        """Merge values into summary.json (written atomically) and return it."""
        path = self.root / "summary.json"
        data = read_json(path) if path.exists() else {}
        data.update(values)
        write_json(path, data)
        return data

    def summary(self) -> dict[str, Any]:
        """The current summary.json (empty if none)."""
        path = self.root / "summary.json"
        return read_json(path) if path.exists() else {}

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for this process: a second process gets one clear error. The lock is an OS
        lock (flock) on `.lock`, released when the process ends, so a killed run never blocks the next."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".lock"
        fh = open(path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise RewardLabError(
                f"'{self.root}' is in use by another rewardlab process (pid {holder}); wait for "
                "it to finish, or use another --out"
            ) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
