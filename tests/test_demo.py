"""`rewardlab demo`: one report over every study's fast preset."""

import shutil

import pytest

from rewardlab.cli import main

pytestmark = pytest.mark.slow


def test_demo_writes_one_report_linking_every_study(
    fast_run,
    preprocessing_run,
    irrl_digits_run,
    irrl_skills_run,
    ptgm_run,
    atari_run,
    coinrun_run,
    tmp_path,
    capsys,
    monkeypatch,
):
    from conftest import ATARI_TINY, COINRUN_TINY, PTGM_TINY

    from rewardlab.studies import STUDIES

    assert set(STUDIES) == {
        "learned-rewards",
        "preprocessing",
        "irrl-digits",
        "irrl-skills",
        "ptgm",
        "atari",
        "coinrun",
    }
    # the ptgm and atari runs in place are the toy-size ones; the demo reuses them when asked for the same settings
    monkeypatch.setattr(STUDIES["ptgm"], "demo_overrides", lambda: PTGM_TINY)
    monkeypatch.setattr(STUDIES["atari"], "demo_overrides", lambda: ATARI_TINY)
    monkeypatch.setattr(STUDIES["coinrun"], "demo_overrides", lambda: COINRUN_TINY)
    # finished steps are reused, so with both fast runs in place the demo only writes the reports
    shutil.copytree(fast_run, tmp_path / "demo" / "learned-rewards")
    shutil.copytree(preprocessing_run, tmp_path / "demo" / "preprocessing")
    shutil.copytree(irrl_digits_run, tmp_path / "demo" / "irrl-digits")
    shutil.copytree(irrl_skills_run, tmp_path / "demo" / "irrl-skills")
    shutil.copytree(ptgm_run, tmp_path / "demo" / "ptgm")
    shutil.copytree(atari_run, tmp_path / "demo" / "atari")
    shutil.copytree(coinrun_run, tmp_path / "demo" / "coinrun")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    report = (tmp_path / "demo" / "report.md").read_text()
    for name in STUDIES:
        assert f"({name}/report.md)" in report
    assert "learned-rewards/figures/reward_saliency.png" in report
    assert "preprocessing/figures/heatmap_EmptyMaze10_goal_true.png" in report
    assert "expert_success_rate" in report
    assert "irrl-digits/figures/valid_accuracy.png" in report and "test_accuracy" in report
    assert "irrl-skills/figures/effective_skills.png" in report
    assert "ptgm/figures/subtasks.png" in report
    assert "atari/figures/saliency_Breakout.png" in report
    assert "coinrun/figures/layer_nmf.png" in report
    page = (tmp_path / "demo" / "report.html").read_text()  # the same runs as one HTML page
    for name in ("learned-rewards", "preprocessing", "irrl-digits", "irrl-skills", "ptgm", "atari", "coinrun"):
        assert f"<h2 id='{name}'>" in page
    assert "ptgm/figures/subtasks.png" in page


def test_demo_uses_sklearn_digits_when_mnist_is_absent(monkeypatch, tmp_path):
    from rewardlab.studies import STUDIES

    monkeypatch.setenv("REWARDLAB_MNIST_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert STUDIES["irrl-digits"].demo_overrides() == ["data.digits=sklearn"]
