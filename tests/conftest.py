import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory) -> Path:
    """The learned-rewards `fast` preset, run once end to end through the CLI (about 1.5 minutes)."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("lr") / "fast"
    assert main(["learned-rewards", "run", "--preset", "fast", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(fast_run, tmp_path) -> Path:
    """A private copy of the fast run that a test may damage."""
    dst = tmp_path / "run"
    shutil.copytree(fast_run, dst)
    return dst


@pytest.fixture(scope="session")
def preprocessing_run(tmp_path_factory) -> Path:
    """The preprocessing `fast` preset, run once end to end through the CLI."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("pp") / "fast"
    assert main(["preprocessing", "run", "--preset", "fast", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def irrl_digits_run(tmp_path_factory) -> Path:
    """The irrl-digits `fast` preset, run once end to end through the CLI (about 1.5 minutes)."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("irrl") / "fast"
    assert main(["irrl-digits", "run", "--preset", "fast", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def irrl_skills_run(tmp_path_factory) -> Path:
    """The irrl-skills `fast` preset, run once end to end through the CLI (about 75 seconds)."""
    from rewardlab.cli import main

    out = tmp_path_factory.mktemp("skills") / "fast"
    assert main(["irrl-skills", "run", "--preset", "fast", "--out", str(out)]) == 0
    return out
