"""table:PATH (labels from a CSV/TSV/parquet table), the folder plugin's test/ split, and the test
split downstream: scored at the end of training, tlf evaluate --split test, compare's test column,
tlf data show. Tiny images made on the fly."""
from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tlf
from tlf.cli import cli
from tlf.config import load_config
from tlf.data import DatasetRequest, load_dataset
from tlf.errors import TlfError
from tlf.experiments.results import ComparedRun, Comparison
from tlf.plugins.datasets import table_file
from tlf.plugins.datasets.table import parse_options

from _data_helpers import make_class_tree, write_image
from test_engine import FAST, make_colour_folder


def request(tmp_path: Path, **changes) -> DatasetRequest:
    return DatasetRequest(cache_dir=tmp_path / "cache", **changes)


def write_rows(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def tree_rows(root: Path, with_split: bool = True) -> list[str]:
    """One CSV row per image under ``root/<split>/<class>/`` (or ``root/<class>/``), shuffled."""
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".png", ".jpg")):
        rel = path.relative_to(root)
        rows.append(f"{rel.as_posix()},{rel.parts[-2]}" + (f",{rel.parts[0]}" if with_split else ""))
    random.Random(0).shuffle(rows)  # the table's row order does not matter
    return rows


def same_sets(a, b) -> None:
    assert [str(p) for p in a.paths] == [str(p) for p in b.paths]
    assert np.array_equal(a.labels, b.labels)


# ---- single-label: the same splits as the equivalent folder ---------------------------------------

def test_table_with_a_split_column_gives_the_folders_splits(tmp_path):
    root = tmp_path / "data"
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        make_class_tree(root / split, {"cat": n, "dog": n + 1}, seed=len(split))
    table = write_rows(root / "labels.csv", "image,label,split", tree_rows(root))
    folder = load_dataset(f"folder:{root}", request(tmp_path))
    listed = load_dataset(f"table:{table}", request(tmp_path))
    assert listed.classes == folder.classes == ["cat", "dog"] and not listed.multi_label
    for part in ("train", "val", "test"):
        same_sets(getattr(listed, part), getattr(folder, part))
    assert listed.root == root and listed.split == "split column" and listed.problems == []


def test_table_without_a_split_column_gives_the_folders_seeded_split(tmp_path):
    root = make_class_tree(tmp_path / "data", {"a": 7, "b": 5, "c": 3})
    table = write_rows(root / "labels.csv", "image,label", tree_rows(root, with_split=False))
    for seed in (0, 3):
        folder = load_dataset(f"folder:{root}", request(tmp_path, seed=seed, val_split=0.3))
        listed = load_dataset(f"table:{table}", request(tmp_path, seed=seed, val_split=0.3))
        same_sets(listed.train, folder.train)
        same_sets(listed.val, folder.val)
        assert listed.split == folder.split == f"stratified, val_split 0.3, seed {seed}" and listed.test is None


def test_train_and_test_rows_only_draw_validation_from_the_train_rows(tmp_path):
    root = make_class_tree(tmp_path / "train", {"a": 5, "b": 5}).parent
    make_class_tree(root / "test", {"a": 2, "b": 2}, seed=4)
    splits = load_dataset(f"table:{write_rows(root / 't.csv', 'image,label,split', tree_rows(root))}", request(tmp_path))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 2, 4)
    assert "validation drawn from its train rows" in splits.split
    assert all("train" in p.parts for p in splits.val.paths)


# ---- multi-label ---------------------------------------------------------------------------------

def multi_table(root: Path, n: int = 40) -> Path:
    """``n`` images, label sets from {cat, dog, ball}; 'ball' is rare (5 images)."""
    rows = []
    for i in range(n):
        write_image(root / "images" / f"{i:02d}.png", seed=i)
        labels = ["cat"] if i % 3 == 0 else ["dog"] if i % 3 == 1 else ["cat", "dog"]
        labels += ["ball"] if i % 8 == 0 else []
        rows.append(f"images/{i:02d}.png,{' '.join(labels)}")
    return write_rows(root / "labels.csv", "image,label", rows)


