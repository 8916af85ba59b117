"""Interleaved, repeated timing of several measurements within one time budget.

Each probe runs one round at a time (a few batches) and says how many images it handled;
the probes take turns, so that a change of machine load during the benchmark touches all of
them alike. A warm-up round of each comes first and is counted neither in the figures nor
in the budget.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

MIN_SECONDS = 1.0  # the least budget per backbone: below it the first turn alone would spend it


@dataclass
class Probe:
    name: str
    run: Callable[[], int]  # one round; returns the images it handled
    sync: Callable[[], None] = lambda: None  # waits for the device's queued work (CUDA runs asynchronously)
    rates: list[float] = field(default_factory=list)  # images/s of each counted round
    warmup_s: float = 0.0

    def round(self) -> float:
        """Run one round; its images/s."""
        self.sync()
        start = time.perf_counter()
        images = self.run()
        self.sync()
        return images / max(time.perf_counter() - start, 1e-9)


def summary(rates: list[float]) -> dict:
    """images/s of the rounds: the median, the slowest round (min) and the fastest (max)."""
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "rounds": len(rates)}


def measure(probes: list[Probe], seconds: float) -> dict[str, dict]:
    """Warm each probe up (not counted), then run them in full turns until ``seconds`` have
    passed: at least one turn, so a slow model may overrun a short budget by one turn."""
    for probe in probes:
        began = time.perf_counter()
        probe.round()
        probe.warmup_s = time.perf_counter() - began
    start = time.perf_counter()
    while not probes[0].rates or time.perf_counter() - start < seconds:
        for probe in probes:
            probe.rates.append(probe.round())
    return {p.name: summary(p.rates) for p in probes}


def epoch_round(loader: Any, use: Callable[[Any, Any], None] | None = None) -> Callable[[], int]:
    """A round: one epoch of ``loader`` (a fresh pass, so no batch is prepared outside the
    timed round), each batch given to ``use``."""
    def run() -> int:
        images = 0
        for x, y in loader:
            if use is not None:
                use(x, y)
            images += len(x)
        return images
    return run
