"""Tests for galaxy_core.show.skyviews and figures.sky_figure: the viewer links carry the coordinates, the position
caption reads as documented (NaN: "no position"), the sky map shows one point per galaxy with a position with RA
increasing to the left, and galleries carry positions and links (marked made up for the demo)."""

from __future__ import annotations

import math
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest

from galaxy_core import tree
from galaxy_core.data import cache, prepare
from galaxy_core.demo import demo_set
from galaxy_core.show import figures, skyviews

from conftest import make_tiny


@pytest.fixture(scope="module")
def sky_cache(tmp_path_factory):
    """A tiny demo with its made-up catalogue, prepared at 32 px (read-only)."""
    root = make_tiny(tmp_path_factory.mktemp("sky") / "data", n_labelled=20, n_unlabelled=4, size=64,
                     catalogue=True)
    return prepare.prepare(root, root.parent / "cache", size=32, workers=1)


@pytest.fixture(scope="module")
def holes_cache(sky_cache, tmp_path_factory):
    """The same images as a catalogue table of real-looking (not made-up) data, in which rows 2 and 5 have no
    position and one row has a blank redshift."""
    root = sky_cache.meta["source"]
    sky = pd.read_csv(f"{root}/{demo_set.CATALOGUE}").drop(columns="made_up")
    sky["file"] = [f"{root}/{f}" for f in sky["file"]]
    sky.loc[[2, 5], ["ra", "dec"]] = np.nan
    sky.loc[7, "z"] = np.nan
    sky["mass"] = np.linspace(9.5, 11.5, len(sky))
    table = tmp_path_factory.mktemp("holes") / "galaxies.csv"
    sky.to_csv(table, index=False)
    return prepare.prepare(table, table.parent / "cache", size=32, source_fov=1.0, workers=1)


# --------------------------------------------------------------------------------------- links and captions

