"""What is wrong with a file rewardlab is about to read, found before anything runs: `file_problem(path)` opens it
the way its format is read (torch checkpoints with `weights_only`, npz without pickles, HDF5, JSON, YAML) and returns
one short phrase, or None when it reads. Steps check the files they read from earlier steps (`reads=`) and from
the user (`inputs=`, PATH arguments) with it, so a truncated, random or wrong-format file is one clear line before
any training starts and before a redo moves anything aside."""

from __future__ import annotations

import json
import os
from pathlib import Path

_FORMATS = {
    ".pt": "torch checkpoint",
    ".npz": "npz archive",
    ".h5": "HDF5 file",
    ".hdf5": "HDF5 file",
    ".json": "JSON file",
    ".yaml": "YAML file",
    ".yml": "YAML file",
    ".csv": "CSV file",
}


def format_name(path: str | os.PathLike) -> str:
    """The format a file's suffix promises ('torch checkpoint', 'npz archive', ...), or 'file'."""
    return _FORMATS.get(Path(path).suffix.lower(), "file")


def a_format(path: str | os.PathLike) -> str:
    """`format_name` with its article: 'a torch checkpoint', 'an HDF5 file', 'an npz archive'."""
    name = format_name(path)
    return ("an " if name[0] in "aeiouHN" else "a ") + name


def file_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as the format its suffix names (a short phrase), or None if it reads."""
    p = Path(path)
    if not p.exists():
        return "it does not exist"
    if p.is_dir():
        return "it is a directory, not a file"
    if not os.access(p, os.R_OK):
        return "it is not readable (permissions)"
    suffix = p.suffix.lower()
    try:
        if suffix == ".pt":
            return _torch_problem(p)
        if suffix == ".npz":
            import numpy as np

            with np.load(p, allow_pickle=False) as z:
                for k in z.files:  # reads each array: a truncated or pickled member fails here
                    if not isinstance(z[k], np.ndarray):  # numpy hands back a non-array member's raw bytes
                        return f"it is not an npz archive of arrays (member '{k}' is not one)"
            return None
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(p, "r") as f:
                list(f.keys())
            return None
        if suffix == ".json":
            data = json.loads(p.read_text())
            return None if isinstance(data, dict) else f"it holds a JSON {type(data).__name__}, not a mapping"
        if suffix == ".csv":
            if p.name == "metrics.csv":
                from rewardlab.core.runs import read_metrics
                from rewardlab.errors import RewardLabError

                try:
                    read_metrics(p)
                except RewardLabError:
                    return "it is not a rewardlab metrics file (time, step, tag, value)"
                return None
            import csv

            with open(p, newline="") as fh:
                list(csv.reader(fh))
            return None
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(p.read_text())
            return None if isinstance(data, dict) else f"it holds a YAML {type(data).__name__}, not a mapping"
    except Exception as e:  # yaml.YAMLError, OSError, BadZipFile, ...: the many errors a damaged file raises
        return f"it is corrupt or not {a_format(p)} ({_short(e)})"
    return None


def _torch_problem(p: Path) -> str | None:
    import pickle

    import torch

    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message advises weights_only=False, which would run the file's code: not repeated here
        if "Unsupported global" not in str(e):
            return "it is corrupt or not a torch checkpoint"
        return "it is not a plain checkpoint: it holds pickled objects, which rewardlab does not load"
    except Exception as e:  # RuntimeError, struct.error, EOFError, ...: a truncated or foreign file
        return f"it is corrupt or not a torch checkpoint ({_short(e)})"
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a rewardlab checkpoint"
    return None


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = text[:160]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", digits: int | None = 16) -> str:
    """A file's hash in hex, read in 1 MiB blocks: by default the first 16 digits of its SHA-256 (datasets record the
    policy file that made them); `digits=None` for the whole digest (a converted file's source, a download's MD5)."""
    import hashlib

    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:digits]
