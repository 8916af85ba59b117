"""Dataset plugins end to end on archives served from the test, folder layouts, synthetic data."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from _data_helpers import make_class_tree, make_tar, make_zip, serve, sha256, truncate, write_image
from tlf.cli import cli
from tlf.data import DatasetRequest, load_dataset
from tlf.data.download import Archive
from tlf.errors import TlfError

FLOWER_COUNTS = {"daisy": 10, "dandelion": 7, "roses": 5, "sunflowers": 6, "tulips": 8}


def shared_data() -> Path | None:
    """The read-only real data: ``shared/data`` beside the repository, else /work/shared/data."""
    for candidate in (Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(autouse=True)
def tlf_home(tmp_path, monkeypatch):
    """Keep the default cache (scan records, downloads) out of the user's home."""
    monkeypatch.setenv("TLF_HOME", str(tmp_path / "tlf_home"))
    return tmp_path / "tlf_home"


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def counts(splits, part):
    images = getattr(splits, part)
    return dict(zip(splits.classes, np.bincount(images.labels, minlength=len(splits.classes)).tolist()))


# ---- flowers ---------------------------------------------------------------------------------

@pytest.fixture
def flowers_archive(tmp_path):
    tree = make_class_tree(tmp_path / "build" / "flower_photos", FLOWER_COUNTS)
    (tree / "LICENSE.txt").write_text("CC-BY")
    (tree / "daisy" / "notes.txt").write_text("not an image")
    served = tmp_path / "served"
    served.mkdir()
    return make_tar(tree, served / "flower_photos.tgz")


def test_flowers_download_checksum_extract_split(flowers_archive, cache, monkeypatch):
    from tlf.plugins.datasets import archives
    with serve(flowers_archive.parent) as base:
        monkeypatch.setattr(archives, "FLOWERS", Archive(f"{base}/flower_photos.tgz", "flower_photos.tgz",
                                                         sha256=sha256(flowers_archive)))
        splits = load_dataset("flowers", DatasetRequest(cache_dir=cache))
    assert splits.name == "flowers" and splits.classes == sorted(FLOWER_COUNTS)
    assert splits.root == cache / "flowers" / "flower_photos"
    assert (cache / "flowers" / "flower_photos.tgz").is_file()
    total = {c: counts(splits, "train")[c] + counts(splits, "val")[c] for c in FLOWER_COUNTS}
    assert total == FLOWER_COUNTS  # notes.txt and LICENSE.txt ignored
    assert counts(splits, "val") == {c: round(n * 0.2) for c, n in FLOWER_COUNTS.items()}
    assert splits.problems == []
    assert splits.train.load(0).shape == (10, 12, 3)
    # cached: works with the server gone and downloads off, same split
    again = load_dataset("flowers", DatasetRequest(cache_dir=cache, download=False))
    assert again.train.paths == splits.train.paths and again.val.paths == splits.val.paths


def test_flowers_tampered_archive_is_refused_and_deleted(flowers_archive, cache, monkeypatch):
    from tlf.plugins.datasets import archives
    expected = sha256(flowers_archive)
    with open(flowers_archive, "ab") as f:
        f.write(b"tampered")
    with serve(flowers_archive.parent) as base:
        monkeypatch.setattr(archives, "FLOWERS", Archive(f"{base}/flower_photos.tgz", "flower_photos.tgz", sha256=expected))
        with pytest.raises(TlfError, match=f"checksum mismatch.*expected sha256 {expected}.*deleted"):
            load_dataset("flowers", DatasetRequest(cache_dir=cache))
    assert not (cache / "flowers" / "flower_photos.tgz").exists()
    assert not (cache / "flowers" / "flower_photos").exists()


def test_flowers_offline_error_says_where_to_put_files(cache):
    with pytest.raises(TlfError) as info:
        load_dataset("flowers", DatasetRequest(cache_dir=cache, download=False))
    message = str(info.value)
    assert str(cache / "flowers" / "flower_photos.tgz") in message
    assert str(cache / "flowers" / "flower_photos") in message and "--data-dir" in message


