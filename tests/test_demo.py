"""`rewardlab demo`: every study's miniature (its `demo` preset), one progress line per study, one report that opens
with each paper's effect."""

import io
import json
import os
import shutil
import warnings

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
    from conftest import ATARI_TINY, COINRUN_TINY, DIGITS_SHORT, PTGM_TINY

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
    monkeypatch.setattr(STUDIES["irrl-digits"], "demo_overrides", lambda: DIGITS_SHORT)
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
    # the runs in place were made with the fast preset: the demo machinery over them, reusing every finished step
    assert main(["demo", "--preset", "fast", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if x.startswith("[")]
    assert len(lines) == 7 and lines[0].startswith("[1/7] learned-rewards")  # one line per study, nothing else
    assert "Warning" not in out
    report = (tmp_path / "demo" / "report.md").read_text()
    overview = report[report.index("| study | the paper's effect |") : report.index("What to look at")]
    assert all(f"[{name}](#{name})" in overview for name in STUDIES)
    # the fast runs show their papers' effects where the fast preset does (learned-rewards, preprocessing, skills)
    for name in ("learned-rewards", "preprocessing", "irrl-skills"):
        assert [r for r in overview.splitlines() if f"[{name}]" in r][0].endswith("| pass |"), name
    rec = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert set(rec["seconds"]) == set(STUDIES) and rec["effects"]["preprocessing"]["holds"] is True
    assert (tmp_path / "demo" / "learned-rewards" / "demo.log").is_file()
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
    assert page.index("<h2 id='overview'>") < page.index("<h2 id='learned-rewards'>")
    for name in ("learned-rewards", "preprocessing", "irrl-digits", "irrl-skills", "ptgm", "atari", "coinrun"):
        assert f"<h2 id='{name}'>" in page
    assert "ptgm/figures/subtasks.png" in page


def test_demo_uses_sklearn_digits_when_mnist_is_absent(monkeypatch, tmp_path):
    from rewardlab.studies import STUDIES

    monkeypatch.setenv("REWARDLAB_MNIST_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert STUDIES["irrl-digits"].demo_overrides() == ["data.digits=sklearn"]


def test_demo_list_only_and_bad_names(cli):
    from rewardlab.studies import STUDIES

    code, out, _ = cli("demo", "--list")
    assert code == 0
    rows = out.strip().splitlines()
    assert [r.split()[0] for r in rows] == [*STUDIES, "total"]
    assert all(" s  " in r for r in rows[:-1])  # each study's measured demo time and the effect it shows
    total = sum(s.demo_seconds for s in STUDIES.values() if s.needs is None or not _raises(s.needs))
    assert f"~{total:>4.0f} s" in rows[-1]
    code, out, _ = cli("demo", "--list", "--only", "irrl-skills,ptgm")
    assert [r.split()[0] for r in out.strip().splitlines()] == ["irrl-skills", "ptgm", "total"]
    code, out, err = cli("demo", "--only", "irrl-skils", "--out", "x")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "irrl-skills" in err


def _raises(fn) -> bool:
    from rewardlab.errors import RewardLabError

    try:
        fn()
    except RewardLabError:
        return True
    return False


def test_every_study_has_a_demo_preset_and_an_effect():
    from rewardlab.core.study import Effect
    from rewardlab.studies import STUDIES

    for name, study in STUDIES.items():
        study.resolve("demo")  # the preset exists and passes the config's checks
        eff = study.effect({}, {})
        assert isinstance(eff, Effect), name
        assert eff.holds is None and eff.ours == "not measured" and eff.look and eff.paper, name
        assert 5 <= study.demo_seconds <= 200, name


def test_a_study_this_machine_cannot_run_is_skipped_with_its_reason(cli, monkeypatch, tmp_path):
    from rewardlab.errors import RewardLabError
    from rewardlab.studies import STUDIES

    def missing():
        raise RewardLabError("CoinRun needs the Qt5 runtime: run `apt-get install -y libqt5gui5`")

    monkeypatch.setattr(STUDIES["coinrun"], "needs", missing)
    code, out, _ = cli("demo", "--only", "coinrun", "--out", tmp_path / "d")
    assert code == 0
    assert out.strip() == "coinrun: skipped, CoinRun needs the Qt5 runtime: run `apt-get install -y libqt5gui5`"
    assert "[skipped here:" in cli("demo", "--list")[1]


def test_a_studys_output_and_library_warnings_go_to_its_log(tmp_path):
    from rewardlab.demo import _captured, _Line

    term = io.StringIO()
    with _Line(term, "[1/1] x", 10.0, 5.0, 0.0) as line, _captured(tmp_path / "demo.log"):
        print("a study's own line")
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
    line.done("3 s: effect")
    assert term.getvalue() == "[1/1] x  3 s: effect\n"  # off a terminal: one line per study, when it ends
    log = (tmp_path / "demo.log").read_text()
    assert "a study's own line" in log and "UserWarning: a library's warning" in log


@pytest.mark.skipif(not os.environ.get("REWARDLAB_MNIST_DIR"), reason="REWARDLAB_MNIST_DIR not set")
@pytest.mark.parametrize("digits", ["mnist", "sklearn"])
def test_irrl_digits_miniature_learns_far_above_chance(digits, tmp_path):
    """The demo's irrl-digits settings: RAM with its internal reward reaches at least 60% test accuracy, on the real
    MNIST and on the stand-in the demo uses without it (the fast preset's 60x60 canvases stay at chance)."""
    from rewardlab.core.study import StudyRun
    from rewardlab.studies import STUDIES

    study = STUDIES["irrl-digits"]
    with StudyRun.open(study, tmp_path / "run", "demo", [f"data.digits={digits}"]) as sr:
        summary = sr.run_all()
    assert summary["test_accuracy"] >= 0.6
    assert study.effect(summary, {}).holds is True


def test_demo_presets_leave_out_the_steps_their_miniature_does_not_need(tmp_path):
    from rewardlab.core.study import StudyRun
    from rewardlab.studies import STUDIES

    for name, step, why in [
        ("learned-rewards", "retrain", "retrain.envs is empty"),
        ("atari", "retrain", "retrain.games is empty"),
        ("coinrun", "preprocess", "preprocess.objectives is empty"),
        ("preprocessing", "mountain-car", "mountain_car.enabled is false"),
    ]:
        study = STUDIES[name]
        sr = StudyRun.open(study, tmp_path / name, "demo", dry_run=True)
        plan = dict(sr.plan(list(study.steps)))
        assert plan[step] == f"skip ({why})", (name, plan)
        assert all(a == "run" for s, a in plan.items() if s != step), (name, plan)


def test_coinrun_effect_needs_ten_coin_transitions_and_the_coin_not_carrying_the_gap():
    from rewardlab.studies import STUDIES

    def summary(auroc, coins, change):
        key = "coin painted out (coin transitions)"
        return {
            "reward_model": {"auroc": {"test": auroc}, "coin_transitions": {"test": coins}},
            "interpret": {"counterfactual": {key: {"change_over_coin_gap": change, "frames": 8}}},
        }

    effect = STUDIES["coinrun"].effect
    assert effect(summary(0.854, 19, -0.01), {}).holds is True  # the demo's figures
    assert "over 19 test coin transitions" in effect(summary(0.854, 19, -0.01), {}).ours
    assert effect(summary(0.854, 3, -0.01), {}).holds is False  # 3 coin transitions measure nothing
    assert effect(summary(0.76, 19, -0.01), {}).holds is False  # not far enough above chance
    assert effect(summary(0.997, 41, -0.8), {}).holds is False  # the coin carries the gap: not the effect
