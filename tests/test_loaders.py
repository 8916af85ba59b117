"""Loaders: uint8 batches, reproducible per seed, new augmentations per epoch, device normalization."""
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from _data_helpers import make_class_tree
from imagefiles import array_set, file_set
from tlf.augment import AugmentRequest, build_pipeline
from tlf.cli import cli
from tlf.data import FileImageSet, Problem, Splits
from tlf.data.dataset import report_skipped
from tlf.data.model_input import to_model_input
from tlf.data.loaders import EpochSampler, build_loaders
from tlf.errors import TlfError
from tlf.hookspecs import hookimpl
from tlf.pluginmanager import get_plugin_manager
from tlf.specs import DatasetSpec

REQUEST = AugmentRequest(image_size=24, num_classes=3, seed=0)


def _epochs(loader, n):
    out = []
    for epoch in range(n):
        loader.set_epoch(epoch)
        out.append([(x.clone(), y.clone()) for x, y in loader])
    return out


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


@pytest.fixture(scope="module")
def file_splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return Splits("files", ["a", "b", "c"], file_set(root / "train", 18), file_set(root / "val", 7, fmt="jpg"))


def test_batches_are_uint8_nchw_with_int64_labels(file_splits):
    train, val = build_loaders(file_splits, build_pipeline("basic", REQUEST), batch_size=4, workers=0, seed=0,
                               cache="off")
    x, y = next(iter(train))
    assert x.shape == (4, 3, 24, 24) and x.dtype == torch.uint8
    assert y.dtype == torch.int64 and y.shape == (4,)
    assert len(train) == 4  # 18 images, drop_last
    sizes = [x.shape[0] for x, _ in val]
    assert sizes == [4, 3]  # all 7, in order
    assert [int(v) for _, y in val for v in y] == list(file_splits.val.labels)


def test_two_epochs_with_workers_differ_and_two_runs_are_identical(file_splits):
    pipeline = build_pipeline("strong", REQUEST)
    train, _ = build_loaders(file_splits, pipeline, batch_size=6, workers=2, seed=7, cache="disk")
    first = _epochs(train, 2)
    assert not _same(first[0], first[1])
    # same images each epoch (a permutation), different views
    assert sorted(int(v) for _, y in first[0] for v in y) == sorted(int(v) for _, y in first[1] for v in y)
    again, _ = build_loaders(file_splits, build_pipeline("strong", REQUEST), batch_size=6, workers=2, seed=7,
                             cache="disk")
    assert _same(first[0], _epochs(again, 1)[0])
    single, _ = build_loaders(file_splits, build_pipeline("strong", REQUEST), batch_size=6, workers=0, seed=7,
                              cache="disk")
    assert _same(first[1], _epochs(single, 2)[1])  # the number of workers does not matter
    other, _ = build_loaders(file_splits, build_pipeline("strong", REQUEST), batch_size=6, workers=0, seed=8,
                             cache="disk")
    assert not _same(first[0], _epochs(other, 1)[0])


def test_epochs_advance_without_set_epoch_and_set_epoch_replays():
    splits = Splits("arrays", ["a", "b", "c"], array_set(12, classes=3), array_set(5, classes=3, seed=1))
    train, _ = build_loaders(splits, build_pipeline("basic", REQUEST), batch_size=4, workers=2, seed=0)
    e0, e1 = [x for x, _ in train], [x for x, _ in train]
    assert not _same([(a, a) for a in e0], [(b, b) for b in e1])
    train.set_epoch(0)
    assert all(torch.equal(a, b) for a, b in zip(e0, [x for x, _ in train]))


def test_streaming_replaces_an_unreadable_image_with_one_notice(tmp_path, capsys):
    images = file_set(tmp_path / "img", 4)
    images.paths[1].write_bytes(b"broken")
    splits = Splits("s", ["a", "b", "c"], images, images)
    pipeline = build_pipeline("none", REQUEST)
    _, val = build_loaders(splits, pipeline, batch_size=4, workers=0, seed=0, cache="off")
    x, _ = next(iter(val))
    next(iter(val))  # met again: not reported again
    err = capsys.readouterr().err
    assert "skipped 1 unreadable image(s): " in err and err.count("img001.png") == 1, err
    assert torch.equal(x[1], x[2])  # image 2 stands in for image 1
    assert np.array_equal(x[2].permute(1, 2, 0).numpy(), pipeline.eval(images.load(2)))


def test_skipped_images_are_one_line_with_the_count_and_the_first_three(capsys):
    report_skipped([Problem(f"/d/[{i}].jpg", "truncated") for i in range(5)])  # brackets: plain text, not markup
    assert capsys.readouterr().err == ("skipped 5 unreadable image(s): /d/[0].jpg (truncated), /d/[1].jpg (truncated), "
                                       "/d/[2].jpg (truncated) and 2 more; 'tlf data show' lists them\n")
    report_skipped([])
    assert capsys.readouterr().err == ""


def unchecked_dataset(root):
    """A dataset plugin that hands out its files unscanned (as a third-party one may): the loaders
    meet ``broken.jpg`` themselves, in the train images only."""
    def factory(argument, request):
        classes = sorted(p.name for p in root.iterdir())
        train = sorted(root.glob("*/*"))
        val = [p for p in train if p.name != "broken.jpg"]
        labels = lambda paths: [classes.index(p.parent.name) for p in paths]  # noqa: E731
        return Splits("unchecked", classes, FileImageSet(train, labels(train)), FileImageSet(val, labels(val)), root)
    return DatasetSpec(name="unchecked", description="files the loaders meet unscanned", factory=factory)


