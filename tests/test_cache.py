"""Decode-once cache: built once, reused, invalidated, pixel-exact, bounded memory."""
import gc
import os
import pickle
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from imagefiles import array_set, file_set, random_images
from tlf.augment import AugmentRequest, build_pipeline, short_side_shape
from tlf.data import FileImageSet, Splits
from tlf.data import cache as decode_cache
from tlf.data.loaders import build_eval_loader, build_loaders, choose_cache

PIPELINE = build_pipeline("none", AugmentRequest(image_size=24, crop_pct=0.875))  # short side 27


class CountingSet(FileImageSet):
    """A FileImageSet that counts decodes."""

    loads = 0

    def load(self, index):
        CountingSet.loads += 1
        return super().load(index)


def counting(images: FileImageSet) -> CountingSet:
    return CountingSet(images.paths, images.labels)


def test_built_once_then_reused_without_decoding(tmp_path):
    images = counting(file_set(tmp_path / "img", 9))
    CountingSet.loads = 0
    first = decode_cache.build(images, PIPELINE, tmp_path / "cache")
    assert first.built and first.decoded == 9 and CountingSet.loads == 9
    mtime = first.images.data_path.stat().st_mtime_ns
    CountingSet.loads = 0
    second = decode_cache.build(counting(images), PIPELINE, tmp_path / "cache")
    assert not second.built and second.decoded == 0 and CountingSet.loads == 0
    assert second.images.data_path == first.images.data_path
    assert second.images.data_path.stat().st_mtime_ns == mtime
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".npz", ".u8"]  # no temp files left


def test_stores_short_side_resized_variable_aspect_ratios_exactly_as_eval(tmp_path):
    images = file_set(tmp_path / "img", 9, sizes=((48, 64), (64, 40), (20, 30)))
    cached = decode_cache.build(images, PIPELINE, tmp_path / "cache").images
    assert len(cached) == 9 and np.array_equal(cached.labels, images.labels)
    total = 0
    for i in range(9):
        source = images.load(i)
        stored = cached.load(i)
        assert stored.shape[:2] == short_side_shape(*source.shape[:2], 27)
        assert min(stored.shape[:2]) == min(27, min(source.shape[:2]))  # never upscaled
        assert np.array_equal(PIPELINE.eval(stored), PIPELINE.eval(source))
        total += stored.size
    assert cached.nbytes == total == cached.data_path.stat().st_size


def test_images_the_plan_had_no_size_for_are_appended(tmp_path):
    """A header that could not be read (planned 0x0) but an image that decodes: stored after the plan."""
    images = file_set(tmp_path / "img", 5, sizes=((48, 64), (64, 40)))
    layout = decode_cache.plan(images, 27)
    planned = layout.shapes.copy()
    planned[1] = planned[3] = 0
    slot = planned[:, 0] * planned[:, 1] * 3
    unplanned = decode_cache.Plan(planned, np.concatenate([[0], np.cumsum(slot)[:-1]]).astype(np.int64),
                                  int(slot.sum()))
    cached = decode_cache.build(images, PIPELINE, tmp_path / "cache", layout=unplanned).images
    assert len(cached) == 5 and cached.nbytes == layout.nbytes == cached.data_path.stat().st_size
    assert list(cached.offsets[[1, 3]]) == [unplanned.nbytes, unplanned.nbytes + layout.shapes[1].prod() * 3]
    for i in range(5):
        assert np.array_equal(cached.load(i), PIPELINE.resize(images.load(i)))


def test_invalidated_when_a_file_changes(tmp_path):
    images = file_set(tmp_path / "img", 6)
    old = decode_cache.build(images, PIPELINE, tmp_path / "cache").images
    new_pixels = random_images(1, 48, 64, seed=99)[0]
    Image.fromarray(new_pixels).save(images.paths[0])
    os.utime(images.paths[0], ns=(1, 1))  # a different mtime whatever the clock resolution
    result = decode_cache.build(FileImageSet(images.paths, images.labels), PIPELINE, tmp_path / "cache")
    assert result.built and result.images.data_path != old.data_path
    assert not old.data_path.exists() and not old.index_path.exists()  # the stale cache is removed
    assert np.array_equal(result.images.load(0), PIPELINE.resize(new_pixels))


