"""A real multi-label image set from a class-per-folder tree: 2x2 mosaics of its photos.

    python benchmarks/mosaics.py --data path/to/flower_photos --out path/to/mosaics

Each mosaic is four tiles (each photo centre-cropped to a square and resized to
``--tile`` px, so a mosaic is 2 x tile px wide, 224 by default). A mosaic draws its
number of distinct classes uniformly from 1..4, that many distinct classes, and
fills the four tiles with each of them at least once (the remaining tiles repeat one
of them), in a shuffled order; each tile is a photo of its class drawn at random.
Its label set is the classes present. Training mosaics use only ``DATA/train``'s
photos, validation mosaics only ``DATA/val``'s, so no photo is in both splits.
Everything follows ``--seed``: the same command writes the same files.

Writes ``OUT/train/NNNNNN.jpg``, ``OUT/val/NNNNNN.jpg`` and ``OUT/labels.csv`` with
columns ``image`` (relative to OUT), ``label`` (the class names, sorted, separated by a
space) and ``split`` (train / val): the table format of ``tlf train --dataset table:PATH``.
"""
from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
SPLITS = ("train", "val")


def photos(split_dir: Path) -> dict[str, list[Path]]:
    """``{class: sorted photo paths}`` of one split's class folders."""
    classes = sorted(p for p in split_dir.iterdir() if p.is_dir())
    return {c.name: sorted(f for f in c.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for c in classes}


def draw_tiles(classes: list[str], rng: random.Random, tiles: int = 4) -> list[str]:
    """The class of each tile: 1..min(4, classes) distinct classes, each at least once, shuffled."""
    distinct = rng.randint(1, min(tiles, len(classes)))
    chosen = rng.sample(classes, distinct)
    layout = chosen + [rng.choice(chosen) for _ in range(tiles - distinct)]
    rng.shuffle(layout)
    return layout


def mosaic(paths: list[Path], tile: int) -> Image.Image:
    """The four photos as a 2x2 RGB mosaic of ``tile``-px squares (row by row)."""
    canvas = Image.new("RGB", (2 * tile, 2 * tile))
    for i, path in enumerate(paths):
        with Image.open(path) as photo:
            square = ImageOps.fit(photo.convert("RGB"), (tile, tile), Image.Resampling.BICUBIC)
        canvas.paste(square, ((i % 2) * tile, (i // 2) * tile))
    return canvas


def write_split(source: dict[str, list[Path]], split: str, count: int, out: Path, tile: int,
                rng: random.Random, quality: int) -> list[tuple[str, str, str]]:
    """``count`` mosaics of ``source``'s photos in ``out/split/``; their (image, label, split) rows."""
    classes = sorted(c for c, files in source.items() if files)
    (out / split).mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(count):
        layout = draw_tiles(classes, rng)
        name = f"{split}/{index:06d}.jpg"
        mosaic([rng.choice(source[c]) for c in layout], tile).save(out / name, quality=quality)
        rows.append((name, " ".join(sorted(set(layout))), split))
    return rows


def generate(data: Path, out: Path, counts: dict[str, int | None], tile: int = 112, seed: int = 0,
             quality: int = 90) -> Path:
    """Write the mosaics and ``out/labels.csv`` (see the module docstring); returns the CSV's path.

    A split's count of None means as many mosaics as the split has photos."""
    rows = []
    for split in SPLITS:
        source = photos(data / split)
        if not any(source.values()):
            raise SystemExit(f"{data / split}: no class folders with images; give --data a tree with train/ and val/")
        count = counts.get(split)
        count = sum(len(files) for files in source.values()) if count is None else count
        rows += write_split(source, split, count, out, tile, random.Random(f"{seed}-{split}"), quality)
    table = out / "labels.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("image", "label", "split"))
        writer.writerows(rows)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a class-per-folder tree with train/ and val/")
    parser.add_argument("--out", type=Path, required=True, help="folder for the mosaics and labels.csv")
    parser.add_argument("--train", type=int, default=None, help="training mosaics (default: one per training photo)")
    parser.add_argument("--val", type=int, default=None, help="validation mosaics (default: one per validation photo)")
    parser.add_argument("--tile", type=int, default=112, help="tile side in px (the mosaic is twice that)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    args = parser.parse_args()
    table = generate(args.data, args.out, {"train": args.train, "val": args.val}, args.tile, args.seed, args.quality)
    print(table)


if __name__ == "__main__":
    main()
