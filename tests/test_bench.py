"""``tlf bench``: its measurements' shape on tiny settings, the verdict on fabricated rates,
the interleaved timing, and one-line errors for bad input."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from tlf.bench.images import write_images
from tlf.bench.timing import Probe, measure
from tlf.bench.verdict import bottleneck
from tlf.cli import cli
from tlf.errors import TlfError

TINY = ["--backbone", "resnet18", "--image-size", "32", "--batch-size", "4", "--workers", "0"]
MEASURED = ("model train/fp32", "model frozen/fp32", "model train/bf16", "model frozen/bf16", "data pipeline",
            "decode", "host-to-device copy", "tlf loop", "naive data", "naive loop")
DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
               not torch.cuda.is_available(), reason="needs CUDA")])]


def bench_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["bench", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("device", DEVICES)
def test_bench_measures_every_stage_and_names_the_bottleneck(tmp_path, device):
    out = tmp_path / "out"
    code, output = bench_cli(*TINY, "--device", device, "--seconds", "2", "--json", "--out", str(out))
    assert code == 0, output
    result = json.loads(output.splitlines()[-1])
    assert result["machine"]["device"] == device and result["machine"]["cores"] >= 1
    assert result["machine"]["torch"] == torch.__version__ and result["machine"]["cpu"]
    (entry,) = result["results"]
    assert entry["backbone"] == "resnet18" and entry["image_size"] == 32
    if device == "cpu":
        assert set(entry["measurements"]) == set(MEASURED)
    for m in entry["measurements"].values():
        assert m["rounds"] >= 1 and 0 < m["min"] <= m["median"] <= m["max"]
    assert set(entry["ratios"]) == {"tlf loop / model ceiling", "tlf loop / naive loop", "tlf data / naive data"}
    assert entry["bottleneck"] in ("model", "data pipeline", "decode", "host-to-device copy")
    assert entry["verdict"].startswith(f"bottleneck: {entry['bottleneck']} at ")
    assert json.loads((out / "bench.json").read_text()) == result
    table = (out / "bench.md").read_text()
    assert "| model train/fp32 |" in table and entry["verdict"] in table


def test_bench_reads_a_given_folder(tmp_path):
    data = write_images(tmp_path / "photos", 30, 40)
    code, output = bench_cli(*TINY, "--device", "cpu", "--seconds", "3", "--data", str(data), "--json")
    assert code == 0, output
    result = json.loads(output.splitlines()[-1])
    assert result["settings"]["data"] == str(data)
    assert result["results"][0]["measurements"]["decode"]["rounds"] >= 1


def one_line_error(args: list[str]) -> str:
    code, output = bench_cli(*args)
    lines = output.strip().splitlines()  # progress notices ("decode cache: ...") may come first
    errors = [line for line in lines if line.startswith("Error: ")]
    assert code != 0 and errors == lines[-1:], output
    assert "Traceback" not in output
    return lines[-1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_one_line():
    assert "CUDA is not available" in one_line_error([*TINY, "--device", "cuda"])


def test_unknown_backbone_names_close_matches():
    line = one_line_error(["--backbone", "resnet1B", "--device", "cpu"])
    assert "resnet1B" in line and "resnet18" in line


def test_folder_without_images_is_one_line(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    assert "without readable images" in one_line_error([*TINY, "--device", "cpu", "--data", str(tmp_path)])


@pytest.mark.parametrize("seconds, says", [("0", "--seconds must be positive"), ("0.5", "too short to measure")])
def test_budget_too_small_is_one_line(seconds, says):
    assert says in one_line_error([*TINY, "--device", "cpu", "--seconds", seconds])


RATES = {"model": 100.0, "data pipeline": 400.0, "decode": 50.0, "host-to-device copy": 1000.0}


@pytest.mark.parametrize("rates, cached, stage", [
    (RATES, True, "model"),
    (RATES, False, "decode"),
    ({**RATES, "data pipeline": 80.0}, True, "data pipeline"),
    ({**RATES, "host-to-device copy": 60.0}, True, "host-to-device copy"),
])
def test_verdict_names_the_slowest_stage_the_loop_uses(rates, cached, stage):
    name, line = bottleneck(rates, cached)
    assert name == stage and line.startswith(f"bottleneck: {stage} at ")


def test_verdict_without_the_cache_says_what_the_cache_would_give():
    assert bottleneck(RATES, cached=False)[1] == ("bottleneck: decode at 50 images/s (2.0x below the model, "
                                                  "100 images/s); the decode cache would feed 400 images/s")
    with pytest.raises(TlfError, match="no rate measured for decode"):
        bottleneck({**RATES, "decode": 0.0}, cached=True)


def test_measure_interleaves_the_probes_and_counts_no_warm_up():
    calls = []
    probes = [Probe(name, lambda name=name: calls.append(name) or 10) for name in ("a", "b", "c")]
    rates = measure(probes, 0.05)
    assert calls[:6] == ["a", "b", "c"] * 2
    assert len(calls) % 3 == 0 and rates["a"]["rounds"] == rates["c"]["rounds"] == len(calls) // 3 - 1


def test_measure_counts_one_turn_at_least_whatever_the_budget():
    probes = [Probe(name, lambda: 10) for name in ("a", "b")]
    assert {name: r["rounds"] for name, r in measure(probes, 0.0).items()} == {"a": 1, "b": 1}
