"""Built-in datasets: downloadable archives (flowers, cats_and_dogs, cifar10), any class-per-folder
tree (folder:PATH) and generated shapes (synthetic).

Factories import their modules on first use, so listing plugins stays fast.
"""
from __future__ import annotations

from typing import Callable

from tlf.hookspecs import hookimpl
from tlf.specs import DatasetSpec


def _flowers(argument, request):
    from .archives import flowers
    return flowers(request)


def _cats_and_dogs(argument, request):
    from .archives import cats_and_dogs
    return cats_and_dogs(request)


def _cifar10(argument, request):
    from .cifar import cifar10
    return cifar10(request)


def _folder(argument, request):
    from pathlib import Path

    from tlf.data.folder import load_folder
    return load_folder(Path(argument), request)


def _synthetic(argument, request):
    from .synthetic import synthetic
    return synthetic(argument, request)


@hookimpl
def tlf_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec(
        name="flowers", factory=_flowers, aliases=("flower_photos", "tf_flowers"), downloads=True, num_classes=5,
        description="TensorFlow flower_photos: 3670 photos of 5 flowers (218 MB); seeded 80/20 split "
                    "unless the folder has train/ and val/"))
    register(DatasetSpec(
        name="cats_and_dogs", factory=_cats_and_dogs, aliases=("cats_and_dogs_filtered", "cats_vs_dogs"),
        downloads=True, num_classes=2,
        description="cats_and_dogs_filtered (Kaggle Dogs vs. Cats subset): 2000 train, 1000 validation (66 MB)"))
    register(DatasetSpec(
        name="cifar10", factory=_cifar10, aliases=("cifar-10",), downloads=True, num_classes=10,
        description="CIFAR-10 python pickles: 50000 train, 10000 test images of 32x32 px, 10 classes (163 MB)"))
    register(DatasetSpec(
        name="folder", factory=_folder, argument="PATH", argument_required=True,
        description="any class-per-folder tree; uses train/ + val/|validation/|test/ when present, "
                    "else a seeded stratified split"))
    register(DatasetSpec(
        name="synthetic", factory=_synthetic, argument="OPTIONS",
        description="offline generated coloured shapes on textured backgrounds (6 classes, 64 px); "
                    "options like synthetic:train=80,val=20,size=64,classes=6"))
