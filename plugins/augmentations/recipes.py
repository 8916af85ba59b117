"""Factories of the built-in augmentations (albumentations 2.0.x, uint8 HWC)."""
from __future__ import annotations

from tlf.augment import AugmentRequest, Augmentation  # sets NO_ALBUMENTATIONS_UPDATE first
from tlf.errors import TlfError

import albumentations as A  # noqa: E402  (after tlf.augment)


def _random_crop(request: AugmentRequest) -> list:
    return [A.RandomResizedCrop((request.image_size, request.image_size), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                                interpolation=request.cv2_interpolation, area_for_downscale="image", p=1.0),
            A.HorizontalFlip(p=0.5)]


def _dropout(holes: tuple[int, int], side: tuple[float, float], p: float) -> A.CoarseDropout:
    return A.CoarseDropout(num_holes_range=holes, hole_height_range=side, hole_width_range=side, fill=0, p=p)


def none(argument: str | None, request: AugmentRequest) -> Augmentation:
    return Augmentation()


def basic(argument: str | None, request: AugmentRequest) -> Augmentation:
    return Augmentation(image=_random_crop(request), crops=True)


def flip(argument: str | None, request: AugmentRequest) -> Augmentation:
    return Augmentation(image=[A.HorizontalFlip(p=0.5)])


def strong(argument: str | None, request: AugmentRequest) -> Augmentation:
    return Augmentation(image=[
        *_random_crop(request),
        A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8),
        A.Affine(rotate=(-15, 15), translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), shear=(-10, 10),
                 interpolation=request.cv2_interpolation, p=0.5),
        _dropout((1, 3), (0.1, 0.25), p=0.5),
    ], crops=True)


def cutout(argument: str | None, request: AugmentRequest) -> Augmentation:
    return Augmentation(image=[_dropout((1, 2), (0.2, 0.4), p=1.0)])


def _ops(fraction: float, request: AugmentRequest) -> list:
    """RandAugment's operations, each always applied, magnitudes drawn from [-max, max] * fraction."""
    f = fraction
    interp = request.cv2_interpolation
    return [
        A.NoOp(p=1.0),
        A.AutoContrast(p=1.0),
        A.Equalize(p=1.0),
        A.Affine(rotate=(-30 * f, 30 * f), interpolation=interp, p=1.0),
        A.Affine(shear={"x": (-17 * f, 17 * f), "y": (0, 0)}, interpolation=interp, p=1.0),
        A.Affine(shear={"x": (0, 0), "y": (-17 * f, 17 * f)}, interpolation=interp, p=1.0),
        A.Affine(translate_percent={"x": (-0.3 * f, 0.3 * f), "y": (0, 0)}, interpolation=interp, p=1.0),
        A.Affine(translate_percent={"x": (0, 0), "y": (-0.3 * f, 0.3 * f)}, interpolation=interp, p=1.0),
        A.ColorJitter(brightness=(1 - 0.9 * f, 1 + 0.9 * f), contrast=0, saturation=0, hue=0, p=1.0),
        A.ColorJitter(brightness=0, contrast=(1 - 0.9 * f, 1 + 0.9 * f), saturation=0, hue=0, p=1.0),
        A.ColorJitter(brightness=0, contrast=0, saturation=(1 - 0.9 * f, 1 + 0.9 * f), hue=0, p=1.0),
        A.Sharpen(alpha=(0.0, 0.9 * f), lightness=(1.0, 1.0), p=1.0),
        A.Posterize(num_bits=(max(1, round(8 - 4 * f)), 8), p=1.0),
        A.Solarize(threshold_range=(1.0 - f, 1.0), p=1.0),
    ]


def randaugment(argument: tuple[int, ...] | None, request: AugmentRequest) -> Augmentation:
    n, m = 2, 9
    if argument:
        n, m = argument[0], argument[1] if len(argument) == 2 else m
        if not (1 <= n <= 14 and 0 <= m <= 10):
            raise TlfError(f"bad randaugment argument {','.join(map(str, argument))!r}",
                           hint="write 'randaugment:N,M' with 1 <= N <= 14 ops and magnitude 0 <= M <= 10")
    return Augmentation(image=[A.SomeOf(_ops(m / 10, request), n=n, replace=False, p=1.0)])


def trivialaugment(argument: str | None, request: AugmentRequest) -> Augmentation:
    return Augmentation(image=[A.OneOf(_ops(1.0, request), p=1.0)])


def mixup(argument: float | None, request: AugmentRequest) -> Augmentation:
    from tlf.augment.mixing import MixUp
    return Augmentation(batch=MixUp(0.2 if argument is None else argument, request.num_classes, request.seed))


def cutmix(argument: float | None, request: AugmentRequest) -> Augmentation:
    from tlf.augment.mixing import CutMix
    return Augmentation(batch=CutMix(1.0 if argument is None else argument, request.num_classes, request.seed))