def test_several_labels_in_a_row_make_multi_hot_splits_stratified_iteratively(tmp_path):
    table = multi_table(tmp_path)
    splits = load_dataset(f"table:{table}", request(tmp_path, val_split=0.25))
    assert splits.classes == ["ball", "cat", "dog"] and splits.multi_label
    assert len(splits.train) + len(splits.val) == 40 and 8 <= len(splits.val) <= 12  # about a quarter
    assert splits.train.labels.shape[1] == splits.val.labels.shape[1] == 3
    assert set(np.unique(splits.train.labels)) == {0, 1}
    assert splits.train.labels[:, 0].sum() >= 1 and splits.val.labels[:, 0].sum() >= 1  # the rare label in both
    assert splits.split == "iteratively stratified (multi-label), val_split 0.25, seed 0"
    again = load_dataset(f"table:{table}", request(tmp_path, val_split=0.25))
    same_sets(again.val, splits.val)
    other = load_dataset(f"table:{table}", request(tmp_path, val_split=0.25, seed=1))
    assert [str(p) for p in other.val.paths] != [str(p) for p in splits.val.paths]
    assert len(load_dataset(f"table:{table}", request(tmp_path, seed=2**62)).val)  # any seed tlf takes


def test_relabel_on_multi_label_data_is_one_line(tmp_path):
    from tlf.data.edits import apply_edits
    splits = load_dataset(f"table:{multi_table(tmp_path)}", request(tmp_path))
    (tmp_path / "relabel.csv").write_text(f"{splits.train.paths[0]},cat\n")
    with pytest.raises(TlfError, match="--relabel gives an image one class; .* is multi-label"):
        apply_edits(splits, None, str(tmp_path / "relabel.csv"))


def test_one_column_per_class_with_other_names_and_a_tsv(tmp_path):
    for i in range(6):
        write_image(tmp_path / f"{i}.png", seed=i)
    rows = [f"{i}.png\t{int(i % 2 == 0)}\t{int(i % 3 == 0)}\t{'val' if i >= 4 else 'train'}" for i in range(6)]
    table = write_rows(tmp_path / "hot.tsv", "file\tsky\tsea\tpart", rows)
    splits = load_dataset(f"table:{table},image=file,split=part,classes=columns", request(tmp_path))
    assert splits.classes == ["sky", "sea"] and splits.multi_label  # the table's column order
    assert splits.train.labels.tolist() == [[1, 1], [0, 0], [1, 0], [0, 1]]
    assert splits.val.labels.tolist() == [[1, 0], [0, 0]]


def test_other_column_names_and_label_separator(tmp_path):
    for i in range(6):
        write_image(tmp_path / "img" / f"{i}.jpg", seed=i)
    rows = [f"img/{i}.jpg,{'a|b' if i < 2 else 'a' if i % 2 else 'b'}" for i in range(6)]
    table = write_rows(tmp_path / "tags.csv", "file,tags", rows)
    splits = load_dataset(f"table:{table},image=file,label=tags,sep=pipe", request(tmp_path, val_split=0.34))
    assert splits.classes == ["a", "b"] and splits.multi_label
    assert sorted(map(tuple, np.concatenate([splits.train.labels, splits.val.labels]).tolist())) == \
        [(0, 1), (0, 1), (1, 0), (1, 0), (1, 1), (1, 1)]


