"""Reward nets by path: rewardlab's module checkpoints and (only when trusted) imitation's pickled nets.

imitation saves a reward net with `torch.save(reward_net, path)`: a pickled module, whose loading runs code from the
file. `load_reward` recognises such a file without unpickling it (it reads the pickle's opcodes for the classes it
names) and by default refuses it with one line naming `--trust-pickle`. With `trust_pickle=True` it unpickles it
(imitation must be installed), converts it with `rewardlab.rewards.imitation.from_imitation` and writes the safe
copy `converted_path(path)` (`NAME.rewardlab.pt` beside it, atomically; the user's file is never touched). The copy
records the pickle's SHA-256: while the pickle is unchanged, later loads by either path read the copy, without the
trust option and without unpickling anything."""

from __future__ import annotations

import os
import pickletools
import zipfile
from pathlib import Path
from typing import Any

from rewardlab.core.files import file_digest
from rewardlab.core.modules import load_module, save_module
from rewardlab.errors import RewardLabError

IMITATION_INSTALL = 'pip install --no-deps "imitation==1.0.1"'
# the top-level packages whose pickled reward nets `load_reward` converts when trusted
_NET_PACKAGES = ("imitation.", "rewardlab.")


def pickled_globals(path: str | os.PathLike) -> list[str] | None:
    """The classes and functions ("module.name") a torch zip file's pickle refers to, in order, read from its
    opcodes without unpickling anything; None when the file is not a torch zip."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not names:
                return None
            data = z.read(min(names, key=len))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return None
    found: list[str] = []
    strings: list[str] = []  # recent string pushes and memo entries, for protocol 4's STACK_GLOBAL
    memo: dict[int, Any] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                found.append(".".join(str(arg).split(" ", 1)))
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                strings.append(str(arg))
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg)] = strings[-1] if strings else None
            elif op.name == "MEMOIZE":
                memo[len(memo)] = strings[-1] if strings else None
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and isinstance(memo.get(int(arg)), str):
                strings.append(memo[int(arg)])
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # a damaged pickle: what was read so far
        pass
    return found


def converted_path(path: str | os.PathLike) -> Path:
    """Where `load_reward` writes the safe copy of a pickled reward net: `NAME.rewardlab.pt` beside `NAME.pt`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rewardlab.pt")


def _pickled_net(names: list[str] | None) -> str | None:
    """The class name a pickled reward net file is about (its first imitation or rewardlab class), else None."""
    for g in names or ():
        if g.startswith(_NET_PACKAGES):
            return g.rsplit(".", 1)[-1]
    return None


def load_reward(path: str | os.PathLike, trust_pickle: bool = False, map_location: Any = "cpu") -> Any:
    """A RewardNet from `path`: a rewardlab checkpoint (safe), or an imitation net saved with `torch.save` (read only
    with `trust_pickle`, then converted once to the safe format, `converted_path(path)`)."""
    from rewardlab.rewards.nets import RewardNet

    path = Path(path)
    names = pickled_globals(path) if path.is_file() else None
    cls = _pickled_net(names)
    if cls is None:
        net, _ = load_module(path, expect=RewardNet, map_location=map_location)
        return net
    safe, digest, meta = converted_path(path), file_digest(path, digits=None), {}
    if safe.is_file():
        try:
            net, meta = load_module(safe, expect=RewardNet, map_location=map_location)
        except RewardLabError:
            net, meta = None, {}
        if net is not None and meta.get("source_sha256") == digest:
            return net
    if not trust_pickle:
        from rewardlab.agents.sb3 import TRUST_HINT

        raise RewardLabError(
            f"'{path}' is a reward net ({cls}) pickled with torch.save, as imitation saves them: loading it runs "
            f"code from the file, so rewardlab reads it only if you trust it: rerun with {TRUST_HINT} to convert it "
            f"once to rewardlab's safe format ('{safe}')"
        )
    net = _unpickle(path, cls, any(g.startswith(("imitation.", "rewardlab.rewards.imitation.")) for g in names))
    if not safe.exists() or meta.get("converted_from") == path.name:  # never replace a file we did not write
        try:
            save_module(safe, net, meta={"converted_from": path.name, "source_sha256": digest, "source_class": cls})
        except OSError:  # a read-only folder: the net is still returned, converted again next time
            pass
    return net.to(map_location).eval()


def _unpickle(path: Path, cls: str, needs_imitation: bool) -> Any:
    """Unpickle a trusted reward net file and convert it to a rewardlab net."""
    import importlib.util
    import warnings

    import torch

    from rewardlab.rewards.nets import RewardNet

    if needs_imitation and importlib.util.find_spec("imitation") is None:
        raise RewardLabError(
            f"'{path}' holds a pickled reward net ({cls}) that needs the imitation package to load, and imitation is "
            f"not installed; install it with: {IMITATION_INSTALL}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=False)  # trusted by the caller
    except Exception as e:  # unpickling fails in many ways (a class moved, a module missing, a damaged file)
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise RewardLabError(
            f"'{path}' could not be unpickled ({type(e).__name__}{': ' + first if first else ''}); it needs the code "
            "it was saved with (imitation 1.0.1 for imitation's nets)"
        ) from None
    if isinstance(obj, RewardNet):  # a rewardlab net pickled as a module
        return obj.cpu()
    if not needs_imitation:
        raise RewardLabError(f"'{path}' holds a pickled {type(obj).__name__}, not a reward net")
    from rewardlab.rewards.imitation import from_imitation

    return from_imitation(obj, f"'{path}'").cpu()


__all__ = ["IMITATION_INSTALL", "converted_path", "load_reward", "pickled_globals"]
