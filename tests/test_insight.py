"""Per-image predictions, error analysis, galleries, Grad-CAM, `tlf explain` and report.html
(checked in headless Chromium), on generated images (CPU, tiny backbone)."""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from browser import render, screenshot
from click.testing import CliRunner
from helpers_models import marked_cams
from imagefiles import marked_square_folder
from PIL import Image

import tlf
from tlf.cli import cli
from tlf.insight.gradcam import grad_cam
from tlf.insight.predictions import Predictions

HTML_CLASS = "<img src=x onerror=alert(1)>"  # a folder name: must be shown, never parsed as HTML
COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), HTML_CLASS: (50, 60, 210)}
FAST = dict(backbone="efficientnet_lite0", image_size=32, batch_size=8, workers=0, augment="none", device="cpu",
            warmup_epochs=0.0)
SECTIONS = ["headline", "training", "confusion", "metrics", "per-class", "top-losses", "confused", "data", "strategy",
            "export", "settings"]  # the answer first, the settings last




def make_folder(root: Path, colours: dict[str, tuple[int, int, int]], train: int, val: int, size: int = 36,
                noise: int = 90) -> Path:
    """train/val class folders of noisy single-colour PNGs (noisy enough for some mistakes)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for name, rgb in colours.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(rgb) + rng.integers(-noise, noise, size=(size, size, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i}.png")
    return root


def run_cli(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """A trained run, evaluated by `tlf evaluate` with label errors and JSON lines."""
    data = make_folder(tmp_path_factory.mktemp("colours"), COLOURS, train=12, val=8)
    run = tlf.train(dataset=f"folder:{data}", policy="transfer", epochs=1, lr=3e-3, quiet=True,
                    out=str(tmp_path_factory.mktemp("runs")), **FAST)
    run_cli("evaluate", str(run.directory), "--device", "cpu", "--json", "--label-errors", "0.0", "--top-losses", "5")
    return run.directory


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


# ---- per-image results and error analysis ------------------------------------------------

def test_predictions_from_logits():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 2.5, 0.0], [0.0, 0.0, 1.0], [4.0, 0.0, 0.0]])
    labels = np.array([0, 2, 2, 2, 1])
    preds = Predictions.from_logits(logits, labels, [f"i{k}" for k in range(5)], ["a", "b", "c"])
    assert np.allclose(preds.probabilities.sum(axis=1), 1)
    assert np.allclose(preds.losses, -np.log(preds.probabilities[np.arange(5), labels]))
    assert preds.top_losses(2) == [4, 1]  # the most confident mistakes cost most
    assert preds.most_confused() == [{"true": "c", "predicted": "b", "count": 2},
                                     {"true": "b", "predicted": "a", "count": 1}]
    assert [r["accuracy"] for r in preds.per_class_accuracy()] == [1.0, 0.0, pytest.approx(1 / 3)]
    assert preds.confident_mistake("c", "b") == 1
    assert [r["index"] for r in preds.likely_label_errors(0.9)] == [4, 1]  # p 0.96 and 0.91; index 2 is 0.86


def test_evaluate_writes_predictions_matching_its_accuracy(evaluated):
    report = json.loads((evaluated / "evaluation.json").read_text())
    rows = read_csv(evaluated / "predictions.csv")
    assert len(rows) == report["images"] == 24
    assert sum(int(r["correct"]) for r in rows) / len(rows) == pytest.approx(report["accuracy"])
    assert set(rows[0]) == {"index", "image", "true", "predicted", "correct", "loss",
                            *(f"p_{c}" for c in sorted(COLOURS))}
    assert all(Path(r["image"]).is_file() for r in rows)
    assert sum(float(rows[0][f"p_{c}"]) for c in COLOURS) == pytest.approx(1, abs=1e-4)
    lines = (evaluated / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["image"] for line in lines] == [r["image"] for r in rows]
    # the top losses are exactly the highest losses of predictions.csv
    by_loss = sorted(rows, key=lambda r: -float(r["loss"]))[:5]
    assert [r["image"] for r in report["top_losses"]] == [r["image"] for r in by_loss]
    assert sum(p["count"] for p in report["most_confused"]) == sum(1 - int(r["correct"]) for r in rows)
    errors = read_csv(evaluated / "label_errors.csv")
    assert len(errors) == report["label_errors"] == sum(1 - int(r["correct"]) for r in rows)
    assert report["data"]["train_counts"] == dict.fromkeys(sorted(COLOURS), 12)
    assert report["data"]["val_sizes"]["width_max"] == 36
    for name in ("top_losses.png", "confused.png", "confusion.png", "report.html"):
        assert (evaluated / name).stat().st_size > 0


@pytest.mark.parametrize("policy", ["transfer", "partial:conv5", "init"])
def test_end_of_training_evaluation_reuses_the_best_epochs_logits(policy, tmp_path, monkeypatch):
    """`tlf train`'s end-of-run evaluation scores best.pt from the logits its best epoch already
    computed (cached features or not), and they are the ones a fresh `tlf evaluate` computes."""
    data = make_folder(tmp_path / "data", COLOURS, train=6, val=4)
    settings = {**FAST, "epochs": 2, "lr": 3e-3, "quiet": True, "out": str(tmp_path / "runs")}
    run = tlf.train(dataset=f"folder:{data}", policy=policy, **settings)
    assert run.best_val_logits is not None
    fresh = tlf.evaluate(run.directory, device="cpu", write=False)

    import tlf.engine.eval_engine as eval_engine

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the validation images were run through the model again")

    monkeypatch.setattr(eval_engine, "evaluation_logits", no_second_pass)
    reused = tlf.evaluate(run.directory, device="cpu", write=False, logits=run.best_val_logits)
    assert reused["confusion_matrix"] == fresh["confusion_matrix"]
    assert reused["accuracy"] == fresh["accuracy"] == run.summary["best_val_accuracy"]
    shuffled = (run.best_val_logits[0], run.best_val_logits[1].flip(0))  # not the split's order: not used
    with pytest.raises(AssertionError, match="run through the model again"):
        tlf.evaluate(run.directory, device="cpu", write=False, logits=shuffled)


def test_evaluate_table_shows_per_class_accuracy_and_top_losses(evaluated, tmp_path):
    evaluated = Path(shutil.copytree(evaluated, tmp_path / "run"))
    before = (evaluated / "report.html").stat().st_mtime_ns
    result = run_cli("evaluate", str(evaluated), "--device", "cpu", "--no-report", "--top-losses", "3")
    assert "per-class accuracy" in result.stdout and "most often taken for" in result.stdout
    assert "top 3 losses" in result.stdout
    lines = result.stdout.splitlines()
    wrote = next(i for i, line in enumerate(lines) if line.startswith("wrote into "))
    assert "predictions.csv, top_losses.png, confused.png" in lines[wrote]
    assert [line.split(":")[0] for line in lines[wrote + 1:]] == ["accuracy", "time", "report", "model", "next"]
    assert (evaluated / "report.html").stat().st_mtime_ns == before  # --no-report


def test_analysis_without_mistakes(tmp_path):
    from helpers_models import model as fresh_model

    from tlf.data import ArrayImageSet, Splits
    from tlf.insight.evaluation import InsightOptions, analyse
    images = ArrayImageSet(np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), [0, 1, 0, 1])
    report = {"confusion_matrix": [[2, 0], [0, 2]]}
    analyse(report, np.eye(2)[[0, 1, 0, 1]] * 5, images.labels, images, Splits("arrays", ["a", "b"], images, images),
            InsightOptions(top_losses=3, label_errors=0.5), out=tmp_path, model=fresh_model("resnet18", 2),
            transform=lambda image, seed: image, to_input=lambda batch: batch.float() / 255)
    assert report["most_confused"] == [] and report["label_errors"] == 0
    assert [r["image"] for r in report["top_losses"]] == ["array[0]", "array[1]", "array[2]"]
    assert (tmp_path / "confused.png").is_file() and len(read_csv(tmp_path / "predictions.csv")) == 4


# ---- Grad-CAM ---------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", ["resnet18", "timm:convnext_atto"])
def test_grad_cam_on_conv5_of_a_cnn_and_a_convnext(backbone):
    from helpers_models import model as fresh_model
    torch.manual_seed(0)  # random weights: an unseeded draw can give a map with no positive evidence (all 0)
    model = fresh_model(backbone, num_classes=3)
    x = torch.randn(2, 3, 64, 64)
    cam, logits = grad_cam(model, x)
    assert cam.shape == (2, 64, 64) and logits.shape == (2, 3)
    assert cam.min() >= 0 and np.allclose(cam.reshape(2, -1).max(axis=1), 1, atol=1e-5)
    other, _ = grad_cam(model, x, (logits.argmax(1) + 1) % 3)
    assert not np.allclose(cam, other)  # a different class, a different map


def test_grad_cam_puts_the_heat_on_the_deciding_corner(tmp_path):
    size = 128
    data = marked_square_folder(tmp_path / "data", size)
    run = tlf.train(dataset=f"folder:{data}", policy="transfer", epochs=3, lr=1e-2, quiet=True, out=str(tmp_path),
                    **{**FAST, "image_size": size, "batch_size": 16})
    assert run.summary["best_val_accuracy"] == 1.0
    result = run_cli("explain", str(run.directory), str(data / "val" / "marked"), "--class", "marked", "--json",
                     "--device", "cpu")
    assert [json.loads(line)["predicted"] for line in result.stdout.splitlines()] == ["marked"] * 6
    cam = marked_cams(run.directory, data)
    half = size // 2
    share = cam[:, :half, :half].sum(axis=(1, 2)) / cam.sum(axis=(1, 2))
    assert share.mean() > 0.5, share  # a quarter of the image holds most of the heat


# ---- tlf explain -------------------------------------------------------------------------

def test_explain_files_folders_globs_and_unreadable(evaluated, tmp_path):
    data = Path(read_csv(evaluated / "predictions.csv")[0]["image"]).parents[1]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    out = tmp_path / "cams"
    result = CliRunner().invoke(cli, ["explain", str(evaluated), str(data / "red" / "0.png"), str(data / "green"),
                                      str(data / "red" / "[12].png"), str(broken), "--out", str(out),
                                      "--class", HTML_CLASS, "--device", "cpu"])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"error: {broken}:")
    assert len(result.stdout.splitlines()) == 1 + 8 + 2
    assert len(list(out.glob("*.gradcam.png"))) == 11  # same stems from two folders get distinct names


def test_explain_bad_input_is_one_line(evaluated, tmp_path):
    result = run_cli("explain", str(evaluated), "x.png", "--class", "purple", code=1)
    assert "class 'purple' is not one of the run's classes" in result.output and "Traceback" not in result.output
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(evaluated / "config.yaml", bare)
    result = run_cli("explain", str(bare), "x.png", code=1)
    assert "best.pt does not exist" in result.output and len(result.output.strip().splitlines()) == 1


# ---- report.html in a real browser ---------------------------------------------------------

def nonblank(png: Path) -> bool:
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
    return pixels.std() > 10 and len(np.unique(pixels)) > 50


def test_report_renders_in_chromium(evaluated, tmp_path):
    page = render(evaluated / "report.html")
    assert page.console == []  # no script errors, no request blocked by the page's CSP
    positions = [page.dom.index(f'<section id="{section}">') for section in SECTIONS]
    assert positions == sorted(positions)  # the headline, curves and confusion matrix first; settings last
    settings = page.dom.split('<section id="settings">')[1]
    assert settings.index("<details>") < settings.index("<dl")  # collapsed
    headline = page.dom.split('<section id="headline">')[1].split("</section>")[0]
    accuracy = json.loads((evaluated / "evaluation.json").read_text())["accuracy"]
    assert f"{accuracy:.1%} on " in headline and f"tlf export {evaluated}" in headline
    assert "onerror" not in page.dom.replace("&lt;img src=x onerror=alert(1)&gt;", "")  # escaped everywhere
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.dom
    sources = [value for tag, name, value in page.attributes if name == "src"]
    assert sources and all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in sources)
    assert all(value.startswith("#") for tag, name, value in page.attributes if name == "href")  # in-page only
    report = json.loads((evaluated / "evaluation.json").read_text())
    table = page.dom.split('id="top-loss-table"')[1].split("</table>")[0]
    assert [cell.split("</td>")[0] for cell in table.split("<tr><td class=\"n\">")[1:]] == ["1", "2", "3", "4", "5"]
    for row in report["top_losses"]:
        assert f"<td>{row['image']}</td>" in table
    assert nonblank(screenshot(evaluated / "report.html", tmp_path / "shot.png"))


def test_report_of_a_run_without_evaluation_and_of_a_comparison(evaluated, tmp_path):
    runs = tmp_path / "cmp" / "runs"
    for name in ("a", "b"):
        shutil.copytree(evaluated, runs / name, ignore=shutil.ignore_patterns("evaluation.json", "report.html"))
    result = run_cli("report", str(runs / "a"), "--html")
    assert result.stdout.strip() == f"report: {runs / 'a' / 'report.html'}"
    page = render(runs / "a" / "report.html")
    assert page.console == [] and "Not evaluated yet" in page.dom and 'id="training"' in page.dom
    run_cli("report", str(tmp_path / "cmp"), "--html")
    page = render(tmp_path / "cmp" / "report.html")
    assert page.console == []
    assert '<a href="runs/a/report.html">a</a>' in page.dom and '<a href="runs/b/report.html">b</a>' in page.dom
    assert (runs / "b" / "report.html").is_file()
    assert "Strategy comparison" in page.dom and 'alt="validation accuracy of every run"' in page.dom


def test_report_stays_usable_with_200_classes(tmp_path):
    colours = {f"class_{k:03d}": tuple(int(v) for v in np.random.default_rng(k).integers(0, 256, 3))
               for k in range(200)}
    data = make_folder(tmp_path / "data", colours, train=2, val=1, size=8, noise=30)
    run_cli("train", "--dataset", f"folder:{data}", "--policy", "transfer", "--epochs", "1", "--image-size", "32",
            "--batch-size", "64", "--workers", "0", "--augment", "none", "--device", "cpu", "--out", str(tmp_path),
            "--name", "many", "--quiet")
    run_dir = tmp_path / "many"
    page = render(run_dir / "report.html")
    assert page.console == []
    assert "Showing the 30 classes with the most mistakes, of 200" in page.dom
    assert page.dom.count("<td>class_") >= 200  # every class in the data and per-class tables
    assert (run_dir / "report.html").stat().st_size < 3 * 2**20
    assert nonblank(screenshot(run_dir / "report.html", tmp_path / "shot.png"))


def test_export_refreshes_the_report_and_every_command_ends_with_the_headline(evaluated, tmp_path):
    run = Path(shutil.copytree(evaluated, tmp_path / "run"))
    assert "Not exported" in (run / "report.html").read_text()
    result = run_cli("export", str(run), "--exporter", "torchscript", "--parity-images", "4")
    page = (run / "report.html").read_text()
    assert "Not exported" not in page and "model.onnx" in page.split('<section id="export">')[1]
    lines = result.stdout.strip().splitlines()
    assert lines[-3:] == [f"report: {run / 'report.html'} (refreshed: it lists the new model)",
                          f"model: {run / 'model.onnx'}",
                          f"next: tlf predict {run} IMAGES...  (classify your images with the exported model)"]
    assert any(line.startswith("accuracy: ") for line in lines)
