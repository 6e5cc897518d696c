"""Tests for galaxy_core.data.layout: which ``galaxy_core.json`` speaks for a folder, and what it declares (the field of
view its images show, whether its galaxies are synthetic)."""

from __future__ import annotations

import pytest

from galaxy_core.data import layout
from galaxy_core.errors import DataError


def test_an_image_folder_of_a_data_folder_takes_the_data_folders_settings(tmp_path):
    """``predict data/images_test_rev1`` reads the field the data folder declares, as ``prepare data`` does."""
    images = tmp_path / "data" / layout.UNLABELLED_DIR
    images.mkdir(parents=True)
    (tmp_path / "data" / layout.FOLDER_CONFIG).write_text('{"source_fov": 0.6038}')
    assert layout.folder_source_fov(images) == pytest.approx(0.6038)
    (images / layout.FOLDER_CONFIG).write_text('{"source_fov": 1.0}')  # its own wins
    assert layout.folder_source_fov(images) == 1.0
    other = tmp_path / "data" / "elsewhere"  # any other folder speaks for itself only
    other.mkdir()
    assert layout.folder_source_fov(other) is None


def test_settings_file_of_a_folder_and_of_an_image_folder(tmp_path):
    data = tmp_path / "data"
    (data / layout.LABELLED_DIR).mkdir(parents=True)
    assert layout.settings_file(data / layout.LABELLED_DIR) == data / layout.LABELLED_DIR / "galaxy_core.json"
    (data / layout.FOLDER_CONFIG).write_text("{}")
    assert layout.settings_file(data / layout.LABELLED_DIR) == data / "galaxy_core.json"  # the data folder's
    assert layout.settings_file(data) == data / "galaxy_core.json"


def test_folder_source_fov_checks_the_value(tmp_path):
    assert layout.folder_source_fov(tmp_path, 0.25) == 0.25  # the argument wins, without reading the folder
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(DataError, match="source_fov must be in"):
            layout.folder_source_fov(tmp_path, bad)
    (tmp_path / layout.FOLDER_CONFIG).write_text('{"source_fov": 2}')
    with pytest.raises(DataError, match="source_fov must be in"):
        layout.folder_source_fov(tmp_path)


def test_folder_is_synthetic(tmp_path):
    assert not layout.folder_is_synthetic(tmp_path)  # no file: real data
    images = tmp_path / layout.UNLABELLED_DIR
    images.mkdir()
    (tmp_path / layout.FOLDER_CONFIG).write_text('{"synthetic": true}')
    assert layout.folder_is_synthetic(tmp_path) and layout.folder_is_synthetic(images)  # the parent speaks too
    (tmp_path / layout.FOLDER_CONFIG).write_text("not json")
    assert not layout.folder_is_synthetic(tmp_path)  # unreadable: real data
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "meta.json").write_text('{"synthetic": true}')
    assert layout.folder_is_synthetic(cache)
