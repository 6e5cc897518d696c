"""Tests for galaxy_core.data.images, decoding one image: the crop and resize geometry, colour modes, and the fault
table for bad image files (each refused with its path and a reason, as ImageError, a DataError); property-based tests of
the loader (hypothesis) on drawn images, damaged ones and random bytes; the field of view of a folder's images. What a
folder does with a bad image is in test_catalog.py, test_data.py and test_prediction.py; FITS cutouts' own fields in
test_fitsimages.py."""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image, ImageFile

from galaxy_core.data import images
from galaxy_core.data.layout import DEFAULT_FOV
from galaxy_core.errors import DataError, ImageError

from conftest import IMAGE_FAULTS, PROPERTY, centre_square, smooth_galaxy, write_fault


@pytest.mark.parametrize("ext", ["png", "jpg"])
@pytest.mark.parametrize("size", [16, 33, 64])
def test_load_image_central_crop(tmp_path, ext, size):
    path = tmp_path / f"sq.{ext}"
    Image.fromarray(centre_square(200, 100)).save(path, quality=95)
    x = images.load_image(path, 0.5, size)
    assert x.shape == (3, size, size) and x.dtype == np.uint8
    # Lanczos reaches one output pixel past the crop into the black border; everything inside is white.
    assert x[:, 1:-1, 1:-1].min() >= 245
    assert x.mean() > 240
    whole = images.load_image(path, 1.0, 40)
    assert whole.mean() / 255 == pytest.approx(0.25, abs=0.01)  # the white square is a quarter of the frame


def test_load_image_non_square_crops_the_shorter_side(tmp_path):
    a = np.zeros((200, 300, 3), np.uint8)
    a[50:150, 100:200] = 255  # central 100 x 100 of a 300 x 200 image
    Image.fromarray(a).save(tmp_path / "w.png")
    x = images.load_image(tmp_path / "w.png", 0.5, 20)
    assert x.shape == (3, 20, 20)
    assert x[:, 1:-1, 1:-1].min() >= 245


@pytest.mark.parametrize("crop,size", [(DEFAULT_FOV, 80), (0.5, 64), (1.0, 53), (0.9, 100)])
def test_load_image_jpeg_draft_matches_png(tmp_path, crop, size):
    img = smooth_galaxy(424)
    Image.fromarray(img).save(tmp_path / "g.png")
    Image.fromarray(img).save(tmp_path / "g.jpg", quality=95)
    p = images.load_image(tmp_path / "g.png", crop, size).astype(float)
    j = images.load_image(tmp_path / "g.jpg", crop, size).astype(float)
    assert np.abs(p - j).mean() < 1.0
    assert np.abs(p - j).max() <= 6


