"""The reference a user would write: torchvision's ImageFolder, PIL transforms and a DataLoader,
float32 batches copied to the device as they come."""
from __future__ import annotations

from pathlib import Path
from torch.utils.data import DataLoader

from ..preprocessing import Preprocessing


def naive_loader(data: Path, preprocessing: Preprocessing, batch_size: int, workers: int) -> DataLoader:
    """The textbook training loader: random resized crop, flip, to tensor, normalise, all in PIL/torch per image."""
    from torchvision import datasets, transforms

    p = preprocessing
    transform = transforms.Compose([transforms.RandomResizedCrop(p.image_size), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(p.mean, p.std)])
    return DataLoader(datasets.ImageFolder(str(data), transform=transform), batch_size=batch_size, shuffle=True,
                      num_workers=workers, drop_last=True, persistent_workers=workers > 0)