@pytest.mark.parametrize("cache", ["ram", "off"])
def test_tlf_train_reports_an_unreadable_image_once(tmp_path, cache):
    """The decode cache (ram) or the streaming loader (off, two epochs) meets the broken image:
    `tlf train` names it once (it used to be twice: by the cache and by the run's set-up, or once an epoch,
    or again by the end-of-run evaluation), and says once how the images are cached."""
    root = make_class_tree(tmp_path / "images", {"a": 4, "b": 4})
    (root / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    spec = unchecked_dataset(root)
    pm = get_plugin_manager()
    pm.register_object(SimpleNamespace(tlf_register_datasets=hookimpl(lambda register: register(spec))),
                       "test-unchecked")
    try:
        result = CliRunner().invoke(cli, ["train", "--dataset", "unchecked", "--backbone", "efficientnet_lite0",
                                          "--policy", "transfer", "--epochs", "2", "--image-size", "32",
                                          "--batch-size", "4", "--workers", "0", "--device", "cpu", "--augment",
                                          "none", "--cache", cache, "--out", str(tmp_path / "runs"),
                                          *(["--no-report"] if cache == "off" else [])])
    finally:
        pm.unregister(name="test-unchecked")
        pm.infos.pop("test-unchecked", None)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("broken.jpg") == 1, result.stderr
    assert "skipped 1 unreadable image(s): " in result.stderr
    lines = result.stderr.splitlines()  # not a terminal: plain lines, each after the time of day
    assert all(re.match(r"\d\d:\d\d:\d\d \S", line) for line in lines if not line.startswith("Warning:")), lines
    assert sum(bool(re.match(r"\S+ images: ", line)) for line in lines) == 1, lines  # how they are cached
    assert any(" plan: 2 epoch(s) of " in line for line in lines)


def test_eval_loader_is_deterministic(file_splits):
    pipeline = build_pipeline("strong", REQUEST)
    _, val = build_loaders(file_splits, pipeline, batch_size=3, workers=2, seed=0, cache="off")
    a, b = [x for x, _ in val], [x for x, _ in val]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    direct = np.stack([pipeline.eval(file_splits.val.load(i)) for i in range(3)])
    assert np.array_equal(a[0].permute(0, 2, 3, 1).numpy(), direct)


def _fake_process_group(monkeypatch, rank, events=None):
    """torch.distributed as seen by ``rank`` of 2, without a process group."""
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: 2, raising=False)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *a, **k: rank, raising=False)
    monkeypatch.setattr(torch.distributed, "barrier", lambda *a, **k: events.append("barrier"), raising=False)


def test_sampler_shards_for_distributed(monkeypatch):
    _fake_process_group(monkeypatch, 0)
    rank0 = EpochSampler(10, seed=0, distributed=True)
    _fake_process_group(monkeypatch, 1)
    rank1 = EpochSampler(10, seed=0, distributed=True)
    a, b = [i for _, i in rank0], [i for _, i in rank1]
    assert len(a) == len(b) == 5 and sorted(a + b) == list(range(10))
    assert [e for e, _ in rank0] == [1] * 5  # the next pass is the next epoch


@pytest.mark.parametrize("rank, order", [(0, ["build", "build", "barrier"]), (1, ["barrier", "build", "build"])])
def test_distributed_rank0_builds_the_cache_first(monkeypatch, file_splits, rank, order):
    from tlf.data import cache as decode_cache
    events = []
    real_build = decode_cache.build
    monkeypatch.setattr(decode_cache, "build", lambda *a, **k: events.append("build") or real_build(*a, **k))
    _fake_process_group(monkeypatch, rank, events)
    train, val = build_loaders(file_splits, build_pipeline("none", REQUEST), batch_size=2, workers=0, seed=0,
                               cache="disk", distributed=True)
    assert events == order
    assert len(train.sampler) == 9 and len(val.sampler) == 4  # this rank's half (val padded)


def test_distributed_needs_initialized_process_group(file_splits):
    with pytest.raises(TlfError, match="torch.distributed"):
        build_loaders(file_splits, build_pipeline("none", REQUEST), batch_size=2, workers=0, seed=0,
                      cache="off", distributed=True)


def test_bad_cache_mode_and_batch_size(file_splits):
    pipeline = build_pipeline("none", REQUEST)
    with pytest.raises(TlfError, match="unknown cache mode"):
        build_loaders(file_splits, pipeline, batch_size=2, workers=0, seed=0, cache="sometimes")
    with pytest.raises(TlfError, match="batch size"):
        build_loaders(file_splits, pipeline, batch_size=0, workers=0, seed=0)


def test_to_model_input_normalizes_on_the_device():
    images = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    x = to_model_input(images, mean, std, "cpu")
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(x, expected, atol=1e-5)
    assert x.is_contiguous(memory_format=torch.channels_last)
    plain = to_model_input(images, mean, std, torch.device("cpu"), channels_last=False, dtype=torch.bfloat16)
    assert plain.dtype == torch.bfloat16 and plain.is_contiguous()
    assert torch.allclose(plain.float(), expected, atol=3e-2)
    nhwc = images.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # how loader batches are laid out
    for channels_last in (True, False):
        assert torch.allclose(to_model_input(nhwc, mean, std, "cpu", channels_last=channels_last), expected, atol=1e-5)


def test_a_crop_of_the_whole_image_from_a_read_only_cache_comes_back_writable():
    """CIFAR at 32 px: RandomResizedCrop sometimes draws the whole 32x32 image, albumentations
    then hands back the decode cache's read-only array itself, and torch.from_numpy warned
    "The given NumPy array is not writable" in every loader worker of the run."""
    image = array_set(1, 24, 24).images[0]
    image.setflags(write=False)  # as the disk decode cache maps it
    transform = build_pipeline("basic", REQUEST).train_transform
    assert all(transform(image, seed).flags.writeable for seed in range(3000))
