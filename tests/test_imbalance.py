"""Class weights in the loss, the balanced sampler, balanced accuracy."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from tlf.config import RunConfig
from tlf.data.loaders import EpochSampler, balanced_weights
from tlf.engine.imbalance import EFFECTIVE_BETA, class_weights
from tlf.engine.metrics import classification_report
from tlf.errors import TlfError

LABELS = np.array([0, 0, 0, 1])  # 3:1
CLASSES = ["cat", "dog"]


def test_auto_weights_are_inverse_frequency_and_change_the_loss_as_by_hand():
    weights = class_weights("auto", LABELS, CLASSES)
    np.testing.assert_allclose(weights, [4 / (2 * 3), 4 / (2 * 1)])  # N / (C * n_c)
    logits = torch.tensor([[2.0, 0.0], [0.5, 0.2], [0.0, 1.0], [1.0, 0.0]])
    target = torch.tensor(LABELS)
    per_image = -torch.log_softmax(logits, 1)[torch.arange(4), target]
    w = torch.tensor(weights, dtype=torch.float32)[target]
    by_hand = (w * per_image).sum() / w.sum()
    loss = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))(logits, target)
    assert loss.item() == pytest.approx(by_hand.item())
    assert loss.item() != pytest.approx(per_image.mean().item())


def test_effective_number_weights():
    weights = class_weights("effective", LABELS, CLASSES)
    raw = (1 - EFFECTIVE_BETA) / (1 - EFFECTIVE_BETA ** np.array([3, 1]))
    np.testing.assert_allclose(weights, raw * 4 / (raw * [3, 1]).sum())
    assert (weights * [3, 1]).sum() == pytest.approx(4)  # mean weight over the samples is 1
    assert class_weights("none", LABELS, CLASSES) is None


def test_weights_file_as_mapping_or_list(tmp_path):
    (tmp_path / "w.json").write_text(json.dumps({"dog": 3, "cat": 1.5}))
    np.testing.assert_allclose(class_weights(str(tmp_path / "w.json"), LABELS, CLASSES), [1.5, 3])
    (tmp_path / "w.yaml").write_text("[2, 5]\n")
    np.testing.assert_allclose(class_weights(str(tmp_path / "w.yaml"), LABELS, CLASSES), [2, 5])


@pytest.mark.parametrize("content, message", [
    ({"cat": 1}, "missing dog"),
    ({"cat": 1, "dog": 1, "cow": 2}, "unknown cow"),
    ([1, 2, 3], "3 weight.s. for 2 classes"),
    ({"cat": 1, "dog": -1}, "above 0"),
    ({"cat": 1, "dog": "x"}, "not a number"),
])
def test_bad_weights_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(content))
    with pytest.raises(TlfError, match=message):
        class_weights(str(path), LABELS, CLASSES)


def test_unknown_class_weights_setting_is_a_config_error():
    with pytest.raises(TlfError, match="invalid class_weights 'inverse'"):
        RunConfig(class_weights="inverse").checked()


def test_balanced_sampler_draws_classes_equally_and_shards_one_draw_over_ranks():
    labels = np.array([0] * 900 + [1] * 100)
    sampler = EpochSampler(len(labels), seed=3, weights=balanced_weights(labels))
    drawn = [i for _, i in sampler]
    assert len(drawn) == 1000
    share = Counter(labels[drawn])[1] / len(drawn)
    assert 0.45 < share < 0.55  # 0.1 when shuffling
    ranks = []
    for rank in range(2):  # what each of two torchrun processes draws (same seed, its own share)
        shard = EpochSampler(len(labels), seed=3, weights=balanced_weights(labels))
        shard.rank, shard.world = rank, 2
        shard.set_epoch(0)
        ranks.append([i for _, i in shard])
    assert len(ranks[0]) == len(ranks[1]) == 500
    sampler.set_epoch(0)
    assert sorted(ranks[0] + ranks[1]) == sorted(i for _, i in sampler)  # together: the one draw
    sampler.set_epoch(1)
    assert [i for _, i in sampler] != drawn  # a new draw each epoch


def test_balanced_accuracy_is_the_mean_recall():
    labels = np.array([0] * 8 + [1] * 2)
    logits = np.zeros((10, 2))
    logits[:, 0] = 1  # always predicts the majority class
    report = classification_report(logits, labels, CLASSES, top_k=1)
    assert report["accuracy"] == pytest.approx(0.8)
    assert report["balanced_accuracy"] == pytest.approx(0.5)
    assert report["macro_f1"] == pytest.approx((2 * 0.8 / 1.8) / 2)
