"""Shared helpers for benchmarks: JSON-line output, machine description, timing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Any, Callable


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def emit(benchmark: str, metric: str, value: float, unit: str, **config: Any) -> None:
    """Print one JSON line."""
    print(
        json.dumps(
            {
                "benchmark": benchmark,
                "metric": metric,
                "value": value,
                "unit": unit,
                "config": {**config, "machine": machine()},
            }
        ),
        flush=True,
    )


def median_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
