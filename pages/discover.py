"""Discover: galaxies like a given one, a yes/no question of your own learnt from a few galaxies you mark, and the
galaxies least like any other, all on one model's embeddings (the backbone before the decision-tree head)."""

import numpy as np
import pandas as pd
import streamlit as st

from galaxy_core import embeddings, labels, similarity
from galaxy_core.files import DataError
from pages import _common as common
from pages import _models as ml

common.require_app(__file__)

ds = common.dataset()
cache = ds.cache
st.title("Discover")
st.caption("Every galaxy becomes a vector: the model's features before its 37 answers, averaged over 4 rotations "
           "and flips. Galaxies that look alike to the model lie close together (cosine distance, 0 for the same "
           "direction, up to 2).")
model = ml.choose_model("dc_model")
if model is None:
    st.stop()
ml.warn_domain(model, cache.synthetic)
try:
    vectors = ml.embedded(model, cache, ds.fingerprint)
except ValueError as e:
    st.error(f"Cannot embed this data with this model: {e}")
    st.stop()
unit = similarity.normalise(vectors)


def download(frame: pd.DataFrame, name: str, key: str) -> None:
    st.download_button("Download as CSV", frame.to_csv(index=False), file_name=name, mime="text/csv", key=key)


# A keyed selector rather than st.tabs: it keeps its choice through the reruns that marking galaxies causes, and
# only the chosen view is computed.
VIEWS = ["Galaxies like this one", "Your own question", "Unusual galaxies"]
view = st.segmented_control("View", VIEWS, default=VIEWS[0], key="dc_view", label_visibility="collapsed") or VIEWS[0]

if view == VIEWS[0]:
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    typed = c1.text_input("GalaxyID", value=str(cache.ids[0]), key="dc_query")
    upload = c2.file_uploader("or an image (JPEG, PNG or FITS)", key="dc_upload",
                              type=["jpg", "jpeg", "png", "fits", "fit", "fts", "gz"])
    k = c3.number_input("Neighbours", 1, 200, 24, key="dc_k")
    fov = c4.number_input("Its field of view", 0.05, 1.0, None, 0.01, format="%.4f", key="dc_fov",
                          placeholder="424 px original",
                          help="For an uploaded image that is not a 424 px original: the part of the 424 px frame it "
                               "shows (0.6038 for the central 256 px, as in the 96 px packs).")
    query, name = None, None
    if upload is not None:
        try:
            saved = common.saved_upload(upload)
            query = embeddings.embed_file(ml.load_model(model), saved, cache, source_fov=fov)
            name = upload.name
        except DataError as e:
            st.error(f"Cannot use {upload.name}: {e}")
    elif typed.strip():
        try:
            query, name = unit[cache.row_of(typed.strip())], f"GalaxyID {typed.strip()}"
        except KeyError as e:
            st.error(str(e).strip("'\""))
    if query is not None:
        rows, distance = similarity.nearest(unit, query, int(k), normalised=True)
        st.caption(f"The {len(rows)} galaxies nearest to {name}, nearest first.")
        common.gallery(cache, rows, [f"{cache.ids[r]} · {d:.3f}" for r, d in zip(rows, distance)])
        download(pd.DataFrame({"rank": np.arange(1, len(rows) + 1), "GalaxyID": cache.ids[rows],
                               "distance": distance}), "similar.csv", "dc_similar_csv")

if view == VIEWS[2]:
    c1, c2 = st.columns(2)
    n = c1.number_input("How many", 1, 500, 48, key="dc_odd_n")
    neighbours = c2.number_input("Neighbours in the score", 1, 100, 10, key="dc_odd_k",
                                 help="a galaxy's score is its mean cosine distance to this many nearest others")
    score = ml.anomaly_scores(*ml.model_key(model), vectors, ds.fingerprint, int(neighbours))
    order = np.argsort(-score, kind="stable")[:int(n)]
    st.caption(f"The {len(order)} galaxies least like any other of the {len(cache):,}, oddest first: stars, "
               "artifacts, mergers, rare shapes. Mark them in 'Your own question' to learn a question of your own.")
    common.gallery(cache, order, [f"{cache.ids[r]} · {score[r]:.3f}" for r in order])
    download(pd.DataFrame({"rank": np.arange(1, len(order) + 1), "GalaxyID": cache.ids[order],
                           "score": score[order]}), "unusual.csv", "dc_odd_csv")

if view == VIEWS[1]:
    answers: dict = st.session_state.setdefault("dc_answers", {})
    # Marks made in the last run, read before fitting: the head and what it offers next include them at once.
    for key, value in list(st.session_state.items()):
        if key.startswith("dc_lab_") and value:
            answers[key[len("dc_lab_"):]] = value == "yes"
    question = st.text_input("Your question", value="a ring?", key="dc_question")
    st.caption("Mark galaxies yes or no below (at least one of each), then the galaxies are ranked by it and the "
               "ones it is least sure of are offered next. The labels stay in this session until you save them.")
    head = None
    if {True, False} <= set(answers.values()):
        rows = np.array([cache.row_of(g) for g in answers])
        head = labels.fit(vectors[rows], np.array(list(answers.values())))
    answered = np.isin(np.arange(len(cache)), [cache.row_of(g) for g in answers])
    if head is None:  # nothing to rank by yet: start from the unusual galaxies and a random few
        offer = np.r_[np.argsort(-ml.anomaly_scores(*ml.model_key(model), vectors, ds.fingerprint, 10),
                                 kind="stable")[:6],
                      np.random.default_rng(0).choice(len(cache), min(6, len(cache)), replace=False)]
        offer = np.array([r for r in dict.fromkeys(offer.tolist()) if not answered[r]])[:12]
    else:
        p = head.probability(vectors)
        offer = labels.ask_next(p, answered, 12)
    st.markdown("**Label these**" + (" (the head is least sure of them)" if head is not None else ""))
    cols = st.columns(6)
    for i, r in enumerate(offer):
        gid = str(cache.ids[r])
        with cols[i % 6]:
            common.gallery(cache, [r], [gid])
            st.segmented_control("answer", ["yes", "no"], key=f"dc_lab_{gid}", label_visibility="collapsed")
    st.caption(f"{sum(answers.values())} yes and {len(answers) - sum(answers.values())} no so far.")
    if head is not None:
        ranked = labels.rank(head, cache.ids, vectors)
        fresh = ranked[~ranked["GalaxyID"].isin(list(answers))].head(24)
        st.markdown(f"**Most likely yes to '{question}'**, not yet labelled")
        common.gallery(cache, [cache.row_of(g) for g in fresh["GalaxyID"]],
                       [f"{g} · p {v:.3f}" for g, v in zip(fresh["GalaxyID"], fresh["p_yes"])])
        c1, c2 = st.columns(2)
        with c1:
            download(ranked, "ranked.csv", "dc_ranked_csv")
        name = c2.text_input("Save as (a folder in discoveries/)", key="dc_save_name", placeholder="rings")
        if name.strip() and c2.button("Save labels, head and ranking", key="dc_save"):
            try:
                folder = labels.save(common.discoveries_root() / name.strip(), question,
                                     pd.DataFrame({"GalaxyID": list(answers), "label": list(answers.values())}),
                                     head, ranked, str(model), str(cache.path))
                st.success(f"Saved in `{folder}`; the command line does the same: `python -m galaxy_core label "
                           f"{cache.path} {folder / labels.LABELS_FILE} --name {folder.name}`.")
            except (OSError, ValueError) as e:
                st.error(f"Not saved: {e}")
