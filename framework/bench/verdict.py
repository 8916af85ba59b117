"""Naming the bottleneck of the training loop from the measured rates (a pure function)."""
from __future__ import annotations

from ..errors import TlfError

STAGES = ("model", "data pipeline", "decode", "host-to-device copy")


def bottleneck(rates: dict[str, float], cached: bool) -> tuple[str, str]:
    """``(stage, one-line verdict)``: the slowest of the stages a training loop chains.

    ``rates`` holds images/s of the model's training step ("model"), the loaders reading the
    decode cache ("data pipeline"), the loaders decoding every image ("decode") and the copy
    to the device ("host-to-device copy"). ``cached``: whether the run would use the decode
    cache; without it the loaders run at the "decode" rate instead of the cached one."""
    missing = [s for s in STAGES if not rates.get(s, 0) > 0]
    if missing:
        raise TlfError(f"no rate measured for {', '.join(missing)}", hint="measure every stage before a verdict")
    stages = {"model": rates["model"], "host-to-device copy": rates["host-to-device copy"]}
    data = "data pipeline" if cached else "decode"
    stages[data] = rates[data]
    (name, rate), (second, next_rate) = sorted(stages.items(), key=lambda item: item[1])[:2]
    line = f"bottleneck: {name} at {rate:.0f} images/s ({next_rate / rate:.1f}x below the {second}, {next_rate:.0f} images/s)"
    if not cached and rates["data pipeline"] > rates["decode"]:
        line += f"; the decode cache would feed {rates['data pipeline']:.0f} images/s"
    return name, line
