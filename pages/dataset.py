"""Dataset browser: what the data holds, its thumbnails sorted and filtered by any answer (and, where the catalogue
has positions, the same galaxies on the sky), one galaxy in detail, and, on request, the galaxies a model is least
sure of."""

import streamlit as st

from galaxy_core import tree
from galaxy_core.data.cache import SUBSET_NAMES, subsample
from galaxy_core.errors import DataError
from galaxy_core.predict import plusminus
from galaxy_core.show import explore, figures, skyviews
from pages import _common as common
from pages._samp import samp_position_button

common.require_app(__file__)

ds = common.dataset()
cache = ds.cache
st.title("Dataset browser")

# ---------------------------------------------------------------------------------------------------- summary
s = common.cache_summary(cache, ds.fingerprint)
cols = st.columns(6)
for col, (name, value) in zip(cols, [("galaxies", s["n"]), ("fully labelled", s["n_full"]),
                                     ("partially labelled", s["n_partial"]), ("unlabelled", s["n_unlabelled"]),
                                     ("training", s["n_train"]), ("validation", s["n_val"])]):
    col.metric(name, f"{value:,}")

folder = None
if explore.original_path(cache, cache.ids[0]) is not None:
    folder = common.folder_summary(str(cache.meta["source"]), cache.meta.get("source_fov"), ds.fingerprint)

left, right = st.columns(2)
with left:
    st.subheader("Images and memory")
    st.markdown(explore.storage_text(s, folder))
    st.table(explore.memory_table(s, folder), hide_index=True)
    for p in explore.problems(s, folder):
        st.warning(p)
    for a in (folder or {}).get("absent", []):
        st.info(a)
with right:
    st.subheader("Decision-tree consistency")
    tc = s["tree_check"]
    table, worst = explore.tree_check_table(tc)
    if tc["consistent"] is None:
        st.info("No fully labelled galaxies: nothing was checked against the tree.")
    else:
        (st.success if tc["consistent"] else st.error)(
            f"Every question's answers sum to their parent answer within {worst:.2g} over the {s['n_full']:,} fully "
            f"labelled galaxies." if tc["consistent"] else
            f"The labels break the tree by up to {worst:.3g}: some questions' answers do not sum to their parent "
            f"answer.")
        st.table(table, hide_index=True)
        if not tc["consistent"]:
            st.dataframe(tc["worst"], hide_index=True)

# -------------------------------------------------------------------------------------------------- thumbnails
st.subheader("Thumbnails")
c1, c2, c3, c4 = st.columns([1, 2, 2, 1])
subset = c1.selectbox("Galaxies", list(SUBSET_NAMES), format_func=SUBSET_NAMES.get, key="ds_subset")
with c2:
    sort_by = common.answer_select("Sort by answer (highest first)", "ds_sort", default=None, none="GalaxyID")
with c3:
    filter_by = common.answer_select("Filter by answer", "ds_filter", default=None, none="no filter")
    lo, hi = st.slider("Keep values between", 0.0, 1.0, (0.0, 1.0), 0.05, key="ds_range",
                       disabled=filter_by is None)
per_page = c4.selectbox("Per page", [24, 48, 96], index=1, key="ds_per_page")
rows = explore.select(cache.labels, cache.mask, cache.indices(subset), sort_by,
                      filter_by=filter_by, min_value=lo, max_value=hi)


def thumbnails():
    """One page of the selection's thumbnails; returns its rows."""
    n_pages = explore.paginate(rows, 1, per_page)[1]
    # The page number starts again at 1 whenever the selection's size changes.
    page = st.number_input(f"Page (of {n_pages:,}; {len(rows):,} galaxies)", 1, n_pages, 1,
                           key=f"ds_page_{len(rows)}_{per_page}")
    shown, _ = explore.paginate(rows, page, per_page)
    common.gallery(cache, shown, explore.captions(cache.ids, cache.labels, shown, sort_by or filter_by),
                   samp="dataset gallery")
    return shown


def on_the_sky():
    """The selection on the sky, coloured by an answer or a catalogue column; returns the rows picked on it."""
    choices = skyviews.colour_choices(cache)
    colour = st.columns([2, 3])[0].selectbox(
        "Colour by", choices, index=skyviews.default_colour(choices, sort_by or filter_by),
        format_func=lambda c: skyviews.colour_label(c, cache.units), key="ds_sky_colour")
    fig, n_shown = common.sky_map(cache, ds.fingerprint, rows, colour)
    left_off = f" ({len(rows) - n_shown:,} without a position are left off)" if n_shown < len(rows) else ""
    st.caption(f"{n_shown:,} galaxies of this selection{left_off}, RA increasing to the left as on the sky. Click "
               "one, or draw a box or lasso round some, to see them below with links to the sky viewers."
               + (f" **{skyviews.MADE_UP}**" if cache.synthetic else ""))
    event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), key="ds_sky_map")
    picked = skyviews.selected_rows(event.selection.points if event else [])
    if picked:
        st.markdown(f"**Chosen on the map**: {len(picked):,} galaxies" + (", the first 48 shown" if len(picked) > 48
                                                                          else ""))
        common.gallery(cache, picked[:48], explore.captions(cache.ids, cache.labels, picked[:48], sort_by or
                                                            filter_by))
        st.dataframe(skyviews.catalogue_table(cache, picked), hide_index=True, column_config={
            **{name: st.column_config.LinkColumn(name, display_text="open") for name in ("Legacy Survey", "SDSS")},
            **{name: st.column_config.NumberColumn(format="%.4f") for name in (cache.sky.ra, cache.sky.dec)}})
        if cache.synthetic:
            st.caption(f"The demo's made-up catalogue: {skyviews.MADE_UP}")
        common.samp_rows(cache, picked, "chosen on the sky map")
    return picked


