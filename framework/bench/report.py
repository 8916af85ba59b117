"""``tlf bench``'s outputs: a markdown table of the measurements and the JSON of them."""
from __future__ import annotations

import json
from pathlib import Path

from ..safe_files import atomic_write

FACTS = (("device", "device"), ("device name", "device_name"), ("CPU", "cpu"), ("cores", "cores"), ("load (1 min)", "load_1min"),
         ("torch", "torch"), ("CUDA", "cuda"), ("driver", "driver"))


def markdown(result: dict) -> str:
    """The machine's facts, then per backbone a table of images/s (median, min, max, rounds), its ratios and verdict."""
    machine = result["machine"]
    lines = ["| machine | |", "|---|---|"]
    lines += [f"| {label} | {machine[key]} |" for label, key in FACTS if machine.get(key) is not None]
    for entry in result["results"]:
        lines += ["", f"### {entry['backbone']} at {entry['image_size']} px, batch "
                      f"{result['settings']['batch_size']}, loader workers: {result['settings']['workers']}", "",
                  "| measurement | images/s (median) | min | max | rounds |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {m['median']:.1f} | {m['min']:.1f} | {m['max']:.1f} | {m['rounds']} |"
                  for name, m in entry["measurements"].items()]
        lines += ["", *[f"- {name}: {value:.2f}" for name, value in entry["ratios"].items()], f"- {entry['verdict']}"]
    return "\n".join(lines) + "\n"


def write(result: dict, out: Path) -> Path:
    """``bench.md`` and ``bench.json`` in ``out``; returns the markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "bench.json", lambda f: json.dump(result, f, indent=2))
    atomic_write(out / "bench.md", lambda f: f.write(markdown(result)))
    return out / "bench.md"
