"""One checkpoint format for torch modules.

A module class is registered under a kind with `@register_module("kind")`. Its constructor arguments are its config:
the decorator records them on every instance (`module.config`, an instance of the dataclass `cls.Config` made from the
constructor's signature), so what rebuilds a module is derived from how it was built, never written by hand. A
module argument that is itself a registered module is recorded as its kind and config (its weights are part of the
parent's state_dict); a dataclass argument is recorded as a dict and rebuilt with `rewardlab.config.from_dict`.

The file (`save_module` / `load_module`, atomic, `weights_only=True`, any `map_location`)::

    {"format": "rewardlab.module/1", "kind": ..., "config": {...}, "state_dict": {...}, "meta": {...}}

Files written by older rewardlab versions are converted on load by the converters registered with
`register_legacy_format`; a checkpoint of another kind than expected, or of another config than the one asked for,
is one clear error.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import typing
from typing import Any, Callable

from rewardlab.core.runs import load_checkpoint, save_checkpoint
from rewardlab.errors import RewardLabError

FORMAT = "rewardlab.module/1"
_KINDS: dict[str, type] = {}
_LEGACY: dict[str, Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]] = {}
# The modules that register checkpoint kinds, imported when a file names a kind not registered yet (a new module
# class goes on this list).
PROVIDERS = (
    "rewardlab.rewards.nets",
    "rewardlab.rewards.tabular",
    "rewardlab.rewards.shaping",
    "rewardlab.rewards.mountain_car",
    "rewardlab.agents.ram",
)


def _import_providers() -> None:
    import importlib

    for name in PROVIDERS:
        importlib.import_module(name)


def register_module(kind: str) -> Callable[[type], type]:
    """Class decorator: register a torch module class under `kind` and record its constructor arguments."""

    def deco(cls: type) -> type:
        if kind in _KINDS and _KINDS[kind] is not cls:
            raise TypeError(f"module kind '{kind}' is registered twice")
        init = cls.__init__
        sig = inspect.signature(init)
        hints = typing.get_type_hints(init)
        fields = []
        for name, p in list(sig.parameters.items())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}: a registered module's constructor takes named arguments only")
            default = dataclasses.field() if p.default is p.empty else dataclasses.field(default=p.default)
            if isinstance(p.default, (list, dict)):
                default = dataclasses.field(default_factory=lambda d=p.default: type(d)(d))
            fields.append((name, hints.get(name, Any), default))
        cls.Config = dataclasses.make_dataclass(f"{cls.__name__}Config", fields)
        # found again by pickle (imitation saves reward nets with torch.save; an exported net holds a rewardlab net)
        cls.Config.__module__, cls.Config.__qualname__ = cls.__module__, f"{cls.__qualname__}.Config"

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            outer = "_module_building" not in self.__dict__
            if outer:
                self.__dict__["_module_building"] = True
            try:
                init(self, *args, **kwargs)
            finally:
                if outer:
                    del self.__dict__["_module_building"]
            if outer:
                bound = sig.bind(self, *args, **kwargs)
                bound.apply_defaults()
                values = dict(list(bound.arguments.items())[1:])
                self.__dict__["config"] = cls.Config(**values)

        cls.__init__ = __init__
        cls.module_kind = kind
        _KINDS[kind] = cls
        return cls

    return deco


def register_legacy_format(kind: str, convert: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]) -> None:
    """Load files whose `kind` is an older format: `convert(checkpoint) -> (module kind, config)`."""
    _LEGACY[kind] = convert


def _plain(value: Any) -> Any:
    """A constructor argument as plain values (nested modules as {kind, config}, dataclasses as dicts)."""
    if hasattr(value, "module_kind") and hasattr(value, "config"):
        return {"kind": value.module_kind, "config": module_config(value)}
    import torch

    if isinstance(value, torch.nn.Module):
        raise TypeError(f"{type(value).__name__} is not a registered module (@register_module): it cannot be saved")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        return value.item()
    return value


def module_config(module: Any) -> dict[str, Any]:
    """A registered module's constructor arguments as plain values."""
    cfg = getattr(module, "config", None)
    if cfg is None or not hasattr(module, "module_kind"):
        raise TypeError(f"{type(module).__name__} is not a registered module (@register_module)")
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def module_record(module: Any, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """What `save_module` writes: kind, config, state_dict (on the CPU) and metadata."""
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    return {
        "format": FORMAT,
        "kind": module.module_kind,
        "config": module_config(module),
        "state_dict": state,
        "meta": dict(meta or {}),
    }


def build_module(kind: str, config: dict[str, Any], where: str = "a checkpoint") -> Any:
    """A new module of `kind` built from its recorded config (nested modules and dataclasses rebuilt)."""
    from rewardlab.config import from_dict

    if kind not in _KINDS:
        _import_providers()
    if kind not in _KINDS:
        raise RewardLabError(f"{where} holds a module of unknown kind '{kind}'; known: {', '.join(sorted(_KINDS))}")
    cls = _KINDS[kind]
    hints = typing.get_type_hints(cls.__init__)
    args = {}
    for name, value in dict(config).items():
        if isinstance(value, dict) and set(value) == {"kind", "config"} and value["kind"] in _KINDS:
            value = build_module(value["kind"], value["config"], where)
        elif dataclasses.is_dataclass(hints.get(name)):
            value = from_dict(hints[name], value, prefix=f"{name}.")
        elif isinstance(value, list) and typing.get_origin(hints.get(name)) is tuple:
            value = tuple(value)  # stored as a list
        args[name] = value
    try:
        cls.Config(**args)
    except TypeError as e:
        raise RewardLabError(f"{where} does not fit a {kind} module of this rewardlab ({e})") from None
    return cls(**args)


def _kind_name(cls: type | tuple[type, ...]) -> str:
    classes = cls if isinstance(cls, tuple) else (cls,)
    return " or ".join(getattr(c, "module_kind", c.__name__) for c in classes)


def module_from_record(
    record: dict[str, Any],
    where: str = "a checkpoint",
    expect: type | tuple | None = None,
    expect_config: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """(module, meta) from a record; `expect` (a class or classes) and `expect_config` are checked first."""
    if record.get("kind") not in _KINDS and record.get("kind") not in _LEGACY:
        _import_providers()
    if record.get("format") != FORMAT:
        convert = _LEGACY.get(record.get("kind"))
        if convert is None or "state_dict" not in record:
            raise RewardLabError(f"{where} is not a rewardlab module checkpoint")
        kind, config = convert(record)
        record = {
            "format": FORMAT,
            "kind": kind,
            "config": config,
            "state_dict": record["state_dict"],
            "meta": record.get("meta", {}),
        }
    kind, config = record.get("kind"), record.get("config")
    if kind not in _KINDS or not isinstance(config, dict) or not isinstance(record.get("state_dict"), dict):
        raise RewardLabError(f"{where} holds no module of a known kind ({kind!r})")
    defaults = {
        f.name: _plain(f.default)
        for f in dataclasses.fields(_KINDS[kind].Config)
        if f.default is not dataclasses.MISSING
    }
    config = {**defaults, **config}  # arguments added to the class since the file was written, at their defaults
    if expect is not None and not issubclass(_KINDS[kind], expect):
        raise RewardLabError(f"{where} holds a {kind}, not a {_kind_name(expect)}; give a checkpoint of the right kind")
    wanted = {**defaults, **_plain(expect_config)} if expect_config is not None else config
    if wanted != config:
        raise RewardLabError(
            f"{where} holds a {kind} of {config}, but the config asks for {wanted}; remake it or change the config to "
            "match"
        )
    module = build_module(kind, config, where)
    try:
        module.load_state_dict(record["state_dict"])
    except RuntimeError as e:
        raise RewardLabError(f"{where} does not fit a {kind} of its stated config ({str(e).splitlines()[0]})") from None
    return module, dict(record.get("meta", {}))


def module_weights(saved: dict[str, Any]) -> dict[str, Any]:
    """The weights of a module kept inside a training checkpoint: from its record, or (older files) the bare
    state_dict."""
    return saved["state_dict"] if "kind" in saved and "state_dict" in saved else saved


def save_module(path: str | os.PathLike, module: Any, meta: dict[str, Any] | None = None) -> None:
    """Save a registered module (kind, config, state_dict, metadata) atomically."""
    save_checkpoint(path, module_record(module, meta))


def load_module(
    path: str | os.PathLike,
    expect: type | tuple | None = None,
    expect_config: dict[str, Any] | None = None,
    map_location: Any = "cpu",
) -> tuple[Any, dict[str, Any]]:
    """Load a module saved by `save_module` (or an older rewardlab format) safely, in eval mode on `map_location`."""
    record = load_checkpoint(path, map_location="cpu")
    module, meta = module_from_record(record, f"checkpoint '{path}'", expect, expect_config)
    return module.to(map_location).eval(), meta


__all__ = [
    "register_module",
    "register_legacy_format",
    "module_config",
    "module_record",
    "build_module",
    "module_from_record",
    "module_weights",
    "save_module",
    "load_module",
]
