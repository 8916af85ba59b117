"""tlf audit: planted duplicates, leaks and label flips found in tiny generated images; the
frozen features shared with transfer runs; --exclude/--relabel; bad input; audit.html."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from cli_output import said
from PIL import Image

import tlf
from tlf.audit.confirm import KeypointMatches, PerceptualHashes
from tlf.audit.duplicates import CANDIDATE_PHASH, MATCHES, similar_pairs
from tlf.audit.labels import confident_issues
from tlf.cli import cli
from tlf.data.edits import apply_edits
from tlf.features.feature_store import FeatureStore
from tlf.data.dataset import FileImageSet, Splits
from tlf.errors import TlfError

FAST = dict(backbone="efficientnet_lite0", image_size=64, batch_size=16, workers=0, device="cpu",
            frozen_engine="torch")
FLAGS = ["--image-size", "64", "--batch-size", "16", "--workers", "0", "--device", "cpu", "--frozen-engine", "torch"]
COLOURS = {"red": (190, 60, 50), "green": (90, 170, 70), "blue": (70, 90, 190)}


def pattern(rng: np.random.Generator, rgb: tuple[int, int, int], size: int = 96) -> np.ndarray:
    """A class colour under a smooth random brightness pattern: distinct images of one hue whose
    copies survive a resize."""
    coarse = rng.integers(0, 255, size=(4, 4), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR), np.float32)[..., None] - 128
    return np.clip(np.array(rgb) + 0.5 * smooth, 0, 255).astype(np.uint8)


def make_tree(root: Path, train: int = 16, val: int = 5, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        for name, rgb in COLOURS.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(pattern(rng, rgb)).save(root / split / name / f"{i}.png")
    return root


def plant(root: Path) -> dict[str, str]:
    """An exact duplicate within train, a resized JPEG copy of a training image in val, a green image
    filed as blue."""
    shutil.copyfile(root / "train/red/0.png", root / "train/red/dup.png")
    with Image.open(root / "train/blue/2.png") as image:
        image.resize((80, 80), Image.BILINEAR).save(root / "val/blue/leak.jpg", quality=85)
    (root / "train/green/1.png").rename(root / "train/blue/flipped.png")
    return {"dup": str(root / "train/red/dup.png"), "dup_of": str(root / "train/red/0.png"),
            "leak": str(root / "val/blue/leak.jpg"), "leak_of": str(root / "train/blue/2.png"),
            "flipped": str(root / "train/blue/flipped.png")}


def run_audit(root: Path, out: Path, *extra: str) -> tuple[dict, list[dict], Path]:
    result = CliRunner().invoke(cli, ["audit", f"folder:{root}", *FLAGS, "--out", str(out), "--json", "-q", *extra])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    directory = Path(summary["directory"])
    with open(directory / "issues.csv", newline="") as f:
        return summary, list(csv.DictReader(f)), directory


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    planted = plant(make_tree(root / "colours"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TLF_HOME", str(tmp_path_factory.mktemp("home")))
        summary, rows, directory = run_audit(root / "colours", root / "audits")
    return planted, summary, rows, directory


def test_planted_duplicate_leak_and_flip_are_found(audited):
    planted, summary, rows, directory = audited
    exact = [r for r in rows if r["kind"] == "duplicate" and r["detail"] == "same decoded pixels"]
    assert [(r["path"], r["other_path"]) for r in exact] == [(planted["dup"], planted["dup_of"])]
    leaks = [(r["path"], r["other_path"], r["split"], r["other_split"]) for r in rows if r["kind"] == "leak"]
    assert leaks == [(planted["leak"], planted["leak_of"], "val", "train")]
    labels = [r for r in rows if r["kind"] == "label"]
    assert labels[0]["path"] == planted["flipped"] and labels[0]["label"] == "blue" and labels[0]["suggested"] == "green"
    assert summary["counts"]["duplicate"] == 1 and summary["counts"]["leak"] == 1
    with open(directory / "label_scores.csv", newline="") as f:
        ranked = list(csv.DictReader(f))
    assert len(ranked) == summary["images"] and ranked[0]["path"] == planted["flipped"] and ranked[0]["flagged"] == "True"


def test_issues_csv_columns_and_order(audited):
    _, summary, rows, directory = audited
    header = (directory / "issues.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["kind", "path", "other_path", "score", "label", "suggested"]
    kinds = [r["kind"] for r in rows]
    for kind in set(kinds):
        scores = [float(r["score"]) for r in rows if r["kind"] == kind]
        assert scores == sorted(scores, reverse=True), kind
    assert sum(summary["counts"].values()) == len(rows)
    assert len(json.loads((directory / "audit.json").read_text())["findings"]) == len(rows)
    assert (directory / "config.yaml").is_file()


def test_audit_html_renders_offline_in_chromium(audited):
    from browser import render
    _, _, _, directory = audited
    page = render(directory / "audit.html")
    assert not page.console, page.console
    sources = [value for tag, name, value in page.attributes if tag == "img" and name == "src"]
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    for section in ("leak", "duplicate", "label"):
        assert ("section", "id", section) in page.attributes


def test_audit_and_transfer_run_share_the_frozen_pass(tmp_path):
    root = make_tree(tmp_path / "colours", train=8, val=3)
    first, _, _ = run_audit(root, tmp_path / "audits")
    again, _, _ = run_audit(root, tmp_path / "audits")
    assert first["engine"] == "torch" and again["engine"] == "stored"
    run = tlf.train(dataset=f"folder:{root}", policy="transfer", epochs=1, out=str(tmp_path / "runs"), quiet=True, **FAST)
    assert run.summary["frozen_engine"] == "stored"


def test_exclude_and_relabel_are_applied_and_recorded(audited, tmp_path):
    planted, *_ = audited
    root = Path(planted["leak"]).parents[2]
    exclude = tmp_path / "exclude.csv"
    exclude.write_text(f"kind,path\nleak,{planted['leak']}\nduplicate,train/red/dup.png\n")
    relabel = tmp_path / "relabel.csv"
    relabel.write_text(f"# fixes\n{planted['flipped']},green\n")
    run = tlf.train(dataset=f"folder:{root}", policy="transfer", epochs=1, out=str(tmp_path / "runs"), quiet=True,
                    exclude=str(exclude), relabel=str(relabel), **FAST)
    assert run.summary["data_edits"]["excluded"] == 2 and run.summary["data_edits"]["relabelled"] == 1
    assert json.loads((run.directory / "summary.json").read_text())["data_edits"]["exclude"] == str(exclude)
    assert f"exclude: {exclude}" in (run.directory / "config.yaml").read_text()
    assert Path(planted["leak"]).is_file() and Path(planted["dup"]).is_file()  # never touched


def small_splits(tmp_path: Path) -> Splits:
    root = make_tree(tmp_path / "colours", train=2, val=1)
    paths = sorted((root / "train").rglob("*.png"))
    val = sorted((root / "val").rglob("*.png"))
    return Splits("folder", list(COLOURS), FileImageSet(paths, [list(COLOURS).index(p.parent.name) for p in paths]),
                  FileImageSet(val, [list(COLOURS).index(p.parent.name) for p in val]), root=root)


@pytest.mark.parametrize("kind, text, message", [
    ("exclude", "train/red/0.png\nnot/there.png\n", "line 2: 'not/there.png' is not an image"),
    ("relabel", "path,new_label\ntrain/red/0.png,purple\n", "line 2: unknown class 'purple'"),
    ("relabel", "train/red/0.png\n", "line 1: no new label"),
])
def test_bad_edit_lines_are_named(tmp_path, kind, text, message):
    splits = small_splits(tmp_path)
    file = tmp_path / "edits.csv"
    file.write_text(text)
    with pytest.raises(TlfError, match=message):
        apply_edits(splits, str(file) if kind == "exclude" else None, str(file) if kind == "relabel" else None)


def test_bad_exclude_line_is_one_line_cli_error(tmp_path):
    root = make_tree(tmp_path / "colours", train=2, val=1)
    file = tmp_path / "exclude.txt"
    file.write_text("/etc/passwd\n")
    result = CliRunner().invoke(cli, ["train", "--dataset", f"folder:{root}", "--exclude", str(file), "--out",
                                      str(tmp_path / "runs"), *FLAGS, "--epochs", "1"])
    assert result.exit_code == 1
    assert said(result.output).strip().count("\n") == 0 and "line 1" in result.output, result.output


def test_one_class_one_image_class_identical_and_unreadable_images(tmp_path):
    root = tmp_path / "odd"
    grey = np.full((40, 40, 3), 128, np.uint8)
    for split, n in (("train", 4), ("val", 2)):
        (root / split / "same").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(grey).save(root / split / "same" / f"{i}.png")
    (root / "train/same/broken.png").write_bytes(b"not an image")
    result = CliRunner().invoke(cli, ["audit", f"folder:{root}", *FLAGS, "--out", str(tmp_path / "audits")])
    assert result.exit_code == 1 and said(result.output).count("\n") == 1 and "single class" in result.output
    for split in ("train", "val"):
        (root / split / "lonely").mkdir()
    Image.fromarray(pattern(np.random.default_rng(1), (200, 40, 40))).save(root / "train/lonely/0.png")
    Image.fromarray(pattern(np.random.default_rng(2), (40, 40, 200))).save(root / "val/lonely/0.png")
    summary, rows, _ = run_audit(root, tmp_path / "audits")
    assert summary["counts"]["duplicate"] == 3 and summary["counts"]["leak"] == 2 and summary["counts"]["conflict"] == 0
    assert summary["counts"]["constant"] == 6 and summary["counts"]["unreadable"] == 1
    assert [r["label"] for r in rows if r["kind"] == "imbalance"] == ["lonely"]


def test_block_wise_search_equals_the_full_matrix():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 8)).astype(np.float32)
    features[30] = features[3] + 0.01
    features[41] = features[7] * 2
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = unit @ unit.T
    full = {(i, j) for i in range(50) for j in range(i + 1, 50) if sims[i, j] >= 0.8}
    blocks = {(i, j) for i, j, _ in similar_pairs(features, 0.8, neighbours=49, block_bytes=4 * 50 * 3)}
    assert blocks == full and {(3, 30), (7, 41)} <= blocks


def test_confident_learning_rule():
    # thresholds: class 0 mean(0.9, 0.8, 0.1) = 0.6, class 1 mean(0.8, 0.9) = 0.85
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.1, 0.9]])
    labels = np.array([0, 0, 0, 1, 1])  # the third is confidently a 1; the fourth is a 1 but below 0.85
    issue, suggested, score = confident_issues(probabilities, labels)
    assert issue.tolist() == [False, False, True, False, False] and suggested[2] == 1
    assert score[2] == pytest.approx(0.9)


def test_feature_store_serves_subsets_and_misses(tmp_path):
    store = FeatureStore("k", tmp_path)
    hashes = np.arange(48, dtype=np.uint8).reshape(3, 16)
    store.save(hashes, np.arange(6, dtype=np.float32).reshape(3, 2))
    assert store.load(hashes[[2, 0, 2]]).tolist() == [[4, 5], [0, 1], [4, 5]]
    assert store.load(np.full((1, 16), 255, np.uint8)) is None
    assert FeatureStore("other", tmp_path).load(hashes) is None


def test_issues_csv_filtered_is_an_exclude_file(audited):
    planted, _, _, directory = audited
    root = Path(planted["leak"]).parents[2]
    lines = (directory / "issues.csv").read_text().splitlines()
    file = directory.parent / "leaks.csv"
    file.write_text("\n".join([lines[0], *(line for line in lines if line.startswith("leak,"))]) + "\n")
    splits = tlf.data.load_dataset(f"folder:{root}")
    edited = apply_edits(splits, str(file), None)
    assert len(edited.val) == len(splits.val) - 1 and len(edited.train) == len(splits.train)
    assert planted["leak"] not in {str(p) for p in edited.val.paths}


def test_keypoints_confirm_a_cropped_copy_and_not_another_photo():
    rng = np.random.default_rng(3)
    scenes = [np.asarray(Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).resize((240, 160),
                                                                                                Image.BICUBIC))
              for _ in range(2)]
    crop = np.asarray(Image.fromarray(scenes[0][12:-12, 18:-18]).resize((150, 101), Image.BILINEAR))
    images = {"photo": scenes[0], "crop": crop, "other": scenes[1]}
    keypoints = KeypointMatches(images.__getitem__)
    assert keypoints.inliers("photo", "crop") >= MATCHES > keypoints.inliers("photo", "other")
    hashes = PerceptualHashes(images.__getitem__)
    assert hashes.distance("photo", "other") > CANDIDATE_PHASH
