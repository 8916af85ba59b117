"""read_rgb and check_image on the image modes and broken files datasets meet."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile

from _data_helpers import truncate, write_image
from tlf.data.reading import UnreadableImage, check_image, image_size, is_image_file, read_rgb
from tlf.errors import TlfError


def test_rgb_jpeg_and_png_round_trip(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    out = read_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (10, 12, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, pixels)
    assert read_rgb(write_image(tmp_path / "b.jpg")).shape == (10, 12, 3)


def test_grayscale_and_bilevel_become_gray_rgb(tmp_path):
    Image.new("L", (7, 5), 77).save(tmp_path / "l.png")
    Image.new("1", (7, 5), 1).save(tmp_path / "b.bmp")
    np.testing.assert_array_equal(read_rgb(tmp_path / "l.png"), np.full((5, 7, 3), 77, np.uint8))
    np.testing.assert_array_equal(read_rgb(tmp_path / "b.bmp"), np.full((5, 7, 3), 255, np.uint8))


def test_cmyk_jpeg_is_converted(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    pixel = read_rgb(tmp_path / "c.jpg")[4, 4].astype(int)
    assert pixel[0] > 230 and pixel[1] < 30 and pixel[2] < 30  # pure red


def test_16bit_png_is_scaled_to_8bit(tmp_path):
    values = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = read_rgb(tmp_path / "g16.png")
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[..., 0], np.rint(values / 257).astype(np.uint8))
    assert out[-1, -1, 0] == 222 and (out[..., 0] == out[..., 2]).all()


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere
    rgba[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    rgba[2:, :, :3] = (0, 0, 0)  # hidden colour under the transparency
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_rgb(tmp_path / "a.png")
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[3, 3], [255, 255, 255])


def test_palette_with_and_without_transparency(tmp_path):
    img = Image.new("P", (6, 4), 1)
    img.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    img.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "p.png")[0, 0], [10, 200, 30])
    img.save(tmp_path / "pt.png", transparency=1)
    np.testing.assert_array_equal(read_rgb(tmp_path / "pt.png")[0, 0], [255, 255, 255])


def test_truncated_files_raise_with_path_and_reason(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    for name in ("t.jpg", "t.png"):
        path = truncate(write_image(tmp_path / name, size=(120, 90)))
        with pytest.raises(UnreadableImage) as info:
            read_rgb(path)
        assert info.value.path == str(path) and "truncated" in info.value.reason
        assert isinstance(info.value, TlfError) and str(path) in str(info.value)
        assert "truncated" in check_image(path)


def test_corrupt_and_missing_files(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not an image at all")
    with pytest.raises(UnreadableImage, match="cannot identify") as caught:
        read_rgb(tmp_path / "x.jpg")
    assert "name=" not in str(caught.value)  # not PIL's file-object repr, whose descriptor number varies
    assert check_image(tmp_path / "x.jpg") is not None
    assert image_size(tmp_path / "x.jpg") is None
    with pytest.raises(UnreadableImage, match="No such file"):
        read_rgb(tmp_path / "missing.png")


def test_check_image_accepts_good_files_and_reads_sizes(tmp_path):
    path = write_image(tmp_path / "ok.jpg", size=(40, 30))
    assert check_image(path) is None
    assert image_size(path) == (40, 30)


def test_is_image_file():
    assert is_image_file("a/b.JPG") and is_image_file("x.png") and is_image_file("y.webp")
    assert not is_image_file("LICENSE.txt") and not is_image_file("notes.md") and not is_image_file(".hidden.jpg")


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert read_rgb(tmp_path / "r.jpg").shape == (20, 10, 3)
