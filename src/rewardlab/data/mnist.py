"""The real MNIST: the four standard IDX gzip files, md5-verified on every load.

Where the files are looked for, in order: the `root` argument, the folder named by `REWARDLAB_MNIST_DIR`, the
user cache (`$XDG_CACHE_HOME/rewardlab/mnist`, default `~/.cache/rewardlab/mnist`); when none holds them and
`download` is allowed, they are fetched into the cache from the standard public mirrors.
"""

from __future__ import annotations

import gzip
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardlab.core.files import file_digest
from rewardlab.core.runs import atomic_path
from rewardlab.errors import RewardLabError

ENV_VAR = "REWARDLAB_MNIST_DIR"

FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


@dataclass
class Digits:
    """A labelled digit dataset: uint8 images (N, H, W) in 0..255 and int64 labels (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if x.ndim != 3 or x.dtype != np.uint8 or y.shape != (x.shape[0],):
                raise RewardLabError(
                    f"{self.source}: {split} images must be uint8 (N, H, W) with N labels, "
                    f"got {x.dtype} {x.shape} and labels {y.shape}"
                )


def cache_dir() -> Path:
    """The user cache folder for MNIST."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rewardlab" / "mnist"


def _candidates(root: str | os.PathLike | None) -> list[Path]:
    dirs = []
    if root:
        dirs.append(Path(root))
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs.append(cache_dir())
    return dirs


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name, _ in FILES.values())


def _download(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in FILES.values():
        target = folder / name
        if target.is_file() and file_digest(target, "md5", None) == md5:
            continue
        errors = []
        for mirror in MIRRORS:
            try:
                with atomic_path(target) as tmp:
                    with urllib.request.urlopen(mirror + name, timeout=30) as r, open(tmp, "wb") as f:
                        f.write(r.read())
                    if file_digest(tmp, "md5", None) != md5:
                        raise ValueError("md5 mismatch")
                break
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{mirror}: {e}")
        else:
            raise RewardLabError(f"could not download MNIST file {name} ({'; '.join(errors)}); {_how_to_get()}")


def _how_to_get() -> str:
    names = ", ".join(n for n, _ in FILES.values())
    return (
        f"put the four MNIST files ({names}) in a folder and set {ENV_VAR}=FOLDER (or pass mnist_dir=FOLDER), "
        f"or copy them to {cache_dir()}, or run once with internet access so they download there"
    )


def _read_idx(path: Path, expect_dims: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise RewardLabError(f"MNIST file '{path}' is not a readable gzip file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] != expect_dims:
        raise RewardLabError(f"MNIST file '{path}' is not an IDX file of {expect_dims} dimensions")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(expect_dims)]
    offset = 4 + 4 * expect_dims
    arr = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if arr.size != int(np.prod(dims)):
        raise RewardLabError(f"MNIST file '{path}' is truncated ({arr.size} values for shape {dims})")
    return arr.reshape(dims)


def find_mnist(root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The folder holding the four MNIST files (downloading them to the cache if allowed and needed)."""
    looked = _candidates(root)
    for folder in looked:
        if _complete(folder):
            return folder
    if download:
        try:
            _download(cache_dir())
            return cache_dir()
        except RewardLabError as e:
            raise RewardLabError(f"MNIST not found in {', '.join(map(str, looked))}, and {e}") from None
    raise RewardLabError(f"MNIST not found in {', '.join(map(str, looked))}; {_how_to_get()}")


def load_mnist(root: str | os.PathLike | None = None, download: bool = True) -> Digits:
    """Load the real MNIST (60,000 train and 10,000 test digits, 28x28 uint8), md5-verified."""
    folder = find_mnist(root, download)
    arrays = {}
    for key, (name, md5) in FILES.items():
        path = folder / name
        got = file_digest(path, "md5", None)
        if got != md5:
            raise RewardLabError(
                f"MNIST file '{path}' is not the original (md5 {got}, expected {md5}); replace it, or {_how_to_get()}"
            )
        arrays[key] = _read_idx(path, 3 if key.endswith("images") else 1)
    return Digits(
        arrays["train_images"],
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"],
        arrays["test_labels"].astype(np.int64),
        source=f"MNIST ({folder})",
    )


def mnist_available(root: str | os.PathLike | None = None) -> bool:
    """Whether the MNIST files are present locally (no download attempted)."""
    return any(_complete(folder) for folder in _candidates(root))


def sklearn_digits(size: int = 28, test_fraction: float = 0.2, seed: int = 0) -> Digits:
    """scikit-learn's bundled 8x8 digits (1,797), upscaled to `size`x`size` uint8: a stand-in when MNIST is absent.

    Only `rewardlab demo` uses it, and says so; it is far smaller and simpler than MNIST.
    """
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    # The 8x8 digits fill their frame; MNIST digits sit in a 20x20 box inside 28x28, so keep that margin.
    inner = max(1, round(size * 20 / 28))
    x = F.interpolate(x, size=(inner, inner), mode="bilinear", align_corners=False).clamp(0, 1)
    pad = size - inner
    x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
    images = (x[:, 0].numpy() * 255).round().astype(np.uint8)
    labels = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Digits(
        images[train],
        labels[train],
        images[test],
        labels[test],
        source="scikit-learn digits (8x8, upscaled; a stand-in for MNIST)",
    )
