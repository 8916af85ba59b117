"""``tlf tune`` on Optuna: a pruned study on synthetic data, two processes sharing one study,
failed trials, and bad search spaces and storages refused before any trial runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tlf
from tlf.config import load_config
from tlf.errors import TlfError

optuna = pytest.importorskip("optuna")

DATA = "synthetic:train=16,val=8,size=32,classes=3"
FAST = dict(dataset=DATA, backbone="efficientnet_lite0", policy="transfer", image_size=32, batch_size=8, workers=0,
            augment="none", device="cpu", warmup_epochs=0.0, cache="off")


def test_a_pruned_four_trial_study_writes_every_trial_and_a_best_config(tmp_path: Path) -> None:
    out = tmp_path / "study"
    out.mkdir()
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{out / 'optuna.db'}", direction="maximize")
    for lr in (3e-2, 3e-2, 1e-7, 3e-2):  # the third cannot learn: the median rule stops it after epoch 2
        study.enqueue_trial({"lr": lr})
    result = tlf.tune({"lr": "loguniform(1e-7, 1e-1)"}, trials=4, study="s", out=out, epochs=3, quiet=True, **FAST)

    states = [t["state"] for t in result["trials"]]
    assert states == ["complete", "complete", "pruned", "complete"]
    pruned = result["trials"][2]
    assert pruned["epochs"] == 2 and pruned["params"] == {"lr": 1e-7}
    rows = (Path(pruned["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2, "the pruned run stopped after epoch 2 and kept its run directory"
    for trial in result["trials"]:
        assert (Path(trial["run_dir"]) / "summary.json").is_file()
    best = result["best"]
    assert best["value"] == max(t["value"] for t in result["trials"] if t["state"] == "complete")
    assert {t["metric"] for t in result["trials"]} == {"val_acc"}  # what each value is: the task's criterion
    config = load_config(best["config_file"])  # what 'tlf train --config best.yaml' reads
    assert config.lr == pytest.approx(3e-2) and config.epochs == 3 and config.dataset == DATA
    assert {"tune.json", "trials.csv", "best.yaml", "history.png"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "tune.json").read_text())["counts"] == {"complete": 3, "pruned": 1, "fail": 0,
                                                                      "running": 0, "waiting": 0}


def test_a_failed_trial_is_recorded_with_its_reason_and_the_study_goes_on(tmp_path: Path) -> None:
    space = {"dataset": [DATA, f"folder:{tmp_path / 'missing'}"]}
    out = tmp_path / "study"
    out.mkdir()
    study = optuna.create_study(study_name="f", storage=f"sqlite:///{out / 'optuna.db'}", direction="maximize")
    study.enqueue_trial({"dataset": f"folder:{tmp_path / 'missing'}"})
    study.enqueue_trial({"dataset": DATA})
    fast = {k: v for k, v in FAST.items() if k != "dataset"}
    result = tlf.tune(space, trials=2, study="f", out=out, epochs=1, lr=1e-2, quiet=True, **fast)
    failed, done = result["trials"]
    assert failed["state"] == "fail" and "missing" in failed["error"]
    assert done["state"] == "complete" and result["best"]["number"] == 1


@pytest.mark.parametrize("space, message", [
    ({"lr": "gaussian(0, 1)"}, "unknown distribution 'gaussian' for lr"),
    ({"lr": "loguniform(1e-2, 1e-5)"}, "lr: low 0.01 is above high 1e-05"),
    ({"lr": "loguniform(0, 1)"}, "needs a positive low bound"),
    ({"epochs": "uniform(1, 5)"}, "epochs takes whole numbers"),
    ({"learning_rate": "loguniform(1e-5, 1e-2)"}, "'learning_rate' is not a run setting"),
    ({"policy": ["transfer", "partal:conv5"]}, "unknown policy 'partal'; did you mean 'partial'"),
    ({"backbone": ["resnet5"]}, "unknown backbone 'resnet5'; did you mean"),
    ({"augment": ["basic+cutot"]}, "unknown augmentation 'cutot'"),
    ({"batch_size": [16, 0]}, r"batch_size must be at least 1 and at most 65536, got 0 \(pass --batch-size at least 1 and at most 65536\)$"),
    ({"out": ["a", "b"]}, "out cannot be searched"),
    ({"epochs": 3}, "nothing to search"),
])
def test_a_malformed_space_is_one_error_before_any_trial(tmp_path: Path, space: dict, message: str) -> None:
    with pytest.raises(TlfError, match=message):
        tlf.tune(space, trials=1, out=tmp_path / "study", **FAST)
    assert not (tmp_path / "study").exists()


def test_an_unusable_storage_fails_within_seconds(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(TlfError, match="cannot open study storage sqlite:///"):
        tlf.tune({"lr": [1e-3]}, trials=1, out=tmp_path, storage=f"sqlite:///{tmp_path}/no/such/dir/x.db", **FAST)
    with pytest.raises(TlfError, match="is not a URL"):
        tlf.tune({"lr": [1e-3]}, trials=1, out=tmp_path, storage="localhost:5432", **FAST)
    assert time.monotonic() - start < 30
    assert not (tmp_path / "runs").exists()


def test_an_unreachable_database_server_is_a_clear_error_within_seconds(tmp_path: Path, monkeypatch) -> None:
    import socket

    from tlf.tuning import storage
    monkeypatch.setattr(storage, "CONNECT_TIMEOUT", 2)  # libpq's smallest; 10 s by default
    start = time.monotonic()
    with pytest.raises(TlfError, match=r"^cannot open study storage postgresql://nobody@127\.0\.0\.1:1/x: "
                                       r".*Connection refused") as refused:  # nothing listens on port 1
        tlf.tune({"lr": [1e-3]}, trials=1, out=tmp_path, storage="postgresql://nobody@127.0.0.1:1/x", **FAST)
    assert "server is up and reachable" in refused.value.hint
    with socket.socket() as silent:  # a server that takes the connection and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql://nobody:secret@127.0.0.1:{silent.getsockname()[1]}/x"
        with pytest.raises(TlfError, match=r"^cannot open study storage postgresql://nobody:\*\*\*@127.*timeout") as hung:
            tlf.tune({"lr": [1e-3]}, trials=1, out=tmp_path, storage=url, **FAST)
    assert "secret" not in str(hung.value)
    with pytest.raises(TlfError, match="needs the database driver 'MySQLdb', which is not installed") as driver:
        tlf.tune({"lr": [1e-3]}, trials=1, out=tmp_path, storage="mysql+mysqldb://nobody@127.0.0.1:1/x", **FAST)
    assert driver.value.hint == "pip install mysqlclient"
    assert time.monotonic() - start < 20
    assert not (tmp_path / "runs").exists()


def _tune_process(space: Path, storage: str, out: Path) -> subprocess.Popen:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "tlf", "tune", "--space", str(space), "--trials", "2", "--study", "shared",
            "--storage", storage, "--out", str(out), "--quiet", "--json", "--epochs", "1", "--pruner", "none"]
    for key, value in FAST.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_processes_share_one_study_and_run_disjoint_trials(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("lr: loguniform(1e-4, 1e-1)\nlabel_smoothing: uniform(0.0, 0.2)\n")
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    workers = [_tune_process(space, storage, tmp_path / "out") for _ in range(2)]
    ran = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr
        ran.append({int(line.split()[1]) for line in stderr.splitlines() if line.startswith("trial ")})
    assert len(ran[0]) == len(ran[1]) == 2 and not ran[0] & ran[1]
    study = optuna.load_study(study_name="shared", storage=storage)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3] == sorted(ran[0] | ran[1])
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    run_dirs = {t.user_attrs["run_dir"] for t in study.trials}
    assert len(run_dirs) == 4 and all((Path(d) / "summary.json").is_file() for d in run_dirs)


def test_cli_space_file_errors_are_one_line(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("lr: loguniform(1e-2, 1e-5)\n")
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    done = subprocess.run([sys.executable, "-m", "tlf", "tune", "--space", str(space), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"Error: {space}: lr: low 0.01 is above high 1e-05 "
                                                f"(write loguniform(1e-05, 0.01))"]


def test_a_space_file_maps_to_optuna_distributions(tmp_path: Path) -> None:
    from tlf.tuning.space import load_space
    path = tmp_path / "space.yaml"
    path.write_text("lr: loguniform(1e-5, 1e-2)\nweight_decay: [0, 1e-2]\nepochs: int(2, 6, 2)\n"
                    "batch_size: logint(8, 64)\npolicy: choice(transfer, partial:conv5)\nimage_size: 128\n")
    space = load_space(path)
    d = optuna.distributions
    assert space.distributions == {
        "lr": d.FloatDistribution(1e-5, 1e-2, log=True), "weight_decay": d.CategoricalDistribution([0.0, 0.01]),
        "epochs": d.IntDistribution(2, 6, step=2), "batch_size": d.IntDistribution(8, 64, log=True),
        "policy": d.CategoricalDistribution(["transfer", "partial:conv5"])}
    assert space.fixed == {"image_size": 128}
    with pytest.raises(TlfError, match="search space file .* does not exist"):
        load_space(tmp_path / "missing.yaml")


def test_report_on_a_tune_folder_reads_the_study_again_and_shows_trials_best_config_and_plots(tmp_path: Path) -> None:
    import shutil

    from browser import render
    from click.testing import CliRunner
    from tlf.cli import cli

    out = tmp_path / "study"
    out.mkdir()
    storage = f"sqlite:///{out / 'optuna.db'}"
    study = optuna.create_study(study_name="r", storage=storage, direction="maximize")
    for lr, smoothing in ((3e-2, 0.0), (1e-6, 0.1), (1e-2, 0.2)):
        study.enqueue_trial({"lr": lr, "label_smoothing": smoothing})
    space = {"lr": "loguniform(1e-6, 1e-1)", "label_smoothing": "uniform(0.0, 0.2)"}
    tlf.tune(space, trials=3, study="r", out=out, epochs=1, pruner="none", quiet=True, **FAST)
    d = optuna.distributions  # a trial another worker finished after this process wrote tune.json
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 1e-3, "label_smoothing": 0.05}, value=0.25,
        distributions={"lr": d.FloatDistribution(1e-6, 1e-1, log=True), "label_smoothing": d.FloatDistribution(0.0, 0.2)}))

    def report(folder: Path, *flags: str) -> str:
        done = CliRunner().invoke(cli, ["report", str(folder), *flags], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return done.stdout

    result = json.loads(report(out, "--json"))
    assert [t["number"] for t in result["trials"]] == [0, 1, 2, 3] and result["counts"]["complete"] == 4
    assert all(t["duration"] is not None and t["duration"] >= 0 for t in result["trials"])
    best = max(result["trials"], key=lambda t: t["value"])
    assert result["best"]["number"] == best["number"]
    assert json.loads((out / "tune.json").read_text())["trials"] == result["trials"]  # written again from the study
    assert len((out / "trials.csv").read_text().splitlines()) == 5
    text = report(out)
    assert "study r: 4 trials (4 complete)" in text and f"best: trial {best['number']}" in text
    for flags, message in (([str(tmp_path)], "is reported alone"), (["--out", str(tmp_path)], "--out does not apply")):
        done = CliRunner().invoke(cli, ["report", str(out), *flags])
        assert done.exit_code == 1 and message in done.output and len(done.output.strip().splitlines()) == 1

    assert report(out, "--html").strip().endswith(f"report: {out / 'report.html'}")
    page = render(out / "report.html")
    assert page.console == []
    table = page.dom.split('id="trial-table"')[1].split("</table>")[0]
    assert table.count("<tr") == 5 and table.count('class="this"') == 1
    for number in range(3):  # the trials this folder ran link to their own run pages
        link = f"runs/trial-{number:04d}/report.html"
        assert f'<a href="{link}">trial-{number:04d}</a>' in table and (out / link).is_file()
    best_config = page.dom.split('<pre id="best-config">')[1].split("</pre>")[0]
    assert best_config == (out / "best.yaml").read_text() and "label_smoothing:" in best_config
    images = {value for tag, name, value in page.attributes if tag == "img" and name == "alt"}
    assert {"optimization history", "hyperparameter importance"} <= images
    sources = [value for tag, name, value in page.attributes if name == "src"]
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)

    moved = tmp_path / "moved"  # a copy of the folder, its study storage gone: tune.json as recorded
    shutil.copytree(out, moved)
    (out / "optuna.db").unlink()
    result = json.loads(report(moved, "--json"))
    assert "as tune.json recorded it" in result["note"] and len(result["trials"]) == 4
    report(moved, "--html")
    assert "as tune.json recorded it" in render(moved / "report.html").dom