def test_load_image_greyscale_and_cmyk_become_rgb(tmp_path):
    img = smooth_galaxy(128)
    Image.fromarray(img[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(img[..., 0]).save(tmp_path / "grey.jpg", quality=95)
    Image.fromarray(img).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    Image.fromarray(img).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(img).convert("P").save(tmp_path / "pal.png")
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    ref = images.load_image(tmp_path / "grey.png", 1.0, 32)
    assert ref.shape == (3, 32, 32)
    assert (ref[0] == ref[1]).all() and (ref[1] == ref[2]).all()
    g = images.load_image(tmp_path / "grey.jpg", 1.0, 32)
    assert (g[0] == g[1]).all() and np.abs(g.astype(float) - ref).mean() < 1.0
    rgb = images.load_image(tmp_path / "rgba.png", 1.0, 32).astype(float)
    c = images.load_image(tmp_path / "cmyk.jpg", 1.0, 32).astype(float)
    assert c.shape == (3, 32, 32) and np.abs(c - rgb).mean() < 1.0
    assert images.load_image(tmp_path / "pal.png", 1.0, 32).shape == (3, 32, 32)


def test_load_image_rejects_bad_crop(tmp_path):
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    for crop in (0.0, 1.5):
        with pytest.raises(DataError, match="crop"):
            images.load_image(tmp_path / "a.png", crop, 8)


@pytest.mark.parametrize("fault", list(IMAGE_FAULTS))
def test_bad_image_is_refused_with_its_path_and_reason(tmp_path, monkeypatch, fault):
    path = tmp_path / "100.jpg"
    write_fault(fault, path, monkeypatch)
    with pytest.raises(ImageError) as e:
        images.load_image(path, 0.5, 32)
    assert IMAGE_FAULTS[fault] in e.value.reason and e.value.path == str(path)
    assert str(e.value).startswith(f"{path}: ")
    assert isinstance(e.value, DataError)
    with pytest.raises(ImageError) as full:  # the whole image, as the Dataset page shows it
        images.full_image(path, 0.5)
    assert IMAGE_FAULTS[fault] in full.value.reason
    good = tmp_path / "good.png"
    Image.fromarray(smooth_galaxy(64)).save(good)
    out = [r for _, r in images.decode_images([good, path, good], 0.5, 16, workers=1)]
    assert out[0].shape == out[2].shape == (3, 16, 16) and IMAGE_FAULTS[fault] in out[1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_for_real(tmp_path):
    path = tmp_path / "1.jpg"
    Image.new("RGB", (64, 64)).save(path)
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match="permission denied"):
            images.load_image(path, 1.0, 16)
    finally:
        path.chmod(0o644)


def test_truncated_jpeg_is_never_filled_with_grey(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    path = tmp_path / "t.jpg"
    Image.fromarray(smooth_galaxy(128)).save(path, quality=95)
    whole = path.read_bytes()
    for cut in (len(whole) // 4, len(whole) // 2, len(whole) - 200):
        path.write_bytes(whole[:cut])
        with pytest.raises(ImageError, match="truncated"):
            images.load_image(path, 1.0, 64)


def decoded(path: Path, size: int = 16) -> np.ndarray:
    x = images.load_image(path, 1.0, size)
    assert x.shape == (3, size, size) and x.dtype == np.uint8
    return x


def test_png_named_jpg_decodes(tmp_path):
    Image.fromarray(smooth_galaxy(64)).save(tmp_path / "a.png")
    (tmp_path / "a.jpg").write_bytes((tmp_path / "a.png").read_bytes())
    np.testing.assert_array_equal(decoded(tmp_path / "a.jpg"), decoded(tmp_path / "a.png"))


@pytest.mark.parametrize("mode,colour,expected", [
    ("L", 100, (100, 100, 100)),
    ("RGB", (200, 100, 50), (200, 100, 50)),
    ("P", (200, 100, 50), (200, 100, 50)),
    ("RGBA", (200, 100, 50, 255), (200, 100, 50)),
    ("RGBA", (200, 100, 50, 0), (0, 0, 0)),  # transparent is empty sky: black
    ("RGBA", (200, 100, 50, 128), (100, 50, 25)),
    ("LA", (200, 128), (100, 100, 100)),
    ("I;16", 0x8080, (128, 128, 128)),  # 16-bit greyscale scaled, not clipped to white
    ("I;16", 0xFFFF, (255, 255, 255)),
    ("I;16", 0x00FF, (1, 1, 1)),
])
def test_colour_modes_decode_to_the_right_colour(tmp_path, mode, colour, expected):
    rgb = Image.new("RGB", (16, 16), colour) if mode == "P" else None
    im = rgb.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else Image.new(mode, (16, 16), colour)
    im.save(tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as check:
        assert check.mode == mode
    x = decoded(tmp_path / "c.png").reshape(3, -1)
    assert np.abs(x.astype(int) - np.array(expected)[:, None]).max() <= 1


def test_16_bit_gradient_keeps_its_range(tmp_path):
    ramp = np.repeat(np.linspace(0, 65535, 64).round().astype(np.uint16)[None], 64, 0)
    Image.fromarray(ramp).save(tmp_path / "g.png")
    x = images.load_image(tmp_path / "g.png", 1.0, 64)[0].astype(float)
    np.testing.assert_allclose(x[32], ramp[32] / 257, atol=1.5)


def test_palette_with_partial_transparency_decodes_without_warning(tmp_path):
    im = Image.fromarray(np.repeat(np.arange(2, dtype=np.uint8), 8)[None].repeat(16, 0).reshape(16, 16), "P")
    im.putpalette([200, 100, 50] * 256)
    im.save(tmp_path / "p.png", transparency=bytes([0, 128] + [255] * 254))  # per-entry alpha, as bytes
    with Image.open(tmp_path / "p.png") as check:
        assert isinstance(check.info["transparency"], bytes)
    x = decoded(tmp_path / "p.png").astype(int)  # filterwarnings=error: a Pillow warning would fail here
    assert x[:, :, 0].max() <= 2 and np.abs(x[:, :, -1] - [[100], [50], [25]]).max() <= 2


def test_cmyk_jpeg_decodes_like_rgb(tmp_path):
    img = smooth_galaxy(64)
    Image.fromarray(img).save(tmp_path / "rgb.png")
    Image.fromarray(img).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert np.abs(decoded(tmp_path / "cmyk.jpg", 32).astype(float) - decoded(tmp_path / "rgb.png", 32)).mean() < 1.5


def test_image_error_pickles(tmp_path):
    e = pickle.loads(pickle.dumps(ImageError(tmp_path / "a.jpg", "empty file (0 bytes)")))
    assert (e.path, e.reason, str(e)) == (str(tmp_path / "a.jpg"), "empty file (0 bytes)",
                                          f"{tmp_path / 'a.jpg'}: empty file (0 bytes)")


@st.composite
def image_files(draw):
    """An image file's bytes: a drawn image in some mode and size as PNG or JPEG, maybe damaged."""
    mode = draw(st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"]))
    fmt = {"L": draw(st.sampled_from(["PNG", "JPEG"])), "RGB": draw(st.sampled_from(["PNG", "JPEG"])),
           "CMYK": "JPEG"}.get(mode, "PNG")  # the formats that hold the mode
    w, h = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    bands = len(Image.new(mode, (1, 1)).getbands())
    top = 65535 if mode == "I;16" else 255
    fill = draw(st.integers(0, top)) if bands == 1 else tuple(draw(st.integers(0, 255)) for _ in range(bands))
    im = Image.new(mode, (w, h), fill)
    if draw(st.booleans()):  # noise over the flat colour, for the decoders' sake
        noise = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, (h, w), dtype=np.uint8)
        im.paste(Image.fromarray(noise).convert(mode), mask=Image.fromarray(noise // 128 * 255))
        fill = None
    buf = io.BytesIO()
    im.save(buf, fmt)
    raw = buf.getvalue()
    damage = draw(st.sampled_from(["none", "truncate", "flip"]))
    if damage == "truncate":
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    elif damage == "flip":
        k = draw(st.integers(0, len(raw) - 1))
        raw = raw[:k] + bytes([raw[k] ^ draw(st.integers(1, 255))]) + raw[k + 1:]
    return raw, im, fmt, fill, damage


@PROPERTY
@given(image_files(), st.floats(0.05, 1.0), st.integers(1, 40))
def test_property_load_image_decodes_right_or_data_error(image, crop, size):
    raw, im, fmt, fill, damage = image
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "1.jpg"
        path.write_bytes(raw)
        try:
            x = images.load_image(path, crop, size)
        except DataError as e:
            assert str(e).startswith(f"{path}: ") and e.reason
            assert damage != "none" or min(im.size) < images.MIN_IMAGE_SIDE, f"refused a good image: {e}"
            event(f"refused, {damage}")
            return
    event(f"decoded, {damage}")
    assert x.shape == (3, size, size) and x.dtype == np.uint8
    # A damaged JPEG can decode as another image: a flipped bit in its header's width (7 -> 263 px) goes unnoticed,
    # JPEG having no checksum. Only an undamaged file's size is known.
    assert damage != "none" or min(im.size) >= images.MIN_IMAGE_SIDE
    if damage == "none" and fill is not None:
        # A flat colour stays that colour (black where transparent, 16 bits scaled to 8; JPEG within its loss).
        want = flat_rgb(im)
        assert np.abs(x.reshape(3, -1).astype(int) - want[:, None]).max() <= (1 if fmt == "PNG" else 4)


def flat_rgb(im: Image.Image) -> np.ndarray:
    """The RGB colour of a flat image, worked out apart from catalog's conversion."""
    first = im.getpixel((0, 0))
    if im.mode == "I;16":
        return np.full(3, round(first / 257))
    if im.mode in ("LA", "RGBA"):
        colour, alpha = np.array(first[:-1] * (3 if im.mode == "LA" else 1), float), first[-1]
        return np.floor(colour * alpha / 255 + 0.5).astype(int)  # alpha_composite's rounding, within 1 anyway
    return np.array(im.convert("RGB").getpixel((0, 0)))


@PROPERTY
@given(st.binary(max_size=2000), st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a"]))
def test_property_load_image_of_random_bytes_is_data_error(junk, magic):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "1.jpg"
        path.write_bytes(magic + junk)
        with pytest.raises(DataError) as e:
            images.load_image(path, 0.5, 16)
        assert str(e.value).startswith(f"{path}: ")


# --------------------------------------------------------------------------------------------------------------------
# The field of view of a folder's images


def test_resolve_source_fov_names_the_unreadable_samples(tmp_path):
    for name in ("1.jpg", "2.jpg"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match=r"can be opened.*1\.jpg: empty file \(0 bytes\)"):
        images.resolve_source_fov(tmp_path, [tmp_path / "1.jpg", tmp_path / "2.jpg"])


def test_field_of_undeclared_images_of_another_size_is_asked_for(tmp_path):
    """A folder of 96 px images with no galaxy_core.json: FieldUnknown carries a sample and its size for a user
    interface to ask with; declared, the field and where it came from are reported."""
    for name in ("1.jpg", "2.jpg"):
        Image.fromarray(centre_square(96, 40)).save(tmp_path / name)
    samples = sorted(tmp_path.glob("*.jpg"))
    with pytest.raises(images.FieldUnknown, match="96x96 px") as e:
        images.resolve_field(tmp_path, samples)
    assert e.value.sample == samples[0] and e.value.size == (96, 96)
    assert images.source_fov_origin(tmp_path, None, samples) == "424 px originals"
    assert images.resolve_source_fov(tmp_path, samples, images.PACK_FOV) == pytest.approx(256 / 424)
    assert images.source_fov_origin(tmp_path, images.PACK_FOV, samples) == "as given"
    (tmp_path / "galaxy_core.json").write_text('{"source_fov": 0.5}')
    assert images.resolve_source_fov(tmp_path, samples) == 0.5
    assert images.source_fov_origin(tmp_path, None, samples) == "from galaxy_core.json"


def test_a_script_without_the_main_guard_finishes(tmp_path):
    """The README's Python API as a plain script, with no ``if __name__ == "__main__":``: spawned decoding workers
    used to run the script again, call ``prepare`` again and wait forever on the cache lock the parent held."""
    import subprocess
    import sys

    folder = tmp_path / "data" / "images_test_rev1"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(200):  # more than two 64-image chunks, so that decoding goes to the process pool
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    script = tmp_path / "x.py"
    script.write_text("from galaxy_core.data.prepare import prepare\n"
                      f"prepared = prepare({str(tmp_path / 'data')!r}, cache_dir={str(tmp_path / 'cache')!r}, "
                      "source_fov=1.0, size=8, workers=2)\n"
                      "print('prepared', len(prepared))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "prepared 200" in done.stdout
