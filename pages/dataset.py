"""Dataset browser: what the data holds, its thumbnails sorted and filtered by any answer, one galaxy in detail."""

import pandas as pd
import streamlit as st

from galaxy_core import explore, figures, tree
from galaxy_core.files import DataError, format_bytes
from pages import _common as common

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
    sizes = ", ".join(f"{k} px x {v:,}" for k, v in list(folder["image_sizes"].items())[:4]) if folder else \
        "original files not found (a bare cache)"
    mem = [("cache", f"{s['n']:,} x 3 x {s['size']} x {s['size']}", s["memory"])]
    if folder:
        mem.append(("original images, at their size", "sum of width x height x 3", folder["memory"]))
    mem.append(("as 424 px originals", f"{s['n']:,} x 3 x 424 x 424", s["memory_originals"]))
    st.markdown(f"Original images: {sizes}" + (f"; {format_bytes(folder['disk_bytes'])} on disk" if folder else "")
                + f". Cached at {s['size']} px, field {s['fov']:.3f} of the 424 px frame.")
    st.table(pd.DataFrame([{"images": w, "array": shape, "as uint8": format_bytes(m["uint8_bytes"]),
                            "as float32": format_bytes(m["float32_bytes"])} for w, shape, m in mem]),
             hide_index=True)
    problems = (folder["problems"] if folder else []) + [f"{s['skipped']} unreadable images were skipped"] * bool(
        s["skipped"])
    for p in problems:
        st.warning(p)
with right:
    st.subheader("Decision-tree consistency")
    tc = s["tree_check"]
    worst = max(tc["max_abs_violation"].values(), default=0.0)
    if not s["n_full"]:
        st.info("No fully labelled galaxies: there are no labels to check against the tree.")
    else:
        (st.success if tc["consistent"] else st.error)(
            f"Every question's answers sum to their parent answer within {worst:.2g} over the {s['n_full']:,} fully "
            f"labelled galaxies." if tc["consistent"] else
            f"The labels break the tree by up to {worst:.3g}: some questions' answers do not sum to their parent "
            f"answer.")
        st.table(pd.DataFrame({"question": [f"{q.key}: {q.text}" for q in tree.QUESTIONS],
                               "largest |sum - parent|": [f"{v:.2g}" for v in tc["max_abs_violation"].values()]}),
                 hide_index=True)
        if not tc["consistent"]:
            st.dataframe(pd.DataFrame(tc["worst"]), hide_index=True)

# -------------------------------------------------------------------------------------------------- thumbnails
st.subheader("Thumbnails")
c1, c2, c3, c4 = st.columns([1, 2, 2, 1])
subset = c1.selectbox("Galaxies", list(common.SUBSET_NAMES), format_func=common.SUBSET_NAMES.get, key="ds_subset")
with c2:
    sort_by = common.answer_select("Sort by answer (highest first)", "ds_sort", default=None, none="GalaxyID")
with c3:
    filter_by = common.answer_select("Filter by answer", "ds_filter", default=None, none="no filter")
    lo, hi = st.slider("Keep values between", 0.0, 1.0, (0.0, 1.0), 0.05, key="ds_range",
                       disabled=filter_by is None)
per_page = c4.selectbox("Per page", [24, 48, 96], index=1, key="ds_per_page")
rows = explore.select(cache.labels, cache.mask, cache.indices(subset), sort_by,
                      filter_by=filter_by, min_value=lo, max_value=hi)
n_pages = explore.paginate(rows, 1, per_page)[1]
# The page number starts again at 1 whenever the selection's size changes.
page = st.number_input(f"Page (of {n_pages:,}; {len(rows):,} galaxies)", 1, n_pages, 1,
                       key=f"ds_page_{len(rows)}_{per_page}")
shown, _ = explore.paginate(rows, page, per_page)
show = sort_by or filter_by
captions = [f"{cache.ids[r]}" + (f" · {cache.labels[r, tree.column_index(show)]:.2f}" if show else "")
            for r in shown]
common.gallery(cache, shown, captions)

# ------------------------------------------------------------------------------------------------- one galaxy
st.subheader("One galaxy")
c1, c2 = st.columns(2)
pick = c1.selectbox("From this page", [str(cache.ids[r]) for r in shown], key="ds_pick")
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
    with tree_col:
        if cache.mask[row].any():
            common.tree_chart(cache.labels[row], known=cache.mask[row], key="ds_tree")
        else:
            st.info("This galaxy is unlabelled: predict its answers on the Predict page.")

# ------------------------------------------------------------------------------------------------- prototypes
st.subheader("The prototypical galaxy of every answer")
st.caption("For each answer, the galaxy with the highest vote fraction for it.")
proto = common.prototypes(cache, ds.fingerprint)
proto = proto[proto["row"] >= 0]
common.gallery(cache, proto["row"], [f"{c} {explore.short_name(c)} · {v:.2f}"
                                     for c, v in zip(proto["column"], proto["value"])], width=130)