def test_flowers_data_dir_extracted_and_split_layouts(tmp_path, cache):
    extracted = make_class_tree(tmp_path / "copy" / "flower_photos", FLOWER_COUNTS)
    for data_dir in (extracted, extracted.parent):  # the folder itself, or the folder holding it
        splits = load_dataset("flowers", DatasetRequest(cache_dir=cache, data_dir=data_dir, download=False))
        assert splits.root == extracted and len(splits.train) + len(splits.val) == sum(FLOWER_COUNTS.values())
    split_copy = tmp_path / "split"
    make_class_tree(split_copy / "train", {c: 4 for c in FLOWER_COUNTS})
    make_class_tree(split_copy / "val", {c: 1 for c in FLOWER_COUNTS}, seed=1)
    splits = load_dataset("flowers", DatasetRequest(cache_dir=cache, data_dir=split_copy, download=False))
    assert (len(splits.train), len(splits.val)) == (20, 5)
    assert not (cache / "flowers").exists()  # nothing downloaded (only scan results cached)
    with pytest.raises(TlfError, match="--data-dir .* is not a folder"):
        load_dataset("flowers", DatasetRequest(cache_dir=cache, data_dir=tmp_path / "nope"))


# ---- cats_and_dogs ---------------------------------------------------------------------------

def test_cats_and_dogs_zip_end_to_end(tmp_path, cache, monkeypatch):
    from tlf.plugins.datasets import archives
    root = tmp_path / "build" / "cats_and_dogs_filtered"
    make_class_tree(root / "train", {"cats": 6, "dogs": 5})
    make_class_tree(root / "validation", {"cats": 3, "dogs": 2}, seed=1)
    (root / "vectorize.py").write_text("# not data")
    archive = make_zip(root, tmp_path / "cats_and_dogs_filtered.zip")
    with serve(tmp_path) as base:
        monkeypatch.setattr(archives, "CATS_AND_DOGS", Archive(f"{base}/cats_and_dogs_filtered.zip",
                                                               "cats_and_dogs_filtered.zip"))
        splits = load_dataset("cats_and_dogs", DatasetRequest(cache_dir=cache))
    assert splits.classes == ["cats", "dogs"] and splits.name == "cats_and_dogs"
    assert counts(splits, "train") == {"cats": 6, "dogs": 5} and counts(splits, "val") == {"cats": 3, "dogs": 2}
    record = cache / "cats_and_dogs" / "cats_and_dogs_filtered.zip.sha256"
    assert record.read_text().split()[0] == sha256(archive)  # checksum unknown: recorded at first download


# ---- cifar10 ---------------------------------------------------------------------------------

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_LABELS = {**{f"data_batch_{i}": f"training batch {i} of 5" for i in range(1, 6)},
                "test_batch": "testing batch 1 of 1"}


