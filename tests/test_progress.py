"""Progress in plain output (CI, nohup, a file): timestamped lines, every phase's start and end,
a steady heartbeat with the time left in the phase and in the whole run."""
from __future__ import annotations

import re
import time

from tlf import messages
from tlf.engine.progress import Reporter

STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


def test_an_epoch_says_when_it_starts_where_it_is_and_when_it_ends(capsys):
    report = Reporter(heartbeat=0.0)  # a line after every batch but the last
    report.plan(2, 2, 4, ("conv1", "conv2", "conv3", "conv4"))
    for epoch in range(2):
        with report.epoch(f"epoch {epoch + 1}/2", 4, epoch, 2) as advance:
            for _ in range(4):
                time.sleep(0.01)
                advance(8)
    lines = capsys.readouterr().err.splitlines()
    assert all(STAMP.match(line) for line in lines), lines
    assert lines[0].endswith("plan: 2 epoch(s) of 4 training batches, conv1-conv4 frozen; the time left is shown "
                             "from the first batches on")
    assert lines[1].endswith("epoch 1/2: started, 4 batches")
    assert re.search(r"epoch 1/2: 1/4 batches, \d+ images/s, ~\d+ s left; run ~\d+ s left$", lines[2])
    assert re.search(r"epoch 1/2: 4 batches in \d+ s \(\d+ images/s\)$", lines[5])
    assert re.search(r"epoch 2/2: 3/4 batches, .*; run ~\d+ s left$", lines[9])  # from epoch 1's time


def test_a_step_without_progress_of_its_own_beats_while_it_runs(capsys):
    with messages.scope():
        Reporter(heartbeat=0.05)
        with messages.phase("export: converting"):
            time.sleep(0.5)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("export: converting: started")
    assert re.search(r"export: converting: done in \d+ s$", lines[-1])
    assert any(re.search(r"export: converting: still running, \d+ s so far$", line) for line in lines[1:-1])


def test_outside_a_run_a_step_that_fails_at_once_leaves_the_error_alone(capsys):
    try:
        with messages.phase("export: converting"):
            raise ValueError("bad")
    except ValueError:
        pass
    assert capsys.readouterr().err == ""


def test_quiet_says_nothing(capsys):
    report = Reporter(quiet=True, heartbeat=0.0)
    with report.epoch("epoch 1/1", 2, 0, 1) as advance:
        advance(1)
        advance(1)
    with report.phase("export"):
        pass
    assert capsys.readouterr().err == ""


def test_a_data_fact_is_shown_once_per_process(capsys):
    for _ in range(2):
        messages.notice("images: not cached (they are already decoded in memory)", once=True)
    assert capsys.readouterr().err.count("images: not cached") == 1


def test_a_fact_keyed_once_is_not_shown_again_in_other_words(capsys):
    messages.notice("images: decoded once into a cache on disk (0.37 GiB)", once="cache disk")
    messages.notice("images: decoded once into a cache on disk (a decode cache exists)", once="cache disk")
    assert capsys.readouterr().err.count("images: ") == 1