def test_unreadable_images_are_skipped_and_reported(tmp_path):
    images = file_set(tmp_path / "img", 6, classes=3)
    (tmp_path / "img" / "img001.png").write_bytes(b"not an image at all")
    data = images.paths[4].read_bytes()
    images.paths[4].write_bytes(data[: len(data) // 3])  # truncated
    splits = Splits("broken", ["a", "b", "c"], images, file_set(tmp_path / "val", 3))
    train, _ = build_loaders(splits, PIPELINE, batch_size=2, workers=0, seed=0, cache="disk")
    cached = train.dataset.images
    assert len(cached) == 4
    assert [cached.key(i) for i in range(4)] == [str(images.paths[i]) for i in (0, 2, 3, 5)]
    assert list(cached.labels) == [0, 2, 0, 2]
    assert {p.path for p in splits.problems} == {str(images.paths[1]), str(images.paths[4])}
    assert all(p.reason for p in splits.problems)
    again = Splits("broken", ["a", "b", "c"], images, splits.val)
    build_loaders(again, PIPELINE, batch_size=2, workers=0, seed=0, cache="disk")
    assert len(again.problems) == 2  # the reused cache still reports them


def test_loader_batches_equal_with_and_without_cache(tmp_path):
    splits = Splits("x", ["a", "b", "c"], file_set(tmp_path / "t", 8), file_set(tmp_path / "v", 5, fmt="jpg"))
    pipeline = build_pipeline("basic", AugmentRequest(image_size=24, num_classes=3))
    _, cached_val = build_loaders(splits, pipeline, batch_size=4, workers=2, seed=0, cache="disk")
    _, plain_val = build_loaders(splits, pipeline, batch_size=4, workers=0, seed=0, cache="off")
    for (a, ya), (b, yb) in zip(cached_val, plain_val):
        assert torch.equal(a, b) and torch.equal(ya, yb)


def test_eval_loader_decodes_only_the_validation_images(tmp_path):
    """``tlf evaluate`` decodes (and caches) the validation images alone; its batches are
    the training run's validation batches."""
    train, val = counting(file_set(tmp_path / "t", 8)), counting(file_set(tmp_path / "v", 5, fmt="jpg"))
    splits = Splits("x", ["a", "b", "c"], train, val)
    pipeline = build_pipeline("basic", AugmentRequest(image_size=24, num_classes=3))
    CountingSet.loads = 0
    alone = build_eval_loader(splits, pipeline, batch_size=4, workers=0, seed=0, cache="disk")
    assert CountingSet.loads == 5 and alone.cache_mode == "disk"
    assert decode_cache.find(val, pipeline.resize_short, pipeline.request.interpolation,
                             decode_cache.cache_dir("decoded"))[2]
    assert not decode_cache.find(train, pipeline.resize_short, pipeline.request.interpolation,
                                 decode_cache.cache_dir("decoded"))[2]
    _, with_train = build_loaders(splits, pipeline, batch_size=4, workers=0, seed=0, cache="disk")
    assert CountingSet.loads == 5 + 8  # the validation cache is reused
    batches = list(zip(alone, with_train))
    assert len(batches) == 2 and all(torch.equal(a, b) and torch.equal(ya, yb) for (a, ya), (b, yb) in batches)


def test_workers_get_a_path_not_the_pixels(tmp_path):
    cached = decode_cache.build(file_set(tmp_path / "img", 6), PIPELINE, tmp_path / "cache").images
    cached.load(0)  # maps the file in this process
    assert len(pickle.dumps(cached)) < 4 * 1024 < cached.nbytes
    clone = pickle.loads(pickle.dumps(cached))
    assert np.array_equal(clone.load(5), cached.load(5))


def test_damaged_cache_is_rebuilt(tmp_path):
    images = file_set(tmp_path / "img", 4)
    first = decode_cache.build(images, PIPELINE, tmp_path / "cache").images
    first.index_path.write_bytes(b"garbage")
    again = decode_cache.build(images, PIPELINE, tmp_path / "cache")
    assert again.built and np.array_equal(again.images.load(3), first.load(3))


def test_ram_cache_is_private_and_removed(tmp_path):
    result = decode_cache.build(file_set(tmp_path / "img", 4), PIPELINE, tmp_path / "shm", persist=False)
    paths = result.images.data_path, result.images.index_path
    assert all(p.exists() for p in paths) and str(os.getpid()) in paths[0].name
    del result
    gc.collect()
    assert not any(p.exists() for p in paths)


def test_ram_caches_of_dead_processes_are_removed(tmp_path):
    orphan = tmp_path / "shm" / "0123456789abcdef-0123456789abcdef-999999999-7f00.u8"  # no such pid
    orphan.parent.mkdir()
    orphan.write_bytes(b"x")
    live = orphan.with_name(f"0123456789abcdef-0123456789abcdef-{os.getpid()}-7f00.u8")
    live.write_bytes(b"x")
    decode_cache.build(file_set(tmp_path / "img", 2), PIPELINE, tmp_path / "shm", persist=False)
    assert not orphan.exists() and live.exists()


def test_images_already_small_enough_are_stored_as_they_are(tmp_path):
    images = array_set(6, height=27, width=40)  # short side 27 = the eval resize: nothing to downscale
    splits = Splits("a", ["a", "b", "c", "d"], images, images)
    _, val = build_loaders(splits, PIPELINE, batch_size=3, workers=0, seed=0, cache="disk")
    assert all(np.array_equal(val.dataset.images.load(i), images.load(i)) for i in range(6))
    direct = np.stack([PIPELINE.eval(images.load(i)) for i in range(3)])
    assert np.array_equal(next(iter(val))[0].permute(0, 2, 3, 1).numpy(), direct)


def test_auto_mode_follows_the_budget(tmp_path, monkeypatch):
    files = Splits("f", ["a", "b", "c"], file_set(tmp_path / "t", 6), file_set(tmp_path / "v", 3))
    arrays = Splits("a", ["a", "b", "c", "d"], array_set(8), array_set(4))
    assert choose_cache(arrays, PIPELINE, "auto")[0] == "off"
    monkeypatch.setenv("TLF_CACHE_BUDGET", "1K")  # 9 images of ~27x36x3 bytes do not fit
    mode, why = choose_cache(files, PIPELINE, "auto")
    assert mode == "off" and "budget" in why
    assert choose_cache(files, PIPELINE, "disk")[0] == "disk"  # explicit choice wins
    monkeypatch.setenv("TLF_CACHE_BUDGET", "1M")
    assert choose_cache(files, PIPELINE, "auto")[0] == "disk"
    build_loaders(files, PIPELINE, batch_size=2, workers=0, seed=0, cache="auto")
    monkeypatch.setenv("TLF_CACHE_BUDGET", "1K")
    assert choose_cache(files, PIPELINE, "auto") == ("disk", "a decode cache exists")


def test_parse_bytes():
    assert decode_cache.parse_bytes("2G") == 2 * 2**30
    assert decode_cache.parse_bytes("512mb") == 512 * 2**20
    assert decode_cache.parse_bytes("1000") == 1000
    with pytest.raises(ValueError):
        decode_cache.parse_bytes("lots")


def test_peak_memory_of_a_build_does_not_grow_with_the_dataset(tmp_path):
    images = file_set(tmp_path / "img", 60, sizes=((96, 128),))
    images.fingerprint(), [images.key(i) for i in range(60)]  # warm-up outside the measurement
    pipeline = build_pipeline("none", AugmentRequest(image_size=64, crop_pct=1.0))  # cache 64x85 per image
    tracemalloc.start()
    result = decode_cache.build(images, pipeline, tmp_path / "cache", threads=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_image = 96 * 128 * 3
    assert result.images.nbytes == 60 * 64 * 85 * 3
    # decoded pixels live in the memory-mapped file, not in the heap: a few images in flight per thread
    assert peak < 8 * per_image + 256 * 1024 < result.images.nbytes


def test_both_files_are_synced_before_they_are_renamed_into_place(tmp_path, monkeypatch):
    """A power cut after the rename must not leave a cache whose index names bytes never written."""
    images = file_set(tmp_path / "img", 4)
    synced, renamed = set(), []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    def replace(source, target):
        renamed.append((str(source), str(source) in synced))
        return real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    decode_cache.build(images, PIPELINE, tmp_path / "cache")
    assert len(renamed) == 2 and all(was_synced for _, was_synced in renamed), renamed


def test_a_failed_build_leaves_no_temp_file(tmp_path, monkeypatch):
    """The data file's rename fails (a disk error): neither its temp file nor the index's is left."""
    images = file_set(tmp_path / "img", 4)
    real_replace = os.replace

    def failing(source, target):
        if str(target).endswith(".u8"):
            raise OSError(5, "Input/output error")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(Exception):
        decode_cache.build(images, PIPELINE, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []
