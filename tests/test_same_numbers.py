"""A seeded ``tlf train`` writes the same metrics.jsonl rows as it did when these were recorded.

The rows below were written by the commands in ``COMMANDS`` (tiny settings: 36 generated
32 px images, CPU, one thread) on the loop before it was rebuilt on callbacks (36e513d); every
loss and accuracy must stay equal to 1e-6, so a refactor of the loop cannot change a run.

A fine-tuned run with AdamW depends on the CPU's kernels: AdamW's first steps move every weight
by about the learning rate whatever the size of its gradient, so the last-bit differences
between kernels (AVX-512 on one machine, AVX2 on another) flip near-zero gradients into visibly
different runs. ``partial`` therefore has the old loop's rows of each CPU kind it ran on, and a
run must equal one of them; ``partial-sgd``, whose rows are the same on every CPU, guards it too.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tlf.cli import cli


TINY = ["--dataset", "synthetic:train=12,val=4,size=32,classes=3", "--epochs", "3", "--seed", "0",
        "--image-size", "32", "--batch-size", "8", "--workers", "0", "--device", "cpu", "--quiet"]
COMMANDS = {"transfer": [], "partial": ["--policy", "partial:conv5"],
            "partial-sgd": ["--policy", "partial:conv5", "--optimizer", "sgd"], "ema": ["--ema", "0.99"]}
KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "ema_val_loss", "ema_val_acc", "lr")

# recorded before the change (see the module docstring): each variant's rows, on each CPU kind where they differ
RECORDED = {
    'ema': [[
        {'train_loss': 1.115104079246521, 'train_acc': 0.34375, 'val_loss': 1.1173277695973713, 'val_acc': 0.3333333333333333, 'ema_val_loss': 1.1403647263844807, 'ema_val_acc': 0.25, 'lr': 0.0008},
        {'train_loss': 1.06066432595253, 'train_acc': 0.4375, 'val_loss': 1.0740563869476318, 'val_acc': 0.5, 'ema_val_loss': 1.1382702191670735, 'ema_val_acc': 0.25, 'lr': 0.000691341716182545},
        {'train_loss': 1.0173314958810806, 'train_acc': 0.65625, 'val_loss': 1.0624817212422688, 'val_acc': 0.5, 'ema_val_loss': 1.135249137878418, 'ema_val_acc': 0.25, 'lr': 3.806023374435663e-05},
    ]],
    'partial': [[  # an Intel Xeon (AVX-512)
        {'train_loss': 1.0869733393192291, 'train_acc': 0.375, 'val_loss': 1.0930489699045818, 'val_acc': 0.5, 'lr': 0.0024000000000000002},
        {'train_loss': 0.9745298326015472, 'train_acc': 0.5625, 'val_loss': 1.0479207038879395, 'val_acc': 0.6666666666666666, 'lr': 0.002074025148547635},
        {'train_loss': 0.8553860783576965, 'train_acc': 0.6875, 'val_loss': 1.051989237467448, 'val_acc': 0.5833333333333334, 'lr': 0.0001141807012330699},
    ], [  # an AMD EPYC (AVX2)
        {'train_loss': 1.086254820227623, 'train_acc': 0.375, 'val_loss': 1.0937062899271648, 'val_acc': 0.5, 'lr': 0.0024000000000000002},
        {'train_loss': 0.9837625473737717, 'train_acc': 0.53125, 'val_loss': 1.046228567759196, 'val_acc': 0.5, 'lr': 0.002074025148547635},
        {'train_loss': 0.8650463819503784, 'train_acc': 0.6875, 'val_loss': 1.0533051490783691, 'val_acc': 0.5833333333333334, 'lr': 0.0001141807012330699},
    ]],
    'partial-sgd': [[
        {'train_loss': 1.1099957525730133, 'train_acc': 0.34375, 'val_loss': 1.115441083908081, 'val_acc': 0.4166666666666667, 'lr': 0.0024000000000000002},
        {'train_loss': 1.054187998175621, 'train_acc': 0.375, 'val_loss': 1.073785940806071, 'val_acc': 0.5, 'lr': 0.002074025148547635},
        {'train_loss': 1.0432765930891037, 'train_acc': 0.4375, 'val_loss': 1.0824368000030518, 'val_acc': 0.4166666666666667, 'lr': 0.0001141807012330699},
    ]],
    'transfer': [[
        {'train_loss': 1.115104079246521, 'train_acc': 0.34375, 'val_loss': 1.1173277695973713, 'val_acc': 0.3333333333333333, 'lr': 0.0008},
        {'train_loss': 1.06066432595253, 'train_acc': 0.4375, 'val_loss': 1.0740563869476318, 'val_acc': 0.5, 'lr': 0.000691341716182545},
        {'train_loss': 1.0173314958810806, 'train_acc': 0.65625, 'val_loss': 1.0624817212422688, 'val_acc': 0.5, 'lr': 3.806023374435663e-05},
    ]],
}


def run_rows(tmp_path, extra: list[str]) -> list[dict]:
    result = CliRunner().invoke(cli, ["train", *TINY, "--out", str(tmp_path), *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def same_rows(got: list[dict], want: list[dict]) -> bool:
    """The same keys in every row, and every value equal to 1e-6."""
    return ([sorted(r) for r in got] == [sorted(r) for r in want]
            and all(row[k] == pytest.approx(v, abs=1e-6) for row, w in zip(got, want) for k, v in w.items()))


@pytest.mark.parametrize("variant", sorted(COMMANDS))
def test_seeded_run_writes_the_recorded_rows(tmp_path, variant):
    rows = run_rows(tmp_path, COMMANDS[variant])
    got = [{k: r[k] for k in KEYS if k in r} for r in rows]
    assert any(same_rows(got, want) for want in RECORDED[variant]), (variant, got)
