"""Augmentation plugins and their composition into a Pipeline."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from imagefiles import random_images
from tlf.augment import AugmentRequest, Augmentation, build_pipeline, sample_seed
from tlf.augment.mixing import CutMix, MixUp
from tlf.errors import TlfError

REQUEST = AugmentRequest(image_size=32, num_classes=4, seed=3)
IMAGE = random_images(1, 45, 60, seed=1)[0]
ALL = ["none", "basic", "flip", "strong", "cutout", "randaugment", "randaugment:3,5", "trivialaugment",
       "basic+cutout+mixup", "basic+mixup+cutmix:0.5", "rand+basic", "trivial+flip"]


@pytest.mark.parametrize("text", ALL)
def test_every_augmentation_gives_uint8_at_input_size(text):
    pipeline = build_pipeline(text, REQUEST)
    views = set()
    for seed in range(20):
        out = pipeline.train(IMAGE, seed)
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        views.add(out.tobytes())
    assert pipeline.eval(IMAGE).shape == (32, 32, 3)
    assert len(views) == 1 if text == "none" else len(views) > 1


def test_train_is_seeded_per_call_and_varies_with_the_seed():
    pipeline = build_pipeline("strong", REQUEST)
    views = [pipeline.train(IMAGE, s) for s in range(8)]
    assert np.array_equal(views[5], pipeline.train(IMAGE, 5))  # same seed, same view, whatever came before
    assert len({v.tobytes() for v in views}) == 8
    again = build_pipeline("strong", REQUEST)  # a fresh pipeline (another worker, another run)
    assert np.array_equal(again.train(IMAGE, 2), views[2])


def test_sample_seed_differs_per_epoch_and_index():
    seeds = {sample_seed(0, e, i) for e in range(5) for i in range(50)}
    assert len(seeds) == 250
    assert sample_seed(1, 0, 0) != sample_seed(0, 0, 0)


def test_eval_resizes_short_side_then_center_crops():
    request = AugmentRequest(image_size=32, crop_pct=0.5)  # short side 64, center 32x32
    pipeline = build_pipeline("none", request)
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 100:] = 255  # right half white: the center crop straddles the edge
    out = pipeline.eval(image)
    assert out.shape == (32, 32, 3)
    assert out[:, :14].max() == 0 and out[:, 18:].min() == 255
    assert np.array_equal(out, pipeline.eval(image))
    assert pipeline.deterministic_train and np.array_equal(pipeline.train(image, 1), out)


def test_non_cropping_train_resizes_like_eval_then_augments():
    pipeline = build_pipeline("flip", REQUEST)
    flipped = {pipeline.train(IMAGE, s).tobytes() for s in range(16)}
    base = pipeline.eval(IMAGE)
    assert flipped == {base.tobytes(), base[:, ::-1].tobytes()}
    assert not pipeline.deterministic_train


def test_composition_order_crop_first_and_batch_choice():
    pipeline = build_pipeline("cutout+basic+mixup+cutmix", REQUEST)
    ops = [type(t).__name__ for t in pipeline.train_transform.compose.transforms]
    assert ops == ["RandomResizedCrop", "HorizontalFlip", "CoarseDropout"]
    assert pipeline.batch is not None
    picked = {type(pipeline.batch.choices[int(pipeline.batch.rng.integers(2))]).__name__ for _ in range(30)}
    assert picked == {"MixUp", "CutMix"}


@pytest.mark.parametrize("text, message", [
    ("basci", "did you mean 'basic'"),
    ("basic+nope", "unknown augmentation 'nope'"),
    ("basic+", "empty augmentation"),
    ("", "empty augmentation"),
    ("basic+strong", "both crop"),
    ("flip+flip", "listed twice"),
    ("mixup:abc", "augmentation 'mixup': bad argument 'abc': 'abc' is not a valid float"),
    ("cutmix:-1", "cutmix alpha must be a positive number"),
    ("randaugment:0,5", "bad randaugment argument"),
    ("randaugment:2,5,1", "'randaugment': bad argument '2,5,1': at most 2"),
    ("randaugment:2,x", "'x' is not a valid integer"),
    ("basic:3", "takes no argument"),
])
def test_bad_text_is_a_tlf_error(text, message):
    with pytest.raises(TlfError, match=message):
        build_pipeline(text, REQUEST)


def test_mixing_needs_classes_and_bad_request_fields_are_errors():
    with pytest.raises(TlfError, match="number of classes"):
        build_pipeline("mixup", AugmentRequest(image_size=32))
    with pytest.raises(TlfError, match="interpolation"):
        AugmentRequest(image_size=32, interpolation="fancy")
    with pytest.raises(TlfError, match="crop_pct"):
        AugmentRequest(image_size=32, crop_pct=1.5)


@pytest.mark.parametrize("mix", [MixUp(0.4, 5, seed=0), CutMix(1.0, 5, seed=0)])
def test_mixing_gives_soft_targets_summing_to_one(mix):
    x = torch.randn(16, 3, 24, 24)
    y = torch.arange(16) % 5
    for _ in range(5):
        mixed, soft = mix(x, y)
        assert mixed.shape == x.shape and soft.shape == (16, 5) and soft.dtype == torch.float32
        assert torch.allclose(soft.sum(1), torch.ones(16))
        assert (soft >= 0).all()
        assert not torch.equal(mixed, x)
    assert torch.equal(x, x.clone())  # input left alone


def test_cutmix_weights_match_pasted_area():
    mix = CutMix(1.0, 2, seed=1)
    x = torch.stack([torch.zeros(1, 20, 20), torch.ones(1, 20, 20)])  # class 0 black, class 1 white
    partial = 0
    for _ in range(20):
        mixed, soft = mix(x, torch.tensor([0, 1]))
        # the weight of class 1 in each target is the fraction of white pixels in its image
        assert mixed.mean(dim=(1, 2, 3)).tolist() == pytest.approx(soft[:, 1].tolist(), abs=1e-6)
        partial += int(0 < soft[0, 1] < 1)
    assert partial > 0


def test_batch_augmentations_are_seeded():
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8) % 4
    a = build_pipeline("mixup+cutmix", REQUEST).batch
    b = build_pipeline("mixup+cutmix", REQUEST).batch
    for _ in range(4):
        (xa, ya), (xb, yb) = a(x, y), b(x, y)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_third_party_cropper_must_end_at_input_size():
    from tlf.augment import Pipeline
    import albumentations as A
    pipeline = Pipeline("bad", REQUEST, [("bad", Augmentation(image=[A.RandomCrop(16, 16)], crops=True))])
    with pytest.raises(RuntimeError, match="must end at the image size"):
        pipeline.train(IMAGE, 0)


def test_registering_augmentations_imports_no_heavy_module():
    code = ("import sys; from tlf.registry import get_registry; "
            "names = get_registry().names('augmentations'); "
            "assert {'none', 'basic', 'strong', 'mixup', 'cutmix', 'randaugment'} <= set(names), names; "
            "heavy = [m for m in ('torch', 'albumentations', 'cv2') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)
