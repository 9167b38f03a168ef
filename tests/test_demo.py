"""`rewardlab demo`: one report over every study's fast preset."""

import shutil

import pytest

from rewardlab.cli import main

pytestmark = pytest.mark.slow


def test_demo_writes_one_report_linking_every_study(fast_run, preprocessing_run, tmp_path, capsys):
    from rewardlab.studies import STUDIES

    assert set(STUDIES) == {"learned-rewards", "preprocessing"}
    # finished steps are reused, so with both fast runs in place the demo only writes the reports
    shutil.copytree(fast_run, tmp_path / "demo" / "learned-rewards")
    shutil.copytree(preprocessing_run, tmp_path / "demo" / "preprocessing")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    report = (tmp_path / "demo" / "report.md").read_text()
    for name in STUDIES:
        assert f"({name}/report.md)" in report
    assert "learned-rewards/figures/reward_saliency.png" in report
    assert "preprocessing/figures/heatmap_EmptyMaze10_goal_true.png" in report
    assert "expert_success_rate" in report
