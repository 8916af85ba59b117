"""The downloadable image-folder datasets: flowers and cats_and_dogs."""
from __future__ import annotations

from pathlib import Path

from tlf.data.download import Archive, fetch_and_extract
from tlf.data.folder import load_folder
from tlf.data.dataset import DatasetRequest, Splits
from tlf.errors import TlfError

# SHA-256 as published in TensorFlow Datasets' url_checksums/tf_flowers.txt (228813984 bytes)
FLOWERS = Archive(
    url="https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
    filename="flower_photos.tgz",
    sha256="4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c",
)
# no published checksum known to us: the SHA-256 of the first download is recorded and checked afterwards
CATS_AND_DOGS = Archive(
    url="https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip",
    filename="cats_and_dogs_filtered.zip",
)


def locate(request: DatasetRequest, dataset: str, archive: Archive, extracted_name: str) -> Path:
    """The dataset's folder: ``--data-dir`` (itself, or its ``extracted_name`` sub-folder), else the
    cache copy under ``request.cache_dir/dataset``, downloaded and extracted when missing."""
    if request.data_dir is not None:
        data_dir = Path(request.data_dir).expanduser()
        if not data_dir.is_dir():
            raise TlfError(f"--data-dir {data_dir} is not a folder",
                           hint=f"pass the extracted {extracted_name} folder or the folder that holds it")
        inner = data_dir / extracted_name
        return inner if inner.is_dir() else data_dir
    return fetch_and_extract(archive, Path(request.cache_dir) / dataset, extracted_name,
                             allow_network=request.download)


def flowers(argument: None, request: DatasetRequest) -> Splits:
    """TensorFlow's flower_photos: its train/ and val/ when present, else a seeded stratified split."""
    return load_folder(locate(request, "flowers", FLOWERS, "flower_photos"), request, name="flowers")


def cats_and_dogs(argument: None, request: DatasetRequest) -> Splits:
    """cats_and_dogs_filtered: train/ and validation/, each with cats/ and dogs/."""
    return load_folder(locate(request, "cats_and_dogs", CATS_AND_DOGS, "cats_and_dogs_filtered"), request,
                       name="cats_and_dogs")