def _cifar_folder(folder: Path, per_batch: int = 4, classes: tuple[str, ...] = CIFAR_CLASSES) -> dict:
    """A ``cifar-10-batches-py`` folder laid out as the original archive's; returns the batches."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name, label in CIFAR_LABELS.items():
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, per_batch).tolist(), b"batch_label": label.encode()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=5))
        batches[name] = batch
    names = [n.encode() for n in classes]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    (folder / "readme.html").write_text("<html></html>")
    return batches


def _cifar_archive(tmp_path: Path, per_batch: int = 4) -> tuple[Path, dict]:
    folder = tmp_path / "build" / "cifar-10-batches-py"
    batches = _cifar_folder(folder, per_batch)
    return make_tar(folder, tmp_path / "cifar-10-python.tar.gz"), batches


def test_cifar10_end_to_end(tmp_path, cache, monkeypatch):
    import hashlib

    from tlf.data import ArrayImageSet
    from tlf.plugins.datasets import cifar
    archive, batches = _cifar_archive(tmp_path)
    monkeypatch.setattr(cifar, "CIFAR10", Archive(archive.as_uri(), archive.name, sha256=sha256(archive),
                                                  md5=hashlib.md5(archive.read_bytes()).hexdigest()))
    splits = load_dataset("cifar10", DatasetRequest(cache_dir=cache))
    assert splits.classes[:3] == ["airplane", "automobile", "bird"] and splits.num_classes == 10
    assert isinstance(splits.train, ArrayImageSet) and (len(splits.train), len(splits.val)) == (20, 4)
    first = batches["data_batch_1"]
    np.testing.assert_array_equal(splits.train.load(0), first[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert splits.train.labels[:4].tolist() == first[b"labels"]
    assert splits.val.labels.tolist() == batches["test_batch"][b"labels"]
    assert splits.train.load(5).dtype == np.uint8 and splits.train.load(5).shape == (32, 32, 3)
    # --data-dir on the extracted folder's parent
    again = load_dataset("cifar10", DatasetRequest(cache_dir=tmp_path / "other", data_dir=cache / "cifar10"))
    assert again.train.fingerprint() == splits.train.fingerprint()


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _cifar_folder(folder)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": Evil()}))
    with pytest.raises(TlfError, match="not allowed"):
        load_dataset("cifar10", DatasetRequest(cache_dir=tmp_path / "c", data_dir=tmp_path))
    assert not (tmp_path / "pwned").exists()


def test_cifar10_pickles_and_the_jpeg_tree_give_the_same_split_and_classes(tmp_path):
    """``folder:`` on a train/test/<class>/ copy of the batches (as ../shared/data/cifar10 is)
    gives the same classes and, per split, the same labelled images as the pickles."""
    from PIL import Image

    batches = _cifar_folder(tmp_path / "py" / "cifar-10-batches-py")
    for name, batch in batches.items():
        split = "test" if name == "test_batch" else "train"
        for row, (pixels, label) in enumerate(zip(batch[b"data"], batch[b"labels"])):
            path = tmp_path / "tree" / split / CIFAR_CLASSES[label] / f"{name}-{row}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels.reshape(3, 32, 32).transpose(1, 2, 0)).save(path)
    for label in CIFAR_CLASSES:  # a class with no image in a tiny split still has its folder
        for split in ("train", "test"):
            (tmp_path / "tree" / split / label).mkdir(parents=True, exist_ok=True)
            write_image(tmp_path / "tree" / split / label / "pad.png", size=(32, 32))
    pickles = load_dataset("cifar10", DatasetRequest(cache_dir=tmp_path / "c", data_dir=tmp_path / "py"))
    tree = load_dataset(f"folder:{tmp_path / 'tree'}", DatasetRequest(cache_dir=tmp_path / "c"))
    assert tree.classes == pickles.classes == list(CIFAR_CLASSES)

    def labelled(images, skip_pads=False):
        keep = [i for i in range(len(images)) if not (skip_pads and images.key(i).endswith("pad.png"))]
        return sorted((int(images.labels[i]), images.load(i).tobytes()) for i in keep)

    assert labelled(tree.train, True) == labelled(pickles.train)
    assert labelled(tree.val, True) == labelled(pickles.val)


def _swap(folder: Path) -> None:
    a, b = folder / "data_batch_2", folder / "test_batch"
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def _binary_layout(root: Path) -> None:
    (root / "cifar-10-batches-bin").mkdir()
    for name in ("batches.meta.txt", "data_batch_1.bin", "test_batch.bin"):
        (root / "cifar-10-batches-bin" / name).write_bytes(b"\0" * 3073)


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "data_batch_3").unlink(), r"cifar-10-batches-py lacks data_batch_3 \(extract cifar-10-python"),
    (lambda f: truncate(f / "data_batch_4", 0.6), r"cannot read CIFAR-10 file .*data_batch_4 \(truncated"),
    (lambda f: truncate(f / "batches.meta", 0.5), r"cannot read CIFAR-10 file .*batches.meta \(truncated"),
    (_swap, r"data_batch_2 holds 'testing batch 1 of 1', not 'training batch 2 of 5': batch files swapped"),
    (lambda f: _cifar_folder(f.parent / "other" / "cifar-10-batches-py", classes=CIFAR_CLASSES[:9]) and
     (f.parent / "other" / "cifar-10-batches-py" / "batches.meta").replace(f / "batches.meta"),
     r"batches.meta names 9 classes, CIFAR-10 has 10"),
    (lambda f: [(f / n).unlink() for n in CIFAR_LABELS] and _binary_layout(f.parent),
     r"cifar-10-batches-bin holds the binary version .*give the python version instead"),
])
def test_cifar10_bad_folders_are_one_line_errors(tmp_path, damage, message):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    _cifar_folder(folder)
    damage(folder)
    if not any((folder / n).exists() for n in CIFAR_LABELS):  # only the binary layout is left
        folder = folder.parent
        for p in (folder / "cifar-10-batches-py").iterdir():
            p.unlink()
        (folder / "cifar-10-batches-py").rmdir()
    with pytest.raises(TlfError, match=message):
        load_dataset("cifar10", DatasetRequest(cache_dir=tmp_path / "c", data_dir=tmp_path / "data", download=False))


def test_cifar10_labels_outside_the_ten_classes_are_an_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    batches = _cifar_folder(folder)
    batch = {**batches["data_batch_1"], b"labels": [0, 1, 10, 2]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch))
    with pytest.raises(TlfError, match=r"data_batch_1 has labels outside 0..9 \(e.g. 10\)"):
        load_dataset("cifar10", DatasetRequest(cache_dir=tmp_path / "c", data_dir=tmp_path))


def test_cifar10_image_tree_given_by_mistake_points_at_folder(tmp_path):
    make_class_tree(tmp_path / "cifar10" / "train", {"cat": 1, "dog": 1})
    with pytest.raises(TlfError, match=r"is a folder tree of images.*--dataset folder:"):
        load_dataset("cifar10", DatasetRequest(cache_dir=tmp_path / "c", data_dir=tmp_path / "cifar10"))


def test_cifar10_swapped_batch_through_the_cli_is_one_line(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _cifar_folder(folder)
    _swap(folder)
    result = CliRunner().invoke(cli, ["data", "show", "cifar10", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "batch files swapped or renamed" in lines[0], result.output


# ---- folder: -----------------------------------------------------------------------------------

@pytest.mark.parametrize("val_name", ["val", "validation", "test"])
def test_folder_presplit_layouts(tmp_path, val_name):
    make_class_tree(tmp_path / "train", {"a": 3, "b": 4})
    make_class_tree(tmp_path / val_name, {"a": 1, "b": 2}, seed=1)
    splits = load_dataset(f"folder:{tmp_path}", DatasetRequest(cache_dir=tmp_path / "c"))
    assert splits.classes == ["a", "b"] and splits.root == tmp_path and splits.name == f"folder:{tmp_path}"
    assert counts(splits, "train") == {"a": 3, "b": 4} and counts(splits, "val") == {"a": 1, "b": 2}
    assert all(val_name in str(p.parent.parent.name) for p in splits.val.paths)
    assert splits.split == f"folders train/ and {val_name}/"


def test_folder_flat_split_is_seeded_stratified_and_stable(tmp_path):
    make_class_tree(tmp_path / "data", {"x": 20, "y": 10, "z": 5})
    (tmp_path / "data" / "y" / "sub").mkdir()
    write_image(tmp_path / "data" / "y" / "sub" / "nested.png")  # nested images belong to their class
    (tmp_path / "data" / "y" / "sub" / "loop").symlink_to(tmp_path / "data" / "y")  # a link cycle is not followed
    request = DatasetRequest(cache_dir=tmp_path / "c", seed=3)
    first = load_dataset(f"folder:{tmp_path / 'data'}", request)
    second = load_dataset(f"folder:{tmp_path / 'data'}", request)
    assert first.train.paths == second.train.paths and first.val.paths == second.val.paths
    assert counts(first, "val") == {"x": 4, "y": 2, "z": 1} and counts(first, "train") == {"x": 16, "y": 9, "z": 4}
    assert not set(first.train.paths) & set(first.val.paths)
    assert first.split == "stratified, val_split 0.2, seed 3"
    other = load_dataset(f"folder:{tmp_path / 'data'}", DatasetRequest(cache_dir=tmp_path / "c", seed=4))
    assert other.val.paths != first.val.paths
    half = load_dataset(f"folder:{tmp_path / 'data'}", DatasetRequest(cache_dir=tmp_path / "c", val_split=0.5))
    assert counts(half, "val") == {"x": 10, "y": 6, "z": 2}  # round half to even: 5.5 -> 6, 2.5 -> 2


def test_folder_split_stable_across_processes(tmp_path):
    make_class_tree(tmp_path / "d", {"a": 9, "b": 7})
    code = ("from tlf.data import load_dataset, DatasetRequest; import sys; "
            f"s = load_dataset('folder:{tmp_path / 'd'}', DatasetRequest(cache_dir='{tmp_path}')); "
            "print([p.name for p in s.val.paths])")
    runs = {subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1
    here = load_dataset(f"folder:{tmp_path / 'd'}", DatasetRequest(cache_dir=tmp_path))
    assert runs.pop().strip() == str([p.name for p in here.val.paths])


def test_folder_unreadable_files_are_problems_or_errors_with_strict(tmp_path):
    make_class_tree(tmp_path / "d", {"a": 4, "b": 4})
    truncate(tmp_path / "d" / "a" / "000.jpg")
    (tmp_path / "d" / "b" / "broken.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "d" / "b" / "readme.txt").write_text("ignored")
    splits = load_dataset(f"folder:{tmp_path / 'd'}", DatasetRequest(cache_dir=tmp_path / "c"))
    assert sorted(Path(p.path).name for p in splits.problems) == ["000.jpg", "broken.png"]
    assert "truncated" in next(p.reason for p in splits.problems if p.path.endswith("000.jpg")).lower()
    assert len(splits.train) + len(splits.val) == 7
    assert all(p.name not in ("000.jpg", "broken.png") or p.parent.name == "b" for p in splits.train.paths)
    with pytest.raises(TlfError, match="unreadable image .*(000.jpg|broken.png).*and 1 more"):
        load_dataset(f"folder:{tmp_path / 'd'}", DatasetRequest(cache_dir=tmp_path / "c", strict=True))


def test_scan_results_are_remembered_and_changed_files_rechecked(tmp_path, monkeypatch):
    from tlf.data import folder
    make_class_tree(tmp_path / "d", {"a": 3, "b": 3})
    request = DatasetRequest(cache_dir=tmp_path / "c")
    calls, real = [], folder.check_image
    monkeypatch.setattr(folder, "check_image", lambda p: calls.append(p) or real(p))
    load_dataset(f"folder:{tmp_path / 'd'}", request)
    assert len(calls) == 6 and len(list((tmp_path / "c" / ".checks").glob("d-*.json"))) == 1
    calls.clear()
    assert load_dataset(f"folder:{tmp_path / 'd'}", request).problems == [] and calls == []
    record = next((tmp_path / "c" / ".checks").glob("d-*.json"))
    for garbage in ("not json", "[1, 2]", '{"version": 1, "files": {"x": 3}}'):
        record.write_text(garbage)  # an unusable record means checking again, not a crash
        assert load_dataset(f"folder:{tmp_path / 'd'}", request).problems == [] and len(calls) == 6
        calls.clear()
    truncate(tmp_path / "d" / "b" / "001.jpg")
    splits = load_dataset(f"folder:{tmp_path / 'd'}", request)
    assert calls == [tmp_path / "d" / "b" / "001.jpg"]
    assert [Path(p.path).name for p in splits.problems] == ["001.jpg"]


def test_folder_errors(tmp_path):
    request = DatasetRequest(cache_dir=tmp_path / "c")
    with pytest.raises(TlfError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'missing'}", request)
    make_class_tree(tmp_path / "one", {"only": 3})
    with pytest.raises(TlfError, match="single class"):
        load_dataset(f"folder:{tmp_path / 'one'}", request)
    with pytest.raises(TlfError, match="did you mean folder:"):  # pointed one level too high
        load_dataset(f"folder:{make_class_tree(tmp_path / 'outer' / 'inner', {'a': 2, 'b': 2}).parent}", request)
    make_class_tree(tmp_path / "empty", {"a": 3})
    (tmp_path / "empty" / "b").mkdir()
    (tmp_path / "empty" / "b" / "x.txt").write_text("no images")
    with pytest.raises(TlfError, match="without readable images.*: b"):
        load_dataset(f"folder:{tmp_path / 'empty'}", request)
    make_class_tree(tmp_path / "mismatch" / "train", {"a": 2, "b": 2})
    make_class_tree(tmp_path / "mismatch" / "val", {"a": 1, "c": 1})
    with pytest.raises(TlfError, match=r"different classes: only in train/: \['b'\]; only in val/: \['c'\]"):
        load_dataset(f"folder:{tmp_path / 'mismatch'}", request)
    (tmp_path / "noclasses").mkdir()
    write_image(tmp_path / "noclasses" / "a.jpg")
    with pytest.raises(TlfError, match="no class folders"):
        load_dataset(f"folder:{tmp_path / 'noclasses'}", request)
    make_class_tree(tmp_path / "ok", {"a": 2, "b": 2})
    with pytest.raises(TlfError, match="val_split"):
        load_dataset(f"folder:{tmp_path / 'ok'}", DatasetRequest(cache_dir=tmp_path, val_split=1.0))
    with pytest.raises(TlfError, match="needs an argument"):
        load_dataset("folder", request)


# ---- synthetic -------------------------------------------------------------------------------

def test_synthetic_is_deterministic_and_balanced():
    a = load_dataset("synthetic:train=6,val=2,size=32,classes=4", DatasetRequest())
    b = load_dataset("synthetic:train=6,val=2,size=32,classes=4", DatasetRequest())
    assert a.classes == ["circle", "square", "triangle", "star"]
    assert a.train.images.shape == (24, 32, 32, 3) and a.train.images.dtype == np.uint8
    np.testing.assert_array_equal(a.train.images, b.train.images)
    np.testing.assert_array_equal(a.val.labels, b.val.labels)
    assert np.bincount(a.train.labels).tolist() == [6] * 4 and np.bincount(a.val.labels).tolist() == [2] * 4
    assert a.train.fingerprint() != a.val.fingerprint()
    c = load_dataset("synthetic:train=6,val=2,size=32,classes=4", DatasetRequest(seed=1))
    assert not np.array_equal(a.train.images, c.train.images)


def test_synthetic_defaults_and_structure():
    splits = load_dataset("synthetic", DatasetRequest())
    assert (len(splits.train), len(splits.val), splits.num_classes) == (480, 120, 6)
    images = splits.train.images.astype(np.float32)
    assert images.shape[1:] == (64, 64, 3) and images.std() > 30  # varied, not blank
    # class is not given away by the mean colour: per-class mean images differ little
    means = np.stack([images[splits.train.labels == c].mean(axis=(0, 1, 2)) for c in range(6)])
    assert np.ptp(means, axis=0).max() < 40


@pytest.mark.parametrize("argument, message", [
    ("colour=3", "dataset 'synthetic': bad argument 'colour=3': unknown option 'colour'"), ("classes=9", "classes must be"), ("train=x", "integer"),
    ("size=4", "size must be"), ("val=0", "at least one"),
])
def test_synthetic_bad_options(argument, message):
    with pytest.raises(TlfError, match=message):
        load_dataset(f"synthetic:{argument}", DatasetRequest())


def test_synthetic_bare_number_sets_train_count():
    assert len(load_dataset("synthetic:3,size=16,classes=2", DatasetRequest()).train) == 6


# ---- tlf data, plugins -------------------------------------------------------------------------

def test_data_show_json_and_text(tmp_path):
    make_class_tree(tmp_path / "d", {"a": 5, "b": 5})
    truncate(write_image(tmp_path / "d" / "a" / "bad.jpg", size=(100, 80)))
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "show", f"folder:{tmp_path / 'd'}", "--json", "--check", "--seed", "1"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["classes"] == ["a", "b"] and info["num_classes"] == 2 and info["split"].startswith("stratified")
    assert info["splits"]["train"]["per_class"] == {"a": 4, "b": 4} and info["splits"]["val"]["count"] == 2
    assert info["splits"]["train"]["image_size"]["width"] == {"min": 12, "median": 12.0, "max": 12}
    assert [Path(p["path"]).name for p in info["problems"]] == ["bad.jpg"]
    text = runner.invoke(cli, ["data", "show", f"folder:{tmp_path / 'd'}"], env={"COLUMNS": "300"})
    assert text.exit_code == 0 and "bad.jpg" in text.output and "total" in text.output
    strict = runner.invoke(cli, ["data", "show", f"folder:{tmp_path / 'd'}", "--strict"], env={"COLUMNS": "300"})
    assert strict.exit_code == 1 and "bad.jpg" in strict.output and "Traceback" not in strict.output


def test_data_download_reports_where(tmp_path):
    result = CliRunner().invoke(cli, ["data", "download", "synthetic:train=2,val=1,size=16"])
    assert result.exit_code == 0 and "6 classes, 12 train and 6 val images" in result.output
    result = CliRunner().invoke(cli, ["data", "download", "flowers", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and "is not a folder" in result.output


def test_data_download_command_fetches_into_tlf_home(tmp_path, tlf_home, monkeypatch):
    from tlf.plugins.datasets import archives
    root = tmp_path / "build" / "cats_and_dogs_filtered"
    make_class_tree(root / "train", {"cats": 2, "dogs": 2})
    make_class_tree(root / "validation", {"cats": 1, "dogs": 1})
    archive = make_zip(root, tmp_path / "cats_and_dogs_filtered.zip")
    with serve(tmp_path) as base:
        monkeypatch.setattr(archives, "CATS_AND_DOGS", Archive(f"{base}/{archive.name}", archive.name,
                                                               sha256=sha256(archive)))
        result = CliRunner().invoke(cli, ["data", "download", "cats_and_dogs"])
    assert result.exit_code == 0, result.output
    where = tlf_home / "datasets" / "cats_and_dogs" / "cats_and_dogs_filtered"
    assert f"cats_and_dogs: 2 classes, 4 train and 2 val images in {where}" in result.stdout
    assert "download cats_and_dogs_filtered.zip" in result.stderr  # the progress bar


def test_plugins_register_without_torch():
    code = ("import sys, warnings; warnings.simplefilter('ignore'); from tlf.registry import get_registry; "
            "names = [s.name for s in get_registry().specs('datasets')]; "
            "import tlf.plugins.datasets; print(names, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['cats_and_dogs', 'cifar10', 'flowers', 'folder', 'synthetic', 'synthetic-multilabel', 'table'] False"


@pytest.mark.skipif(shared_data() is None, reason="shared/data not present")
def test_shared_flower_photos_counts(tlf_home):
    root = shared_data() / "flower_photos"
    result = CliRunner().invoke(cli, ["data", "show", f"folder:{root}", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["splits"]["train"]["count"], info["splits"]["val"]["count"], info["num_classes"]) == (2934, 736, 5)
    assert info["problems"] == []
    assert len(list((tlf_home / "datasets" / ".checks").glob("flower_photos-*.json"))) == 1


@pytest.mark.skipif(shared_data() is None, reason="shared/data not present")
def test_shared_cats_and_dogs_via_data_dir():
    splits = load_dataset("cats_and_dogs", DatasetRequest(data_dir=shared_data(), download=False))
    assert (len(splits.train), len(splits.val), splits.classes) == (2000, 1000, ["cats", "dogs"])


# --- walking a folder: links only inside, no loops, any depth, every skip reported ------------

def _walk_tree(tmp_path: Path) -> Path:
    root = make_class_tree(tmp_path / "data", {"red": 4, "blue": 4})
    write_image(tmp_path / "elsewhere" / "stray.jpg")
    return root


def _scan(root: Path, cache: Path):
    from tlf.data.folder import load_folder
    splits = load_folder(root, DatasetRequest(cache_dir=cache, val_split=0.25))
    images = [(str(p), splits.classes[y]) for part in (splits.train, splits.val) for p, y in zip(part.paths, part.labels)]
    return images, {Path(p.path).name: p.reason for p in splits.problems}


def test_links_leading_out_of_a_class_folder_are_not_followed_and_are_reported(tmp_path, cache):
    root = _walk_tree(tmp_path)
    (root / "red" / "everything").symlink_to("/")
    (root / "red" / "up").symlink_to(root)  # the other classes' images, under the wrong label
    (root / "red" / "blue0.jpg").symlink_to(root / "blue" / "000.jpg")
    (root / "red" / "out.jpg").symlink_to(tmp_path / "elsewhere" / "stray.jpg")
    (root / "elsewhere").symlink_to(tmp_path / "elsewhere")  # a class folder leading outside
    images, problems = _scan(root, cache)
    assert sorted(images) == sorted((str(root / c / f"{i:03d}.jpg"), c) for c in ("red", "blue") for i in range(4))
    assert set(problems) == {"everything", "up", "blue0.jpg", "out.jpg", "elsewhere"}
    assert all("not followed" in reason for reason in problems.values())


def test_links_inside_the_class_folder_are_followed_once(tmp_path, cache):
    root = _walk_tree(tmp_path)
    write_image(root / "red" / "more" / "extra.jpg", seed=9)
    (root / "red" / "again").symlink_to(root / "red" / "more")  # a second way in
    (root / "red" / "more" / "loop").symlink_to(root / "red")  # a loop
    images, problems = _scan(root, cache)
    assert (str(root / "red" / "more" / "extra.jpg"), "red") in images and len(images) == 9
    assert set(problems) == {"again", "loop"} and all("already walked" in r for r in problems.values())


def test_an_unreadable_folder_is_reported(tmp_path, cache, monkeypatch):
    root = _walk_tree(tmp_path)
    write_image(root / "red" / "more" / "extra.jpg", seed=9)
    real_scandir = os.scandir

    def scandir(path):  # chmod 000 does not stop root, who runs the tests in CI containers
        if not isinstance(path, int) and Path(path).name == "more":  # shutil.rmtree passes descriptors
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    images, problems = _scan(root, cache)
    assert len(images) == 8 and problems == {"more": "folder not readable (Permission denied); its images were skipped"}


def test_deeply_nested_folders_are_walked_without_recursion(tmp_path, cache):
    root = _walk_tree(tmp_path)
    deep = root / "red"
    for _ in range(1100):  # os.walk's recursion ended in RecursionError here (pathlib's mkdir too)
        deep = deep / "d"
        deep.mkdir()
    write_image(deep / "deep.jpg")
    try:
        images, problems = _scan(root, cache)
        assert (str(deep / "deep.jpg"), "red") in images and not problems
        result = CliRunner().invoke(cli, ["data", "show", f"folder:{root}"])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    finally:  # shutil.rmtree (pytest's clean-up) recurses too
        (deep / "deep.jpg").unlink()
        while deep != root / "red":
            deep.rmdir()
            deep = deep.parent