def test_legacy_survey_url_carries_the_coordinates():
    url = skyviews.legacy_survey_url(150.1234567, -2.5)
    parts = urlparse(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://www.legacysurvey.org/viewer"
    assert parse_qs(parts.query) == {"ra": ["150.123457"], "dec": ["-2.500000"], "layer": ["ls-dr10"],
                                     "zoom": ["16"]}


def test_sdss_navigator_url_carries_the_coordinates():
    url = skyviews.sdss_navigator_url(10.0, 45.25)
    parts = urlparse(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == \
        "https://skyserver.sdss.org/dr18/en/tools/chart/navi.aspx"
    assert parse_qs(parts.query) == {"ra": ["10.000000"], "dec": ["45.250000"], "scale": ["0.2"]}
    assert "scale=0.1" in skyviews.sdss_navigator_url(10.0, 45.25, scale=0.1)


@pytest.mark.parametrize("ra, dec", [(math.nan, 1.0), (1.0, math.nan), (None, 2.0), (361.0, 0.0), (10.0, 91.0),
                                     (-0.5, 0.0)])
def test_no_link_without_a_position(ra, dec):
    with pytest.raises(ValueError):
        skyviews.legacy_survey_url(ra, dec)
    with pytest.raises(ValueError):
        skyviews.sdss_navigator_url(ra, dec)


def test_ra_360_is_ra_0():
    assert "ra=0.000000" in skyviews.legacy_survey_url(360.0, 0.0)


def test_position_caption():
    assert skyviews.position_caption(150.12344, 2.34561) == "RA 150.1234 Dec +2.3456"
    assert skyviews.position_caption(0.0, -0.00004) == "RA 0.0000 Dec -0.0000"
    assert skyviews.position_caption(359.99999, -89.5) == "RA 360.0000 Dec -89.5000"
    assert skyviews.position_caption(math.nan, 2.0) == skyviews.position_caption(1.0, None) == "no position"
    assert skyviews.viewer_links(math.nan, 1.0) == {}
    assert list(skyviews.viewer_links(1.0, 1.0)) == ["Legacy Survey", "SDSS"]


# ------------------------------------------------------------------------------------------------- the sky map

def test_sky_figure_leaves_out_galaxies_without_a_position_and_reverses_ra():
    ra = np.array([10.0, np.nan, 30.0, 40.0, 50.0])
    dec = np.array([0.0, 1.0, np.nan, 3.0, 60.0])
    value = np.array([0.1, 0.2, 0.3, np.nan, 0.9])
    fig = figures.sky_figure(ra, dec, value, ids=["a", "b", "c", "d", "e"], rows=[5, 6, 7, 8, 9],
                             color_name="z")
    assert sum(len(t.x) for t in fig.data) == 3  # the NaN positions left out; d (unknown value) drawn grey
    points = {i: (x, y) for t in fig.data for i, x, y in zip(t.text, t.x, t.y)}
    assert points == {"a": (10.0, 0.0), "d": (40.0, 3.0), "e": (50.0, 60.0)}
    assert fig.layout.xaxis.autorange == "reversed"
    grey = next(t for t in fig.data if t.name.startswith("unknown"))
    assert list(grey.text) == ["d"] and grey.marker.color == "#9a9a9a"
    coloured = next(t for t in fig.data if t.name.startswith("z"))
    assert list(coloured.marker.color) == [0.1, 0.9]
    assert sorted(int(c[0]) for t in fig.data for c in t.customdata) == [5, 8, 9]  # the rows, for selections
    # A degree of RA at mid Dec 30 is cos(30) as long as a degree of Dec.
    assert fig.layout.yaxis.scaleratio == pytest.approx(1 / math.cos(math.radians(30.0)))
    assert "made up" not in fig.layout.xaxis.title.text
    assert "made up" in figures.sky_figure(ra, dec, made_up=True).layout.xaxis.title.text


def test_sky_figure_draws_a_field_across_ra_0_in_one_piece():
    fig = figures.sky_figure(np.array([350.0, 355.0, 5.0, 10.0]), np.zeros(4))
    x = sorted(v for t in fig.data for v in t.x)
    assert x == [-10.0, -5.0, 5.0, 10.0]
    assert "350" in list(fig.layout.xaxis.ticktext) or "330" in list(fig.layout.xaxis.ticktext)
    assert sorted(c[1] for t in fig.data for c in t.customdata) == [5.0, 10.0, 350.0, 355.0]  # hover: true RA


def test_colour_choices_and_values(sky_cache, holes_cache):
    choices = skyviews.colour_choices(sky_cache)
    assert choices[0] is None and ("catalogue", "z") in choices
    assert ("catalogue", "made_up") not in choices and ("catalogue", "ra") not in choices  # constant; position
    assert ("volunteers", "Class8.6") in choices and ("model", "Class8.6") not in choices
    assert ("model", "Class8.6") in skyviews.colour_choices(sky_cache, model=True)
    assert choices[skyviews.default_colour(choices)] == ("catalogue", "z")
    assert choices[skyviews.default_colour(choices, "Class8.6")] == ("volunteers", "Class8.6")
    assert skyviews.colour_label(("catalogue", "z")) == "catalogue: z"
    assert skyviews.colour_label(("volunteers", "Class8.6")) == "volunteers: Class8.6 odd_feature--merger"
    rows = np.arange(len(sky_cache))
    z = skyviews.colour_values(sky_cache, rows, ("catalogue", "z"))
    np.testing.assert_allclose(z, sky_cache.columns["z"])
    merger = skyviews.colour_values(sky_cache, rows, ("volunteers", "Class8.6"))
    j = tree.column_index("Class8.6")
    assert np.isnan(merger[sky_cache.split == cache.SPLIT_UNLABELLED]).all()
    np.testing.assert_allclose(merger[sky_cache.mask[:, j]], sky_cache.labels[sky_cache.mask[:, j], j])
    predictions = np.full((len(sky_cache), 37), 0.25)
    assert (skyviews.colour_values(sky_cache, rows[:3], ("model", "Class1.1"), predictions) == 0.25).all()
    with pytest.raises(ValueError):
        skyviews.colour_values(sky_cache, rows, ("model", "Class1.1"))
    assert ("catalogue", "mass") in skyviews.colour_choices(holes_cache)


def test_sky_points_and_map_leave_out_galaxies_without_a_position(holes_cache):
    rows = np.arange(len(holes_cache))
    points = skyviews.sky_points(holes_cache, rows, ("catalogue", "z"))
    assert len(points) == len(holes_cache) - 2
    assert {f"{demo_set.FIRST_ID + k}" for k in (2, 5)}.isdisjoint(points["GalaxyID"])
    assert points["value"].isna().sum() == 1
    fig, shown = skyviews.sky_map(holes_cache, rows, ("catalogue", "z"))
    assert shown == len(points) == sum(len(t.x) for t in fig.data)
    assert "made up" not in fig.layout.xaxis.title.text
    assert holes_cache.split.tolist() == [cache.SPLIT_UNLABELLED] * len(holes_cache)  # a table without labels
    fig, _ = skyviews.sky_map(holes_cache, rows, ("volunteers", "Class1.1"))
    assert [t.name for t in fig.data] == [f"unknown ({len(points)})"]
    assert skyviews.selected_rows([{"customdata": [4, 1.0, 2.0]}, {"customdata": 4}, {"customdata": [1]},
                                   {"point_index": 3}, {"customdata": {"0": 9.0, "1": 150.0, "2": 0.1}}]) == [4, 1, 9]


def test_the_demo_map_says_its_positions_are_made_up(sky_cache):
    fig, _ = skyviews.sky_map(sky_cache, np.arange(len(sky_cache)), ("volunteers", "Class1.1"))
    coloured = next(t for t in fig.data if t.marker.colorscale is not None)
    assert (coloured.marker.cmin, coloured.marker.cmax) == (0.0, 1.0)  # vote fractions on one scale
    fig, shown = skyviews.sky_map(sky_cache, np.arange(len(sky_cache)), None)
    assert shown == len(sky_cache) and "made up" in fig.layout.yaxis.title.text


def test_catalogue_rows_and_one_galaxy(sky_cache, holes_cache):
    table = skyviews.catalogue_table(holes_cache, [0, 2])
    assert list(table.columns) == ["GalaxyID", "ra", "dec", "z", "mass", "Legacy Survey", "SDSS"]
    assert table.loc[0, "Legacy Survey"].startswith(skyviews.LEGACY_VIEWER) and table.loc[1, "SDSS"] == ""
    record = skyviews.catalogue_record(sky_cache, 0)
    assert record["column"].tolist() == ["ra", "dec", "z", "made_up"] and record["value"].iloc[-1] == "True"
    assert skyviews.position_markdown(sky_cache, 0).startswith("made-up RA ")
    assert "[SDSS](https://skyserver" in skyviews.position_markdown(holes_cache, 0)
    assert skyviews.position_markdown(holes_cache, 2) == "no position"


# ----------------------------------------------------------------------------------------------------- galleries

def test_gallery_html_has_positions_links_and_escapes():
    grid = skyviews.gallery_html(["data:image/jpeg;base64,AAAA", "x.jpg"], ["<b>1</b> · 0.50", "2"],
                                 [150.0, np.nan], [2.5, np.nan], width=120)
    assert grid.count("<figure") == 2 and 'width="120"' in grid
    assert "&lt;b&gt;1&lt;/b&gt;" in grid and "<b>1</b>" not in grid
    assert ">RA 150.0000<" in grid and ">Dec +2.5000<" in grid and "no position" in grid
    assert "made-up" not in grid.split("</style>")[1].lower()
    assert grid.count('target="_blank"') == 2  # two viewers for the galaxy with a position, none for the other
    assert "legacysurvey.org/viewer?ra=150.000000&amp;dec=2.500000" in grid
    one = skyviews.gallery_html(["x.jpg"], None, [150.0], [2.5], made_up=True)
    assert "made-up position" in one and "gc-made-up" in one
    two = skyviews.gallery_html(["x.jpg"] * 2, None, [150.0] * 2, [2.5] * 2, made_up=True)
    assert two.count("Made-up positions") == 1 and "made-up position<" not in two
    with pytest.raises(ValueError):
        skyviews.gallery_html(["x.jpg"], ["a", "b"], [1.0], [1.0])


def test_cache_gallery_only_for_data_with_positions(sky_cache, tiny_cache):
    grid = skyviews.cache_gallery_html(sky_cache, [0, 3], ["first", "fourth"], 100)
    assert grid.count("data:image/jpeg;base64,") == 2 and "first" in grid and "Made-up positions" in grid
    assert str(demo_set.FIRST_ID) in skyviews.cache_gallery_html(sky_cache, [0])  # default captions: the ids
    assert skyviews.cache_gallery_html(tiny_cache, [0]) is None
