"""The multi-label task end to end on generated label sets (``synthetic-multilabel``): metrics,
thresholds, the task chosen from the data, mixing and pos_weight, then train (transfer with the
feature cache; a live policy with mixup), evaluate, report, export and predict, whose label sets
must equal evaluate's."""
from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import tlf
from tlf.adaptive_defaults import MAX_EPOCHS_FACTOR, adapt
from tlf.audit.run import audit
from tlf.augment.mixing import MixUp
from tlf.cli import cli
from tlf.data import DatasetRequest, load_dataset
from tlf.engine.imbalance import class_weights
from tlf.errors import TlfError
from tlf.plan import Resolution, plan_run
from tlf.plugins.tasks.multi_label import MultiLabel
from tlf.policies import build_policy
from tlf.plugins.tasks.multi_label_metrics import average_precision, tune_thresholds
from tlf.runtime import OnnxClassifier

DATA = "synthetic-multilabel:train=48,val=16,size=32"
FAST = dict(dataset=DATA, image_size=32, batch_size=16, workers=0, device="cpu", seed=0, quiet=True)


def test_average_precision_is_the_step_definition_with_ties_as_one_threshold():
    scores = np.array([[0.9], [0.8], [0.7], [0.6], [0.6]])
    truth = np.array([[1], [0], [1], [1], [0]])
    # thresholds 0.9 (P 1, R 1/3), 0.7 (P 2/3, R 2/3), 0.6 tie (P 3/5, R 1): sklearn's average_precision_score
    assert average_precision(scores, truth)[0] == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 5)
    assert np.isnan(average_precision(scores, np.zeros_like(truth))[0])  # no positives: undefined, left out of mAP


def test_thresholds_maximise_each_class_f1_halfway_to_the_next_score():
    probs = np.array([[0.9, 0.2], [0.7, 0.1], [0.4, 0.3], [0.2, 0.05]])
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    # class 0: keeping 0.9 and 0.7 gives F1 1; halfway between 0.7 and 0.4. Class 1 has no positives: 0.5
    assert tune_thresholds(probs, truth) == [pytest.approx(0.55), 0.5]


def test_the_data_picks_the_task_and_a_mismatch_is_one_line(tmp_path):
    splits = load_dataset(DATA, DatasetRequest())
    assert splits.multi_label and splits.train.labels.shape == (48, 4)
    with pytest.raises(TlfError, match="--task single-label does not fit .* label sets"):
        tlf.train(task="single-label", epochs=1, out=str(tmp_path), **FAST)
    with pytest.raises(TlfError, match="--task multi-label does not fit .* one class per image"):
        tlf.train(**{**FAST, "dataset": "synthetic:train=4,val=2,size=32"}, task="multi-label", epochs=1,
                  out=str(tmp_path))


def test_label_set_data_is_refused_where_one_label_per_image_is_needed(tmp_path):
    with pytest.raises(TlfError, match="tlf audit checks one label per image"):
        audit(out=str(tmp_path), quiet=True, **{k: v for k, v in FAST.items() if k != "quiet"})
    with pytest.raises(TlfError, match="--sampler balanced draws one class per image"):
        tlf.train(sampler="balanced", epochs=1, out=str(tmp_path), **FAST)
    relabel = tmp_path / "relabel.csv"
    relabel.write_text("x.png,circle\n")
    with pytest.raises(TlfError, match="--relabel gives an image one class; .* is multi-label"):
        tlf.train(relabel=str(relabel), epochs=1, out=str(tmp_path), **FAST)


def test_exclude_edits_label_sets(tmp_path):
    from tlf.data.edits import apply_edits
    splits = load_dataset("synthetic-multilabel:12", DatasetRequest())  # a name without commas (a CSV's)
    exclude = tmp_path / "exclude.txt"
    exclude.write_text(f"{splits.train.key(0)}\n{splits.val.key(3)}\n")
    edited = apply_edits(splits, str(exclude), None)
    assert edited.train.labels.tolist() == splits.train.labels[1:].tolist() and len(edited.val) == 39


