"""Wall time of the learned-rewards study end to end: the `fast` preset (target: <= 120 s on 2 cores),
and with --paper also the `paper` preset. Each runs in a fresh temporary run directory."""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks.common import emit


def run_preset(preset: str, out: str | None) -> dict:
    from rewardlab.core.study import StudyRun
    from rewardlab.studies import STUDIES

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        with StudyRun.open(STUDIES["learned-rewards"], out or tmp, preset) as sr:
            summary = sr.run_all()
        wall = time.perf_counter() - t
    return {"wall": wall, "summary": summary}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--paper", action="store_true", help="also time the paper preset (about 15 minutes)")
    p.add_argument("--out", default=None, help="keep the paper run in this directory")
    args = p.parse_args(argv)
    for preset in ["fast"] + (["paper"] if args.paper else []):
        r = run_preset(preset, args.out if preset == "paper" else None)
        s = r["summary"]
        emit(
            "learned_rewards_fast",
            f"{preset}_preset_wall_time",
            r["wall"],
            "s",
            preset=preset,
            target=120 if preset == "fast" else None,
            quality={k: v for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
        )


if __name__ == "__main__":
    main()
