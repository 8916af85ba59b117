"""Built-in datasets: downloadable archives (flowers, cats_and_dogs, cifar10), any class-per-folder
tree (folder:PATH), images listed in a table (table:PATH) and generated shapes (synthetic;
synthetic-multilabel: label sets).

Factories are ``"module:attr"`` references, imported on first use, so listing plugins stays fast.
"""
from __future__ import annotations

from typing import Callable

from tlf.hookspecs import hookimpl
from tlf.specs import DatasetSpec

HERE = "tlf.plugins.datasets"  # the factories, named as "module:attr" and imported when a dataset is loaded


@hookimpl
def tlf_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec(
        name="flowers", factory=f"{HERE}.archives:flowers", aliases=("flower_photos", "tf_flowers"), downloads=True, num_classes=5,
        description="TensorFlow's flower photos: 5 classes, 3670 images (218 MiB download)"))
    register(DatasetSpec(
        name="cats_and_dogs", factory=f"{HERE}.archives:cats_and_dogs", aliases=("cats_and_dogs_filtered", "cats_vs_dogs"),
        downloads=True, num_classes=2,
        description="Kaggle Dogs vs. Cats subset: 2000 train, 1000 val images (66 MB download)"))
    register(DatasetSpec(
        name="cifar10", factory=f"{HERE}.cifar:cifar10", aliases=("cifar-10",), downloads=True, num_classes=10,
        description="CIFAR-10: 10 classes, 50000 train, 10000 val images of 32 px (163 MiB download)"))
    register(DatasetSpec(
        name="folder", factory="tlf.data.folder:load_folder", parse="pathlib:Path", argument="PATH", argument_required=True,
        reads_folder=True, description="a class-per-folder tree; its train/ and val/ when present, else a seeded split"))
    register(DatasetSpec(
        name="table", factory=f"{HERE}.table:table", parse=f"{HERE}.table:parse_options", argument="PATH[,KEY=VALUE...]",
        argument_required=True,
        description="images listed in a CSV/TSV/parquet table (columns image, label, split); options: docs/datasets.md"))
    register(DatasetSpec(
        name="synthetic", factory=f"{HERE}.synthetic:synthetic", parse=f"{HERE}.synthetic:parse_options",
        argument="OPTIONS",
        description="generated coloured shapes (6 classes, 64 px; offline); OPTIONS e.g. train=80,val=20"))
    register(DatasetSpec(
        name="synthetic-multilabel", factory=f"{HERE}.synthetic_multilabel:synthetic_multilabel",
        parse=f"{HERE}.synthetic_multilabel:parse_options", argument="OPTIONS",
        description="generated 2x2 tiles holding 1-3 coloured shapes, labelled with the set of shapes (multi-label; "
                    "4 classes, 64 px; offline); OPTIONS e.g. train=120,val=40"))
