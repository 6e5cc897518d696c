"""Tests for galaxy_core.settings: which ``galaxy_core.json`` speaks for a folder, and what it declares (the field of
view its images show, whether its galaxies are synthetic)."""

from __future__ import annotations

import pytest

from galaxy_core import settings
from galaxy_core.files import DataError


def test_an_image_folder_of_a_data_folder_takes_the_data_folders_settings(tmp_path):
    """``predict data/images_test_rev1`` reads the field the data folder declares, as ``prepare data`` does."""
    images = tmp_path / "data" / settings.UNLABELLED_DIR
    images.mkdir(parents=True)
    (tmp_path / "data" / settings.FOLDER_CONFIG).write_text('{"source_fov": 0.6038}')
    assert settings.folder_source_fov(images) == pytest.approx(0.6038)
    (images / settings.FOLDER_CONFIG).write_text('{"source_fov": 1.0}')  # its own wins
    assert settings.folder_source_fov(images) == 1.0
    other = tmp_path / "data" / "elsewhere"  # any other folder speaks for itself only
    other.mkdir()
    assert settings.folder_source_fov(other) is None


def test_settings_file_of_a_folder_and_of_an_image_folder(tmp_path):
    data = tmp_path / "data"
    (data / settings.LABELLED_DIR).mkdir(parents=True)
    assert settings.settings_file(data / settings.LABELLED_DIR) == data / settings.LABELLED_DIR / "galaxy_core.json"
    (data / settings.FOLDER_CONFIG).write_text("{}")
    assert settings.settings_file(data / settings.LABELLED_DIR) == data / "galaxy_core.json"  # the data folder's
    assert settings.settings_file(data) == data / "galaxy_core.json"


def test_folder_source_fov_checks_the_value(tmp_path):
    assert settings.folder_source_fov(tmp_path, 0.25) == 0.25  # the argument wins, without reading the folder
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(DataError, match="source_fov must be in"):
            settings.folder_source_fov(tmp_path, bad)
    (tmp_path / settings.FOLDER_CONFIG).write_text('{"source_fov": 2}')
    with pytest.raises(DataError, match="source_fov must be in"):
        settings.folder_source_fov(tmp_path)


def test_folder_is_synthetic(tmp_path):
    assert not settings.folder_is_synthetic(tmp_path)  # no file: real data
    images = tmp_path / settings.UNLABELLED_DIR
    images.mkdir()
    (tmp_path / settings.FOLDER_CONFIG).write_text('{"synthetic": true}')
    assert settings.folder_is_synthetic(tmp_path) and settings.folder_is_synthetic(images)  # the parent speaks too
    (tmp_path / settings.FOLDER_CONFIG).write_text("not json")
    assert not settings.folder_is_synthetic(tmp_path)  # unreadable: real data
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "meta.json").write_text('{"synthetic": true}')
    assert settings.folder_is_synthetic(cache)
