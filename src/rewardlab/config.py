"""Typed configs: dataclasses whose fields carry a help text and bounds, YAML presets, key=value overrides."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rewardlab.errors import RewardLabError

T = TypeVar("T")


def param(
    default: Any = MISSING,
    *,
    help: str,
    min: float | None = None,
    max: float | None = None,
    gt: float | None = None,
    choices: typing.Sequence[Any] | None = None,
    empty_ok: bool = False,
    default_factory: Any = MISSING,
) -> Any:
    """A config field with a help text and optional bounds or allowed choices: `min` and `max` are inclusive, `gt`
    is an exclusive lower bound (the value must be > gt: e.g. a learning rate, gt=0.0). For a list the bounds and
    choices apply to each item, and the list must not be empty unless `empty_ok` (an empty list means something
    there, e.g. "every checkpoint")."""
    if gt is not None and min is not None:
        raise ValueError("give a field either min (inclusive) or gt (exclusive), not both")
    meta = {
        "help": help,
        "min": min,
        "max": max,
        "gt": gt,
        "choices": tuple(choices) if choices else None,
        "empty_ok": empty_ok,
    }
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _kind(tp: Any) -> str:
    """What a value of type `tp` looks like, for messages."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind(a) for a in typing.get_args(tp) if a is not type(None))
    if is_dataclass(tp):
        return "a mapping of settings"
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        return "a list (e.g. [a, b])"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "text"}.get(tp, "a value")


