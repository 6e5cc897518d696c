"""What a dashboard user may read: a typed folder inside the data roots only (symbolic links and ``..`` resolved
first), and uploads checked one by one (names, sizes, formats, decompression bombs) before anything is written."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
from PIL import Image

from galaxy_core.data import layout
from galaxy_core.errors import ImageError
from galaxy_core.show import access

from conftest import png_bomb_with_data

ROOT = Path(__file__).resolve().parents[2]


def test_data_roots_default_to_the_project_and_shared_data_and_follow_the_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("GALAXY_DATA_ROOTS", raising=False)
    monkeypatch.delenv("GALAXY_DATA", raising=False)
    shared = [access.SHARED_DATA.resolve()] if access.SHARED_DATA.is_dir() else []
    assert access.data_roots() == [ROOT.resolve()] + shared
    assert access.allowed_folder("data") == ROOT / "data" and access.allowed_folder("") == ROOT / "data"
    for outside in ("/etc", "..", "data/../..", "~"):
        with pytest.raises(PermissionError, match="GALAXY_DATA_ROOTS"):
            access.allowed_folder(outside)

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "link").symlink_to(outside)
    monkeypatch.setenv("GALAXY_DATA_ROOTS", f"{root}{os.pathsep}{tmp_path / 'other'}")
    assert access.data_roots() == [root, tmp_path / "other"]
    assert access.allowed_folder(str(root / "sub")) == root / "sub"
    assert access.allowed_folder(str(root / "not yet")) == root / "not yet"  # existence is checked afterwards
    for escape in (root / "link", root / "link" / "images_training_rev1", root / "sub" / ".." / ".." / "outside",
                   ROOT):
        with pytest.raises(PermissionError) as e:
            access.allowed_folder(str(escape))
        assert str(root) in str(e.value) and str(tmp_path / "other") in str(e.value)
    monkeypatch.setenv("GALAXY_DATA", str(outside))  # the server's own starting folder is always allowed
    assert access.allowed_folder(str(outside)) == outside


def test_check_uploads_refuses_each_bad_file_by_name_and_keeps_the_rest(tiny_data, monkeypatch):
    good = sorted((tiny_data / layout.UNLABELLED_DIR).glob("*.jpg"))[:2]
    files = [(good[0].name, good[0].read_bytes()), ("../../" + good[1].name, good[1].read_bytes()),
             ("bomb.png", png_bomb_with_data(20_000, 20_000)), ("notes.jpg", b"not an image at all"),
             ("script.py", good[0].read_bytes()), (good[0].stem + ".png", good[0].read_bytes()),
             ("gif.png", _gif()), (".hidden.jpg", good[0].read_bytes())]
    accepted, refused = access.check_uploads(files)
    assert [n for n, _ in accepted] == [good[0].name, good[1].name]  # stored by base name: no folder, no ..
    reasons = dict(r.split(": ", 1) for r in refused)
    assert "decompression bomb" in reasons["bomb.png"] and "not an image" in reasons["notes.jpg"]
    assert "file name" in reasons["script.py"] and "file name" in reasons[".hidden.jpg"]
    assert "also named" in reasons[good[0].stem + ".png"] and "GIF" in reasons["gif.png"]
    fits_ok = access.check_uploads([("7.fits", b"SIMPLE  =" + b" " * 71), ("7_g.fits.gz", b"\x1f\x8b...")])
    assert [n for n, _ in fits_ok[0]] == ["7.fits", "7_g.fits.gz"] and not fits_ok[1]
    assert "not a FITS file" in access.check_uploads([("8.fits", good[0].read_bytes())])[1][0]

    # Between one and two times Pillow's limit, Pillow only warns (an error under pytest's settings): refused alike.
    side = int((Image.MAX_IMAGE_PIXELS * 1.5) ** 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert "decompression bomb" in access.check_uploads([("big.png", png_bomb_with_data(side, side))])[1][0]
    assert "decompression bomb" in access.check_uploads([("big.png", png_bomb_with_data(side, side))])[1][0]

    monkeypatch.setattr(access, "MAX_UPLOAD_MB", len(good[0].read_bytes()) / 2**20 / 2)
    assert "MB, more than" in access.check_uploads(files[:1])[1][0]
    with pytest.raises(ValueError, match="at most 500 images"):
        access.check_uploads([(f"{i}.jpg", b"") for i in range(access.MAX_UPLOAD_FILES + 1)])
    monkeypatch.setattr(access, "MAX_UPLOAD_TOTAL_MB", 1e-6)
    with pytest.raises(ValueError, match="MB"):
        access.check_uploads(files[:1])


def test_uploads_are_written_under_their_base_names_after_the_checks(tiny_data, tmp_path):
    """Pairs and file-like objects alike (a web framework's upload, an open file), each file under its base name;
    one refused file stops the writing before anything is written, and names itself, never the folder."""
    good = sorted((tiny_data / layout.UNLABELLED_DIR).glob("*.jpg"))[:3]
    upload = io.BytesIO(good[1].read_bytes())
    upload.name = "../" + good[1].name
    upload.read()  # read to its end already, as a page may have: getvalue still gives every byte
    with open(good[2], "rb") as opened:
        paths = access.write_uploads([(good[0].name, good[0].read_bytes()), upload, opened], tmp_path)
    assert paths == [tmp_path / g.name for g in good]
    assert [p.read_bytes() for p in paths] == [g.read_bytes() for g in good]

    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(ImageError) as e:
        access.write_uploads([(good[0].name, good[0].read_bytes()), ("notes.jpg", b"not an image")], bad)
    assert (e.value.path, list(bad.iterdir())) == ("notes.jpg", [])
    assert access.upload_message(e.value, bad) == \
        "Cannot use notes.jpg: not an image (Pillow recognises no image format in it)"

    made = access.write_uploads([(good[0].name, good[0].read_bytes())], prefix="galaxy_query_")
    assert made[0].parent.name.startswith("galaxy_query_") and made[0].parent.stat().st_mode & 0o077 == 0
    shutil.rmtree(made[0].parent)


def test_temporary_uploads_leave_no_folder_behind(tiny_data):
    good = sorted((tiny_data / layout.UNLABELLED_DIR).glob("*.jpg"))[0]
    with access.temporary_uploads([(good.name, good.read_bytes())]) as folder:
        assert [p.name for p in folder.iterdir()] == [good.name] and folder.name.startswith("galaxy_upload_")
    assert not folder.exists()
    with pytest.raises(RuntimeError), access.temporary_uploads([(good.name, good.read_bytes())]) as folder:
        raise RuntimeError("predicting failed")
    assert not folder.exists()
    before = set(Path(tempfile.gettempdir()).glob("galaxy_upload_*"))
    with pytest.raises(ImageError), access.temporary_uploads([("x.png", b"no png")]):
        pass
    assert set(Path(tempfile.gettempdir()).glob("galaxy_upload_*")) == before


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    return buf.getvalue()


def test_upload_errors_name_the_uploads_and_the_box_never_the_temporary_folder(tmp_path):
    """Written for a page user: the uploaded name once, the field box beside the uploader (not --source-fov or a
    galaxy_core.json in a folder they never saw), why the sidebar's field is not taken; no temporary path."""
    from galaxy_core.data import images
    from galaxy_core.errors import DataError, ImageError

    tmp = tmp_path / "galaxy_upload_x1"
    tmp.mkdir()
    Image.new("RGB", (96, 96)).save(tmp / "100008.jpg")
    with pytest.raises(images.FieldUnknown) as e:
        images.resolve_field(tmp, [tmp / "100008.jpg"])
    assert str(tmp) in str(e.value) and "--source-fov" in str(e.value)  # the command line's words, for a folder
    text = access.upload_message(e.value, tmp, box="Source field of view", sidebar_fov=0.6038)
    assert text.startswith("100008.jpg is 96 x 96 px, not a 424 x 424 px Kaggle original")
    assert "Enter it in **Source field of view** beside the uploader: 0.6038 for the central 256 px" in text
    assert "The sidebar's field of view (0.6038) is the data folder's and is not taken for uploads" in text
    assert "galaxy_upload_" not in text and "--source-fov" not in text and "galaxy_core.json" not in text
    assert "sidebar" not in access.upload_message(e.value, tmp)  # no sidebar field set: nothing to explain
    bad = access.upload_message(ImageError(tmp / "notanimage.jpg", "not a JPEG, PNG or FITS file"), tmp)
    assert bad == "Cannot use notanimage.jpg: not a JPEG, PNG or FITS file"  # the name once
    other = access.upload_message(DataError(f"no images in {tmp} (expected <GalaxyID>.jpg)"), tmp)
    assert other == "no images in the uploads (expected <GalaxyID>.jpg)"