def test_mixing_keeps_label_sets_and_auto_weights_are_negatives_over_positives():
    y = torch.tensor([[1, 0, 1], [0, 1, 1]])
    _, mixed = MixUp(0.4, 3, seed=0)(torch.zeros(2, 3, 4, 4), y)
    assert mixed[:, 2].tolist() == pytest.approx([1.0, 1.0])  # in both sets: stays 1
    assert mixed[:, 0].sum().item() == pytest.approx(1.0)  # one image's label, shared by the mix
    labels = np.array([[1, 0], [1, 1], [0, 0], [1, 0]])
    assert class_weights("auto", labels, ["a", "b"]).tolist() == [pytest.approx(1 / 3), 3.0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A transfer run on the feature cache, evaluated (report) and exported."""
    out = tmp_path_factory.mktemp("multilabel")
    run = tlf.train(policy="transfer", epochs=6, lr=3e-3, out=str(out), **FAST)
    result = CliRunner().invoke(cli, ["evaluate", str(run.directory), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    exported = CliRunner().invoke(cli, ["export", str(run.directory)])
    assert exported.exit_code == 0, exported.output
    return run, result.output, exported.output


def test_training_scores_map_and_stores_thresholds(trained):
    run, _, _ = trained
    summary = run.summary
    assert summary["task"] == "multi-label" and summary["best_metric"] == "val_map" and summary["feature_cache"]
    assert summary["defaults_chosen"][0]["setting"] == "task" and summary["defaults_chosen"][0]["value"] == "multi-label"
    assert len(summary["thresholds"]) == 4 and all(0 < t < 1 for t in summary["thresholds"])
    rows = [json.loads(line) for line in (run.directory / "metrics.jsonl").read_text().splitlines()]
    assert {"train_map", "val_map", "val_micro_f1", "val_macro_f1", "val_acc"} <= set(rows[-1])
    assert summary["best_val_accuracy"] == max(r["val_map"] for r in rows)


def test_evaluate_writes_per_class_ap_curves_and_label_sets(trained):
    run, output, _ = trained
    evaluation = json.loads((run.directory / "evaluation.json").read_text())
    assert evaluation["thresholds"] == run.summary["thresholds"]
    assert [r["class"] for r in evaluation["per_class"]] == ["circle", "square", "triangle", "star"]
    assert "mAP" in output and "exact-set accuracy" in output and "pr_curves.png" in output
    for name in ("pr_curves.png", "most_wrong.png", "predictions.csv"):
        assert (run.directory / name).is_file()
    with open(run.directory / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 and {"true", "predicted", "p_circle", "p_star"} <= set(rows[0])
    truth = load_dataset(DATA, DatasetRequest()).val.labels
    classes = [r["class"] for r in evaluation["per_class"]]
    assert [set(r["true"].split()) for r in rows] == [{c for c, on in zip(classes, t) if on} for t in truth]
    page = (run.directory / "report.html").read_text()
    assert 'id="per-class"' in page and 'id="most-wrong"' in page and "confusion" not in page.split("<nav>")[1][:400]


def test_export_and_predict_give_evaluate_label_sets(trained, tmp_path):
    run, _, exported = trained
    assert "label-set agreement 100.00%" in exported
    model = OnnxClassifier(run.directory / "model.onnx")
    assert model.task == "multi-label" and model.thresholds == pytest.approx(run.summary["thresholds"])
    assert model.metadata["output"] == "sigmoid"  # the task's activation: what any runtime decodes by
    splits = load_dataset(DATA, DatasetRequest())
    paths = []
    for i in range(len(splits.val)):
        paths.append(tmp_path / f"{i:02d}.png")
        Image.fromarray(splits.val.load(i)).save(paths[-1])
    result = CliRunner().invoke(cli, ["predict", str(run.directory), str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    predicted = [set(json.loads(line)["labels"]) for line in result.stdout.splitlines()]
    with open(run.directory / "predictions.csv") as f:
        evaluated = [set(r["predicted"].split()) for r in csv.DictReader(f)]
    assert predicted == evaluated  # the exported model's label sets are torch's
    everything = model.predict(paths[:2], threshold=0.0)  # threshold= overrides every class's
    assert [len(p.labels) for p in everything] == [4, 4] and all(p.multi_label for p in everything)
    nothing = CliRunner().invoke(cli, ["predict", str(run.directory), str(paths[0]), "--json", "--threshold", "1"])
    assert json.loads(nothing.stdout)["labels"] == []  # and so does --threshold


def test_a_live_policy_with_mixup_trains_on_label_sets_and_tensorboard_gets_map(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    asked = []  # what a tuner's pruner is given: the task's criterion (mAP, EMA's when better), not val_acc
    run = tlf.train(policy="partial:conv5", augment="mixup", epochs=1, out=str(tmp_path), class_weights="auto",
                    loggers="tensorboard", ema=0.9, lr="auto", should_stop=lambda epoch, row: asked.append(row), **FAST)
    assert run.summary["feature_cache"] is False and run.summary["task"] == "multi-label"
    rows = [json.loads(line) for line in (run.directory / "metrics.jsonl").read_text().splitlines()]
    assert run.summary["lr_find"] is not None and "ema_val_map" in rows[-1]  # --lr auto and EMA on label sets
    assert asked[-1]["criterion"] == max(rows[-1]["val_map"], rows[-1]["ema_val_map"]) == run.summary["best_val_accuracy"]
    assert run.summary["class_weights"] is not None and np.isfinite(run.summary["best_val_accuracy"])
    events = EventAccumulator(str(run.directory))
    events.Reload()
    assert {"epoch/val_map", "epoch/val_micro_f1", "epoch/train_map"} <= set(events.Tags()["scalars"])
    assert not events.Tags()["images"] or "val/confusion" not in events.Tags()["images"]  # no confusion matrix


def test_serve_answers_the_whole_label_set_whatever_top_k(trained, tmp_path):
    import onnx
    from starlette.testclient import TestClient

    from serve_helpers import encoded
    from tlf.serve.app import create_app
    from tlf.serve.settings import ServeSettings
    run, _, _ = trained
    proto = onnx.load(str(run.directory / "model.onnx"))
    for prop in proto.metadata_props:
        if prop.key == "tlf.thresholds":
            prop.value = json.dumps([0.0] * 4)  # every class reaches its threshold
    onnx.save(proto, str(tmp_path / "all.onnx"))
    image = load_dataset(DATA, DatasetRequest()).val.load(0)
    app = create_app(ServeSettings(models=(str(tmp_path / "all.onnx"),), access_log=False))
    with TestClient(app) as client:
        body = client.post("/v1/predict?top_k=1", files=[("file", ("0.png", encoded(image), "image/png"))]).json()
    (answer,) = body["predictions"]
    assert sorted(answer["labels"]) == sorted(["circle", "square", "triangle", "star"]) and answer["multi_label"]


def test_test_time_augmentation_averages_each_class_probability(trained):
    from tlf.models.tta import FlipAverage
    net = torch.nn.Conv2d(3, 4, 1)
    model = torch.nn.Sequential(net, torch.nn.Flatten(), torch.nn.LazyLinear(4))
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        model(x)
        averaged = FlipAverage(model, "sigmoid")(x)
        want = (torch.sigmoid(model(x)) + torch.sigmoid(model(torch.flip(x, dims=[3])))) / 2
    assert torch.allclose(torch.sigmoid(averaged), want, atol=1e-6)
    run, _, _ = trained
    flipped = tlf.evaluate(run.directory, tta="flip", write=False, device="cpu", workers=0)
    assert flipped["tta"] == "flip" and 0 < flipped["map"] <= 1 and len(flipped["per_class"]) == 4


def test_under_torchrun_the_sums_cover_both_ranks_and_evaluate_tunes_the_thresholds(tmp_path):
    """Two gloo processes: the epoch's mAP and F1 come from both ranks' summed figures; the run has
    no validation logits in one process, so its first evaluation tunes and stores the thresholds."""
    import os
    import subprocess
    import sys
    args = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tlf", "train",
            "--out", str(tmp_path), "--name", "ddp", "--epochs", "1", "--quiet", "--no-report", "--dataset", DATA,
            "--image-size", "32", "--batch-size", "8", "--workers", "0", "--device", "cpu"]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "ddp"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["task"] == "multi-label" and summary["thresholds"] is None
    refused = CliRunner().invoke(cli, ["export", str(run_dir)])  # 0.5 everywhere would be a silent guess
    assert refused.exit_code != 0 and "no thresholds tuned on validation yet" in refused.output
    (row,) = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    report = tlf.evaluate(run_dir, device="cpu", workers=0)
    with open(run_dir / "predictions.csv") as f:
        probs = np.array([[float(r[f"p_{c}"]) for c in ("circle", "square", "triangle", "star")] for r in csv.DictReader(f)])
    predicted, truth = probs > 0.5, load_dataset(DATA, DatasetRequest()).val.labels > 0
    tp, wrong = (predicted & truth).sum(), (predicted != truth).sum()
    assert row["val_micro_f1"] == pytest.approx(2 * tp / (2 * tp + wrong))  # all 16 images, not one rank's 8
    stored = json.loads((run_dir / "summary.json").read_text())["thresholds"]
    assert stored == report["thresholds"] and len(stored) == 4  # tuned by the evaluation, kept with the run


@pytest.mark.parametrize("policy", ["transfer", "partial:conv5"])
def test_a_multi_label_plan_gets_the_tasks_steps_and_a_single_label_plan_resolves_as_before(policy, tmp_path):
    defaults = build_policy(policy).defaults
    steps = MultiLabel.defaults["min_steps"]

    def resolved(dataset: str) -> Resolution:  # 46 optimizer steps an epoch: the flower mosaics at batch 64
        plan = plan_run(tlf.RunConfig(dataset=dataset, policy=policy, out=str(tmp_path)))
        return Resolution(plan).with_task(load_dataset(dataset, DatasetRequest()), defaults).with_data(defaults, 46)

    single = resolved("synthetic:train=4,val=2,size=32")
    assert (single.config.epochs, single.config.label_smoothing, single.config.dropout) == (defaults["epochs"], 0.1, 0.2)
    assert [c.to_dict() for c in single.chosen] == [c.to_dict() for c in adapt(
        dataclasses.replace(single.config, epochs=None, head_lr_scale=None), defaults, 46)[1]]
    assert "multi-label" not in single.chosen[0].why
    multi = resolved(DATA)
    epochs = min(-(-int(steps.value) // 46), MAX_EPOCHS_FACTOR * defaults["epochs"])
    assert multi.config.epochs == epochs > defaults["epochs"]
    (chosen,) = [c for c in multi.chosen if c.setting == "epochs"]
    assert chosen.policy_default == defaults["epochs"] and chosen.why.endswith(f"; multi-label: {steps.why}")
    for setting, usual in (("label_smoothing", 0.1), ("dropout", 0.2)):
        (chosen,) = [c for c in multi.chosen if c.setting == setting]
        stated = MultiLabel.defaults[setting]
        assert getattr(multi.config, setting) == chosen.value == stated.value != usual == chosen.policy_default
        assert chosen.why == f"multi-label: {stated.why}"
    assert single.config.augment == defaults["augment"] and "augment" not in {c.setting for c in single.chosen}
    if defaults["augment"] == "none":  # a frozen backbone's features are cached: no augmentation for either task
        assert multi.config.augment == "none" and "augment" not in {c.setting for c in multi.chosen}
    else:  # a live policy's crops could cut a labelled object out: the task's flip instead
        (chosen,) = [c for c in multi.chosen if c.setting == "augment"]
        stated = MultiLabel.defaults["augment"]
        assert multi.config.augment == chosen.value == stated.value != defaults["augment"] == chosen.policy_default
        assert chosen.why == f"multi-label: {stated.why}"
    given = plan_run(tlf.RunConfig(dataset=DATA, policy=policy, dropout=0.2, augment="basic", out=str(tmp_path)))
    flags = Resolution(given).with_task(load_dataset(DATA, DatasetRequest()), defaults).config
    assert (flags.dropout, flags.augment) == (0.2, "basic")  # a flag wins


def test_a_multi_label_run_records_why_its_epochs_were_raised(tmp_path):
    run = tlf.train(policy="transfer", out=str(tmp_path), **FAST)  # epochs left to the plan
    (chosen,) = [c for c in run.summary["defaults_chosen"] if c["setting"] == "epochs"]
    assert chosen["value"] == run.summary["epochs"] and "multi-label: " in chosen["why"]


class PhotoTags(MultiLabel):
    """A third party's task: the built-in multi-label task under another name."""
    name = "photo-tags"


def test_a_third_party_task_deploys_by_its_activation(tmp_path, monkeypatch):
    from plugin_helpers import registered_specs
    from tlf.specs import TaskSpec
    with registered_specs("tlf-photo-tags") as register:
        register(TaskSpec(name="photo-tags", description="label sets, another name",
                          factory=lambda argument, request: PhotoTags(request)))
        run = tlf.train(policy="transfer", task="photo-tags", epochs=2, out=str(tmp_path), **FAST)
        exported = CliRunner().invoke(cli, ["export", str(run.directory)])
        assert exported.exit_code == 0 and "label-set agreement" in exported.output, exported.output
        model = OnnxClassifier(run.directory / "model.onnx")
        assert (model.task, model.metadata["output"], model.multi_label) == ("photo-tags", "sigmoid", True)
        image = np.asarray(load_dataset(DATA, DatasetRequest()).val.load(0))
        probs = 1.0 / (1.0 + np.exp(-model.logits(model.preprocess(image)[None])[0]))
        (prediction,) = model.predict(image)
        assert set(prediction.labels) == {c for c, p, t in zip(model.classes, probs, model.thresholds) if p >= t}
        monkeypatch.setattr(PhotoTags, "activation", "tanh")
        refused = CliRunner().invoke(cli, ["export", str(run.directory), "--output", str(tmp_path / "tanh.onnx")])
        assert refused.exit_code == 1 and "states activation 'tanh', which no export can name" in refused.output
        assert len(refused.output.strip().splitlines()) == 1 and not (tmp_path / "tanh.onnx").exists()


def test_tune_names_the_multi_label_criterion(tmp_path):
    pytest.importorskip("optuna")
    (tmp_path / "space.yaml").write_text("lr: loguniform(1e-3, 1e-2)\n")
    said = CliRunner().invoke(cli, ["tune", "--space", str(tmp_path / "space.yaml"), "--trials", "1",
                                    "--out", str(tmp_path), "--dataset", DATA, "--policy", "transfer", "--epochs", "1",
                                    "--quiet", "--image-size", "32", "--batch-size", "16", "--workers", "0",
                                    "--device", "cpu"])
    assert said.exit_code == 0, said.output
    (trial,) = json.loads((tmp_path / "tune.json").read_text())["trials"]
    assert trial["metric"] == "val_map" and f"best: trial 0, val_map {trial['value']:.4f}" in said.output