def _read_flow(text: str, where: str) -> Any:
    """A YAML flow list or mapping given as text ('[64, 64]'), or a one-line error."""
    what, example = ("a list", "[a, b]") if text.strip().startswith("[") else ("a mapping", "{key: value}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise RewardLabError(f"{where}: cannot read {text!r} as {what}; write it as {example}") from None


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the field's declared type, or raise RewardLabError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except RewardLabError as e:
                errors.append(str(e))
        raise RewardLabError(errors[0] if errors else f"{where}: cannot be {value!r}")
    if tp is Any:
        return value
    if value is None:
        hint = " (write '' for empty text)" if tp is str else ""
        raise RewardLabError(f"{where}: no value given (null); expected {_kind(tp)}{hint}")
    if is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, str) and value.strip().startswith("{"):
            value = _read_flow(value, where)
        if not isinstance(value, dict):
            keys = ", ".join(f.name for f in fields(tp) if f.init)
            raise RewardLabError(
                f"{where} is a section of settings, not a value (got {value!r}); set its keys instead: "
                f"{where}.KEY=VALUE with KEY one of {keys}"
            )
        return from_dict(tp, value, prefix=where + ".")
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if isinstance(value, str):
            value = _read_flow(value, where) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise RewardLabError(f"{where}: expected a list (e.g. [a, b]), got {value!r}")
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple or tp is tuple else out
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise RewardLabError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise RewardLabError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value.replace("_", ""))
            except ValueError:
                f = None
            if f is not None and f.is_integer():
                return int(f)
        raise RewardLabError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise RewardLabError(f"{where}: expected a number, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError, OverflowError):
            raise RewardLabError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(f):
            raise RewardLabError(f"{where}: expected a finite number, got {value!r}")
        return f
    if tp is str:
        if isinstance(value, (dict, list, tuple)):
            raise RewardLabError(f"{where}: expected text, got {value!r}")
        return str(value)
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None if f.default is MISSING else f.default


def _check(f: dataclasses.Field, value: Any, where: str) -> None:
    """The field's bounds, choices and non-emptiness (a list's bounds and choices apply to each of its items)."""
    meta = f.metadata
    about = f"; {where.rsplit('.', 1)[-1]}: {' '.join(meta['help'].split())}" if meta.get("help") else ""
    is_list = isinstance(value, (list, tuple))
    if is_list and not value and not meta.get("empty_ok", True):  # a field made without param() may be empty
        default = _default(f)
        example = f", e.g. {_flow(to_dict(default))}" if default else ""
        raise RewardLabError(f"{where} is empty; give at least one value{example}{about}")
    choices = meta.get("choices")
    for i, v in enumerate(value if is_list else [value]):
        key = f"{where}[{i}]" if is_list else where
        if choices and v not in choices:
            raise RewardLabError(f"{key}={v!r} is not allowed; choose one of {', '.join(map(str, choices))}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if isinstance(v, float) and not math.isfinite(v):
                raise RewardLabError(f"{key}={v!r} is not a finite number{about}")
            lo, hi, gt = meta.get("min"), meta.get("max"), meta.get("gt")
            if lo is not None and v < lo:
                raise RewardLabError(f"{key}={v!r} is out of range: it must be >= {lo}{about}")
            if gt is not None and v <= gt:
                raise RewardLabError(f"{key}={v!r} is out of range: it must be > {gt}{about}")
            if hi is not None and v > hi:
                raise RewardLabError(f"{key}={v!r} is out of range: it must be <= {hi}{about}")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build a config dataclass from a nested dict, checking names, types and bounds."""
    hints = _hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise RewardLabError(f"unknown config key '{prefix}{unknown[0]}'; known keys here: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in data.items():
        where = prefix + name
        v = _coerce(value, hints[name], where)
        _check(known[name], v, where)
        kwargs[name] = v
    obj = cls(**kwargs)
    # Cross-field checks that single-field bounds cannot express (e.g. that an env id names a maze); a nested
    # section's message is prefixed with where it is ("expert.ppo: ...").
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except RewardLabError as e:
            section = prefix.rstrip(".")
            if section and not str(e).startswith(section):
                raise RewardLabError(f"{section}: {e}") from None
            raise
    return obj


def to_dict(cfg: Any) -> Any:
    """A config as plain nested dicts, lists and scalars (YAML- and JSON-safe)."""
    if is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def parse_overrides(items: typing.Sequence[str]) -> dict[str, Any]:
    """Turn ['a.b=3', 'c=x'] into a nested dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise RewardLabError(f"override '{item}' is not of the form key=value (e.g. expert.total_timesteps=20000)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise RewardLabError(f"override '{item}' has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            if raw.strip().startswith(("[", "{")):
                _read_flow(raw, key)  # a list or mapping that does not parse: a one-line error naming the key
            value = raw
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise RewardLabError(f"override '{item}' conflicts with another override of '{p}'")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge `update` into a copy of `base`."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def _preset_folder(study: str, folder: Any = None) -> Any:
    return folder if folder is not None else resources.files("rewardlab") / "configs" / study.replace("-", "_")


def preset_names(study: str, folder: Any = None) -> list[str]:
    """The presets of a study (e.g. ['fast', 'paper']): the YAML files in `folder`, by default the ones shipped in
    rewardlab/configs/<study>/."""
    folder = _preset_folder(study, folder)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(study: str, preset: str, folder: Any = None) -> dict[str, Any]:
    """Read a preset of the study (`folder`/<preset>.yaml, by default rewardlab/configs/<study>/), or a YAML file
    path, as a dict."""
    path = Path(preset)
    if preset.endswith((".yaml", ".yml")):
        if not path.is_file():
            raise RewardLabError(f"config file '{preset}' does not exist")
        text = path.read_text()
    else:
        names = preset_names(study, folder)
        if preset not in names:
            raise RewardLabError(
                f"unknown preset '{preset}' for {study}; choose one of {', '.join(names)} or give a .yaml file"
            )
        text = (_preset_folder(study, folder) / f"{preset}.yaml").read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise RewardLabError(f"preset '{preset}' is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RewardLabError(f"preset '{preset}' must be a mapping of settings")
    return data


def resolve(
    cls: type[T], study: str, preset: str | dict[str, Any], overrides: typing.Sequence[str] = (), folder: Any = None
) -> T:
    """A preset (a name from the study's preset folder, a YAML file, or the settings themselves as a dict) plus
    overrides, checked against the config dataclass."""
    base = preset if isinstance(preset, dict) else load_preset(study, preset, folder)
    return from_dict(cls, merge(base, parse_overrides(overrides)))


def dump_yaml(cfg: Any) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)


def _bounds(meta: Any) -> str:
    parts = []
    if meta.get("choices"):
        parts.append("one of " + ", ".join(map(str, meta["choices"])))
    lo, hi, gt = meta.get("min"), meta.get("max"), meta.get("gt")
    if lo is not None and hi is not None:
        parts.append(f"{lo} to {hi}")
    elif gt is not None and hi is not None:
        parts.append(f"> {gt} and <= {hi}")
    elif lo is not None:
        parts.append(f">= {lo}")
    elif gt is not None:
        parts.append(f"> {gt}")
    elif hi is not None:
        parts.append(f"<= {hi}")
    return f" [{'; '.join(parts)}]" if parts else ""


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), sort_keys=False).strip()
    return text[:-4].strip() if text.endswith("\n...") else text


def dump_yaml_with_help(cfg: Any, indent: int = 0) -> str:
    """The config as YAML with each field's help text and bounds as a comment beside its value (still valid YAML
    that loads to the same settings: usable as a preset file)."""
    hints = _hints(type(cfg))
    lines = []
    pad = "  " * indent
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        note = f.metadata.get("help", "") + _bounds(f.metadata)
        if is_dataclass(hints[f.name]):
            lines.append(f"{pad}{f.name}:  # {note}".rstrip())
            lines.append(dump_yaml_with_help(value, indent + 1).rstrip("\n"))
        else:
            lines.append(f"{pad}{f.name}: {_flow(to_dict(value))}" + (f"  # {note}" if note else ""))
    return "\n".join(lines) + "\n"


__all__ = [
    "param",
    "from_dict",
    "to_dict",
    "parse_overrides",
    "merge",
    "load_preset",
    "resolve",
    "dump_yaml",
    "dump_yaml_with_help",
    "preset_names",
    "dataclass",
]
