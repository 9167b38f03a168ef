"""Run benchmarks: `python -m benchmarks` (all) or `python -m benchmarks NAME [args...]`."""

from __future__ import annotations

import importlib
import sys

NAMES = [
    "maze_env",
    "learned_rewards_fast",
    "preprocessing",
    "irrl_digits",
    "irrl_skills",
    "ptgm",
    "sweep",
    "atari",
    "coinrun",
    "compare",
    "demo",
    "device",
]


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__ + "\nbenchmarks: " + ", ".join(NAMES))
        return 0
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
        if name not in NAMES:
            print(f"unknown benchmark '{name}'; choose one of {', '.join(NAMES)}", file=sys.stderr)
            return 2
        importlib.import_module(f"benchmarks.{name}").main(rest)
        return 0
    for name in NAMES:
        importlib.import_module(f"benchmarks.{name}").main([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