def test_a_parquet_table(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    root = make_class_tree(tmp_path / "data", {"a": 4, "b": 4})
    rows = [row.split(",") for row in tree_rows(root, with_split=False)]
    pq.write_table(pa.table({"image": [r[0] for r in rows], "label": [r[1] for r in rows]}), root / "labels.parquet")
    listed = load_dataset(f"table:{root / 'labels.parquet'}", request(tmp_path))
    folder = load_dataset(f"folder:{root}", request(tmp_path))
    same_sets(listed.train, folder.train)


def test_data_dir_is_where_image_paths_start(tmp_path):
    images = make_class_tree(tmp_path / "images", {"a": 3, "b": 3})
    table = write_rows(tmp_path / "elsewhere.csv", "image,label", tree_rows(images, with_split=False))
    splits = load_dataset(f"table:{table}", request(tmp_path, data_dir=images))
    assert splits.root == images and len(splits.train) + len(splits.val) == 6


# ---- options -------------------------------------------------------------------------------------

def test_options_parse_from_the_right_so_paths_may_hold_commas():
    options = parse_options("my,labels.csv,image=file,sep=;,classes=columns")
    assert options.path == Path("my,labels.csv") and options.image == "file" and options.sep == ";"
    assert options.classes == "columns" and options.split is None
    for text, message in (("a.csv,lable=x", "unknown option 'lable'"), ("a.csv,sep=ab", "neither one character"),
                          ("a.csv,classes=many", "classes='many'"), ("a.csv,image=", "needs a column name"),
                          ("a.csv,image=a,image=b", "given twice"), ("a.csv,format=xls", "format='xls'")):
        with pytest.raises(ValueError, match=message):
            parse_options(text)


# ---- bad input: one line naming the row ----------------------------------------------------------

BAD_TABLES = {
    "missing column": ("image,labels", ["a/000.jpg,a"], r"has no column 'label' \(its columns: image, labels\)"),
    "unknown split": ("image,label,split", ["a/000.jpg,a,train", "b/000.jpg,b,tset"], r"line 3: split 'tset'.*not train, val or test"),
    "empty label": ("image,label", ["a/000.jpg,a", "b/000.jpg, "], r"line 3: image 'b/000.jpg' has an empty label"),
    "empty image": ("image,label", [",a"], r"line 2: the image path is empty"),
    "only in validation": ("image,label,split", ["a/000.jpg,a,train", "a/001.jpg,a,train", "b/000.jpg,b,val"],
                           r"class 'b' appears only in validation \(line 4\), never in training"),
    "multi-label only in validation": ("image,label,split", ["a/000.jpg,a b,train", "b/000.jpg,a,train", "a/001.jpg,a c,val"],
                                       r"class 'c' appears only in validation \(line 4\), never in training"),
    "only in test": ("image,label,split", ["a/000.jpg,a,train", "b/000.jpg,b,train", "a/001.jpg,a,val", "b/001.jpg,c,test"],
                     r"class 'c' appears only in test \(line 5\)"),
    "duplicated": ("image,label", ["a/000.jpg,a", "b/000.jpg,b", "./a/000.jpg,b"], r"line 2 and line 4 both list image './a/000.jpg'"),
    "parent": ("image,label", ["a/000.jpg,a", "../outside.jpg,b"], r"line 3: image '../outside.jpg' is outside the data folder"),
    "absolute": ("image,label", ["a/000.jpg,a", "/etc/passwd,b"], r"line 3: image '/etc/passwd' is outside the data folder"),
    "fields": ("image,label", ["a/000.jpg,a,extra"], r"line 2 has 3 field\(s\), its header 2"),
    "bad flag": ("image,a,b", ["a/000.jpg,1,2"], r"line 2: column 'b' holds '2', not 0 or 1"),
    "one class": ("image,label", ["a/000.jpg,a", "a/001.jpg,a"], r"names 1 class\(es\) \(a\); a classifier needs two"),
    "empty": ("", [], r"is empty"),
    "no readable image": ("image,label", ["a/000.jpg,a", "gone.jpg,b a"], r"lists 1 readable image\(s\) of 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_tables_are_one_line_errors_naming_the_row(tmp_path, case):
    make_class_tree(tmp_path, {"a": 2, "b": 2})
    header, rows, message = BAD_TABLES[case]
    table = write_rows(tmp_path / "t.csv", header, rows) if header else tmp_path / "t.csv"
    if not header:
        table.write_text("")
    spec = f"table:{table}" + (",classes=columns" if case == "bad flag" else "")
    result = CliRunner().invoke(cli, ["data", "show", spec])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    with pytest.raises(TlfError, match=message):
        load_dataset(spec, request(tmp_path))


def test_not_utf8_and_too_large_tables_are_one_line_errors(tmp_path, monkeypatch):
    table = tmp_path / "t.csv"
    table.write_bytes("image,label\nstraße.jpg,a\n".encode("latin-1"))
    with pytest.raises(TlfError, match=r"table .*t.csv is not UTF-8 text \(byte 0xdf at position 16\)"):
        load_dataset(f"table:{table}", request(tmp_path))
    table.write_text("image,label\n" + "x.jpg,a\n" * 20)
    monkeypatch.setattr(table_file, "MAX_TABLE_BYTES", 100)
    with pytest.raises(TlfError, match="is larger than 0 KiB; tlf reads tables up to that size"):
        load_dataset(f"table:{table}", request(tmp_path))
    (tmp_path / "t.xlsx").write_text("")
    with pytest.raises(TlfError, match=r"cannot tell the format of table .*t.xlsx"):
        load_dataset(f"table:{tmp_path / 't.xlsx'}", request(tmp_path))


def test_missing_images_and_links_out_are_reported_problems_naming_the_row(tmp_path):
    root = make_class_tree(tmp_path / "data", {"a": 3, "b": 3})
    rows = tree_rows(root, with_split=False) + ["a/gone.jpg,a", "a/link.png,a"]
    os.symlink(write_image(tmp_path / "secret.png"), root / "a" / "link.png")
    table = write_rows(root / "labels.csv", "image,label", rows)
    splits = load_dataset(f"table:{table}", request(tmp_path))
    reasons = {Path(p.path).name: p.reason for p in splits.problems}
    assert set(reasons) == {"gone.jpg", "link.png"}
    assert reasons["link.png"].startswith("line 9: link to ") and "not followed" in reasons["link.png"]
    assert reasons["gone.jpg"].startswith("line 8: ")
    assert len(splits.train) + len(splits.val) == 6
    with pytest.raises(TlfError, match="unreadable image"):
        load_dataset(f"table:{table}", request(tmp_path, strict=True))


# ---- folder test/ and tlf data show ---------------------------------------------------------------

def test_folder_reads_test_beside_train_and_val_and_data_show_counts_it(tmp_path):
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        make_class_tree(tmp_path / split, {"a": n, "b": n}, seed=n)
    splits = load_dataset(f"folder:{tmp_path}", request(tmp_path))
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [6, 2, 4]
    assert splits.split == "folders train/ and val/; test split: test/"
    info = json.loads(CliRunner().invoke(cli, ["data", "show", f"folder:{tmp_path}", "--json"]).output)
    assert info["splits"]["test"]["per_class"] == {"a": 2, "b": 2}
    text = CliRunner().invoke(cli, ["data", "show", f"folder:{tmp_path}"]).output
    assert "6 train, 2 val, 4 test" in " ".join(text.split())  # lines wrap wherever the path ends
    for image in (tmp_path / "test").rglob("*.jpg"):  # unlabelled test images (no class folders): not a test split
        image.rename(tmp_path / "test" / f"{image.parent.name}{image.name}")
    for folder in ("a", "b"):
        (tmp_path / "test" / folder).rmdir()
    splits = load_dataset(f"folder:{tmp_path}", request(tmp_path))
    assert splits.test is None and len(splits.train) == 6


def test_data_show_gives_label_cardinality_and_common_label_sets(tmp_path):
    table = multi_table(tmp_path)
    info = json.loads(CliRunner().invoke(cli, ["data", "show", f"table:{table}", "--json"]).output)
    assert info["multi_label"]
    train = info["splits"]["train"]
    labels = load_dataset(f"table:{table}", request(tmp_path)).train.labels
    assert train["label_cardinality"] == round(labels.sum(axis=1).mean(), 3)
    assert train["per_class"] == dict(zip(["ball", "cat", "dog"], labels.sum(axis=0).tolist()))
    sets = Counter(tuple(name for name, hot in zip(["ball", "cat", "dog"], row) if hot) for row in labels.tolist())
    shown = [(tuple(s["labels"]), s["count"]) for s in train["common_label_sets"]]
    assert [n for _, n in shown] == [n for _, n in sets.most_common(5)] and all(sets[k] == n for k, n in shown)
    text = CliRunner().invoke(cli, ["data", "show", f"table:{table}"]).output
    assert "labels per image; most common label sets: " in text and "(multi-label)" in text


# ---- the test split downstream -------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The same colour data as a folder with test/ and as a table with a split column, trained alike."""
    root = make_colour_folder(tmp_path_factory.mktemp("colours"), per_class=8, val_per_class=4, size=32)
    test = make_colour_folder(tmp_path_factory.mktemp("colours_test"), per_class=1, val_per_class=3, size=32, seed=7)
    (test / "val").rename(root / "test")
    table = write_rows(root / "labels.csv", "image,label,split", tree_rows(root))
    out = tmp_path_factory.mktemp("runs")
    common = dict(policy="transfer", epochs=2, lr=1e-2, out=str(out), quiet=True, **FAST)
    return (tlf.train(dataset=f"folder:{root}", name="folder", **common),
            tlf.train(dataset=f"table:{table}", name="table", **common))


def test_the_best_checkpoint_is_scored_on_the_test_split_at_the_end(trained):
    folder, table = trained
    test = folder.summary["test"]
    assert set(test) >= {"acc", "loss"} and test["images"] == 9 and test["epoch"] == folder.summary["best_epoch"]
    assert json.loads((folder.directory / "summary.json").read_text())["test"] == test
    assert table.summary["test"] == test and table.summary["best_val_accuracy"] == folder.summary["best_val_accuracy"]

    def losses(run) -> list[tuple[float, float]]:  # the same numbers, epoch by epoch
        rows = [json.loads(line) for line in (run.directory / "metrics.jsonl").read_text().splitlines()]
        return [(r["train_loss"], r["val_loss"]) for r in rows]
    assert losses(table) == losses(folder)
    from tlf.insight.headline import headline
    rows = dict(headline(folder.directory))
    assert rows["accuracy"].endswith("(picked the checkpoint)")
    assert rows["test"] == f"{test['acc']:.1%} accuracy on 9 held-out test images (the validation-picked checkpoint, scored once)"


def test_evaluate_split_test_scores_the_test_split_into_its_own_folder(trained):
    run = trained[0].directory
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--split", "test", "--device", "cpu", "--engine", "torch",
                                      "--no-report"])
    assert result.exit_code == 0, result.output
    report = json.loads((run / "test" / "evaluation.json").read_text())
    assert report["split"] == "test" and report["images"] == 9
    assert report["accuracy"] == pytest.approx(trained[0].summary["test"]["acc"])
    assert not (run / "evaluation.json").exists() or json.loads((run / "evaluation.json").read_text())["split"] == "val"
    assert "test split, 9 images" in " ".join(result.output.split())  # lines wrap wherever the path ends


def test_evaluate_split_test_without_a_test_split_is_one_line(tmp_path):
    root = make_colour_folder(tmp_path / "data", per_class=4, val_per_class=2, size=32)
    run = tlf.train(dataset=f"folder:{root}", policy="transfer", epochs=1, out=str(tmp_path), quiet=True, **FAST)
    assert "test" not in run.summary
    result = CliRunner().invoke(cli, ["evaluate", str(run.directory), "--split", "test", "--device", "cpu"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "has no test split" in result.output


def test_no_test_split_and_tune_trials_leave_the_test_split_unscored(trained, tmp_path):
    optuna = pytest.importorskip("optuna")
    root = Path(trained[0].config.dataset.removeprefix("folder:"))
    common = dict(dataset=f"folder:{root}", policy="transfer", epochs=1, quiet=True, **FAST)
    assert "test" not in tlf.train(out=str(tmp_path / "runs"), test_split=False, **common).summary
    compared = CliRunner().invoke(cli, ["compare", "--dataset", f"folder:{root}", "--policies", "transfer", "--epochs", "1",
                                        "--no-test-split", "--out", str(tmp_path / "cmp"), "--quiet", "--backbone",
                                        "efficientnet_lite0", "--image-size", "32", "--batch-size", "8", "--workers", "0",
                                        "--augment", "none", "--device", "cpu"])
    assert compared.exit_code == 0, compared.output
    (summary,) = (tmp_path / "cmp").rglob("summary.json")
    assert "test" not in json.loads(summary.read_text())
    assert "| test acc |" not in (tmp_path / "cmp" / "comparison.md").read_text()  # shown where a run has one
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}", direction="maximize")
    study.enqueue_trial({"lr": 1e-2})
    (tmp_path / "space.yaml").write_text("lr: loguniform(1e-4, 1e-1)\n")
    said = CliRunner().invoke(cli, ["tune", "--space", str(tmp_path / "space.yaml"), "--trials", "1", "--study", "s",
                                    "--out", str(tmp_path), "--dataset", f"folder:{root}", "--policy", "transfer",
                                    "--epochs", "1", "--quiet", "--image-size", "32", "--batch-size", "8",
                                    "--workers", "0", "--augment", "none", "--device", "cpu"])
    assert said.exit_code == 0, said.output
    result = json.loads((tmp_path / "tune.json").read_text())
    (trial,) = result["trials"]
    assert "test" not in json.loads((Path(trial["run_dir"]) / "summary.json").read_text())  # validation chose it
    assert f"score the best run once with tlf evaluate {trial['run_dir']} --split test" in " ".join(said.output.split())
    best = load_config(result["best"]["config_file"])
    assert best.test_split and best.lr == pytest.approx(1e-2)  # training the chosen config again scores it


def test_report_has_a_test_section(trained):
    from tlf.insight.report import write_run_report
    page = write_run_report(trained[0].directory).read_text()
    section = page.split('<section id="test">')[1].split("</section>")[0]
    assert "picked on validation" in section and f"{trained[0].summary['test']['acc']:.4f}" in section


def test_compare_shows_a_test_column_only_when_a_run_has_a_test_figure(tmp_path):
    def run(seed: int, test: dict | None) -> ComparedRun:
        summary = {"best_val_accuracy": 0.9, "best_metric": "val_acc", **({"test": test} if test else {})}
        return ComparedRun(tmp_path / str(seed), "d", "b", "transfer", seed, summary, [])

    header, rows = Comparison([run(0, {"acc": 0.8, "loss": 1.0}), run(1, {"acc": 0.7, "loss": 1.0})]).rows()
    assert header[header.index("best val acc") + 1] == "test acc"
    assert rows[0][header.index("test acc")] == "0.750 ± 0.071"
    assert "test_accuracy_mean" in Comparison([run(0, {"acc": 0.8})]).csv()
    header, _ = Comparison([run(0, None)]).rows()
    assert "test acc" not in header