# Lazy tabs where the data have positions: only the open one is drawn.
VIEWS = {"Thumbnails": thumbnails, "On the sky": on_the_sky}
shown = []
if cache.positions() is None:
    shown = thumbnails()
else:
    for tab, draw in zip(st.tabs(list(VIEWS), key="ds_view", on_change="rerun"), VIEWS.values()):
        if tab.open:
            with tab:
                shown = draw()

# ------------------------------------------------------------------------------------------------- one galaxy
st.subheader("One galaxy")
c1, c2 = st.columns(2)
pick = c1.selectbox("From those shown above", [str(cache.ids[r]) for r in shown], key="ds_pick")
typed = c2.text_input("Or any GalaxyID", key="ds_typed").strip()
row = None
try:
    row = cache.row_of(typed) if typed else None if pick is None else cache.row_of(pick)
except KeyError as e:
    st.error(str(e))
if row is not None:
    gid = str(cache.ids[row])
    img_col, tree_col = st.columns([2, 3])
    with img_col:
        path = explore.original_path(cache, gid)
        if path is not None:
            try:
                picture, crop = explore.original_image(cache, path)
                st.image(figures.original_with_crop(picture, crop), width="stretch",
                         caption=f"{gid}: the original image ({path.name}); the box is the field the cache keeps")
            except DataError as e:  # changed or damaged since it was cached
                st.warning(f"The original image cannot be shown: {e}")
        st.image(figures.enlarge(cache.image(row), 320), width="stretch",
                 caption=f"{gid} as cached and seen by the models: {cache.size} px, field {cache.fov:.3f} of the "
                         f"424 px frame")
        where = skyviews.position_markdown(cache, row)
        if where is not None:
            st.markdown(where)
            ra, dec = skyviews.position_of(cache, row)
            if skyviews.has_position(ra, dec):
                samp_position_button(ra, dec, key="ds_samp_position")
        if cache.columns is not None:
            st.dataframe(skyviews.catalogue_record(cache, row), hide_index=True)
            if cache.synthetic:
                st.caption(skyviews.MADE_UP)
    with tree_col:
        if cache.mask[row].any():
            common.tree_chart(cache.labels[row], known=cache.mask[row], key="ds_tree")
        else:
            st.info("This galaxy is unlabelled: predict its answers on the Predict page.")

# ------------------------------------------------------------------------------------------------- prototypes
st.subheader("The prototypical galaxy of every answer")
st.caption("For each answer, the galaxy with the highest vote fraction for it.")
proto_rows, proto_captions = explore.prototype_captions(common.prototypes(cache, ds.fingerprint))
common.gallery(cache, proto_rows, proto_captions, width=130)


# ------------------------------------------------------------------------------------------------- least sure
LEAST_SURE_SAMPLE = 2000
"""Most galaxies of the selection whose spread is predicted for the least-sure list (a fixed random subset of more):
8 views of 2,000 galaxies take one to two minutes on two busy CPU cores, once per model and data."""


def least_sure() -> None:
    """The galaxies of the thumbnails' selection (their subset and filter) with the largest spread of one answer, by
    the default model (or another), with their values ± spreads. Only when asked: it needs PyTorch and the model,
    which the page's first draw does without."""
    from pages import _models as ml  # PyTorch comes with it: imported here, once the section is opened

    c1, c2, c3 = st.columns([3, 2, 1])
    with c1:
        model = ml.choose_model("ds_sure_model")
    with c2:
        column = common.answer_select("Answer", "ds_sure_answer", default=sort_by or filter_by or "Class1.1")
    k = c3.number_input("How many", 1, 96, 12, key="ds_sure_n")
    if model is None:
        return
    sample = subsample(rows, LEAST_SURE_SAMPLE)
    if not len(sample):
        st.caption("No galaxies in this selection.")
        return
    try:
        calibration = ml.spread_calibration(model, cache, ds.fingerprint)
        spread = ml.spread_of(model, cache, ds.fingerprint, sample, keep=True)
    except ValueError as e:
        st.error(f"Cannot run this model on this data: {e}")
        return
    order = plusminus.least_sure(spread.spread[:, tree.column_index(column)], int(k))
    among = f"the {len(rows):,} galaxies of the thumbnails' selection" if len(sample) == len(rows) else \
        f"a fixed random {len(sample):,} of the {len(rows):,} galaxies of the thumbnails' selection"
    st.caption(f"The {len(order)} of {among} with the largest spread of {explore.label(column)}, largest first, "
               f"each the model's value ± its spread. {calibration.meaning()}")
    texts = plusminus.answer_texts(spread.subset(order), calibration.scale, column)
    common.gallery(cache, sample[order], [f"{cache.ids[r]} · {t}" for r, t in zip(sample[order], texts)],
                   width=150, samp="least sure")  # wide enough for "id · 0.53 ± 0.05" on one line


st.subheader("Galaxies the model is least sure of")
if st.toggle("Rank the thumbnails' galaxies by the model's spread", key="ds_sure",
             help=f"Loads the model (PyTorch: a few seconds the first time) and predicts 8 views of each galaxy of the "
                  f"selection under Thumbnails (at most {LEAST_SURE_SAMPLE:,}), once per model and data."):
    least_sure()
