"""Each paper's pipeline as a declared `Study` (rewardlab.core.study): the one registry, by CLI name.

A study module imports no torch, numba or Stable-Baselines3 at import time (its steps do, when they run), so this
registry is cheap to load: `rewardlab --help` reads it."""

from __future__ import annotations

from typing import Any

from rewardlab.core.study import Study
from rewardlab.errors import RewardLabError
from rewardlab.studies import atari, coinrun, irrl_digits, irrl_skills, learned_rewards, preprocessing, ptgm

STUDIES: dict[str, Study] = {
    m.study.name: m.study for m in (learned_rewards, preprocessing, irrl_digits, irrl_skills, ptgm, atari, coinrun)
}


def register_study(study: Study) -> Study:
    """Add a study defined outside rewardlab to the registry (the CLI, sweeps and reports then know it)."""
    if study.name in STUDIES and STUDIES[study.name] is not study:
        raise RewardLabError(f"a study named '{study.name}' is registered already")
    STUDIES[study.name] = study
    return study


def _register_extra() -> None:
    """Studies named by REWARDLAB_EXTRA_STUDIES (comma-separated importable modules, each with a `study`), so that
    a study of your own also reaches the worker processes of a sweep."""
    import importlib
    import os

    for name in filter(None, (m.strip() for m in os.environ.get("REWARDLAB_EXTRA_STUDIES", "").split(","))):
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            raise RewardLabError(f"REWARDLAB_EXTRA_STUDIES names '{name}', which does not import ({e})") from None
        if not isinstance(getattr(module, "study", None), Study):
            raise RewardLabError(f"REWARDLAB_EXTRA_STUDIES names '{name}', which has no `study` (a Study)")
        register_study(module.study)


_register_extra()


def get_study(name: str) -> Study:
    """The registered study of that name."""
    try:
        return STUDIES[name]
    except KeyError:
        raise RewardLabError(f"unknown study '{name}'; choose one of {', '.join(STUDIES)}") from None


def study_of_run(root: Any) -> Study | None:
    """The study a run directory belongs to: from its run.json, else (a run made before the study contract) from
    its summary, else the study whose config has exactly its config.yaml's settings. None if none matches."""
    from dataclasses import fields
    from pathlib import Path

    from rewardlab.core.runs import read_json
    from rewardlab.core.study import read_record, rename_keys

    root = Path(root)
    try:
        rec = read_record(root)
    except RewardLabError:
        rec = None
    names = [rec.get("study")] if rec else []
    try:
        summary = read_json(root / "summary.json") if (root / "summary.json").is_file() else {}
        names.append(summary.get("study") if isinstance(summary, dict) else None)
    except RewardLabError:
        pass
    for name in names:
        if name in STUDIES:
            return STUDIES[name]
    try:
        import yaml

        config = yaml.safe_load((root / "config.yaml").read_text()) if (root / "config.yaml").is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        config = None
    if isinstance(config, dict) and config:
        for study in STUDIES.values():
            keys = set(rename_keys(config, study.legacy_renames))
            if keys == {f.name for f in fields(study.config)}:
                return study
    return None
