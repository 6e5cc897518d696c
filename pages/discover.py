"""Discover: galaxies like a given one, a yes/no question of your own learnt from a few galaxies you mark, and the
galaxies least like any other, all on one model's embeddings (the backbone before the decision-tree head); under each
galaxy, one of the model's answers with its spread."""

import streamlit as st

from galaxy_core.discover import embeddings, finetune, own_questions, similarity
from galaxy_core.errors import DataError
from galaxy_core.predict import plusminus
from galaxy_core.show import access
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


def download(frame, name: str, key: str) -> None:
    """A table without its cache rows (``row``), for the user's own files."""
    st.download_button("Download as CSV", frame.drop(columns="row", errors="ignore").to_csv(index=False),
                       file_name=name, mime="text/csv", key=key)


answers: dict = st.session_state.setdefault("dc_answers", {})  # GalaxyID -> True (yes) / False (no)


def _like(gid: str) -> None:
    st.session_state["dc_query"] = gid
    st.session_state["dc_view"] = VIEWS[0]


def with_answer(rows, captions: list[str]) -> list[str]:
    """``captions`` with the chosen answer of the model, ± its spread, after each (as they are without one)."""
    if shown_answer is None or not len(rows):
        return captions
    spread = ml.spread_of(model, cache, ds.fingerprint, rows)
    return [f"{c} · {t}" for c, t in zip(captions, plusminus.answer_texts(spread, calibration.scale, shown_answer))]


def marked_gallery(rows, captions: list[str], where: str) -> None:
    """Thumbnails with Yes / No under each (the answer to your own question; the chosen one is highlighted, a second
    click takes it back) and Like (its neighbours), each caption followed by the chosen answer ± its spread. Buttons
    rather than toggles: a new galaxy in a place where another was marked never shows that one's state."""
    captions = with_answer(rows, captions)
    per_row = 4  # room under each thumbnail for three readable buttons on a laptop screen
    common.samp_rows(cache, rows, f"discover {where}")
    cols = st.columns(per_row)
    for i, r in enumerate(rows):
        gid = str(cache.ids[r])
        with cols[i % per_row]:
            common.gallery(cache, [r], [captions[i]], width=170)  # room for "id · score · 0.16 ± 0.32" on one line
            yes, no, like = st.columns(3, gap="small")
            for col, text, answer in ((yes, "Yes", True), (no, "No", False)):
                col.button(text, key=f"dc_{where}_{text.lower()}_{gid}", on_click=own_questions.mark,
                           args=(answers, gid, answer),
                           type="primary" if answers.get(gid) is answer else "secondary", width="stretch")
            like.button("Like", key=f"dc_{where}_like_{gid}", on_click=_like, args=(gid,), width="stretch",
                        help="Galaxies like this one")


# A keyed selector rather than st.tabs: it keeps its choice through the reruns that marking galaxies causes, and
# only the chosen view is computed.
VIEWS = ["Galaxies like this one", "Your own question", "Unusual galaxies"]
view = st.segmented_control("View", VIEWS, default=VIEWS[0], key="dc_view", label_visibility="collapsed") or VIEWS[0]
c1, c2, c3, c4 = st.columns([3, 1.6, 1, 1.4], vertical_alignment="bottom")
# Above the views, so that they are not reset when a view that does not draw them is chosen (Streamlit forgets a
# widget's state when a run does not draw it).
question = c1.text_input("Your own question (Yes / No under the galaxies)", value="a ring?", key="dc_question")
n_yes, n_no = own_questions.tally(answers)
c2.caption(f"{n_yes} yes and {n_no} no so far.")
full = f"all {vectors.shape[1]}"
dims = c3.selectbox("Dimensions", [full] + [d for d in (128, 64, 32, 16) if d < vectors.shape[1]], key="dc_dims",
                    help="Search and the unusual galaxies on this many principal components: less memory, a few "
                         "neighbours lost (32 of 256 find 79 % of the 10 nearest).")
dims = None if dims == full else int(dims)
approximate = c4.toggle("Approximate", key="dc_approx", disabled=not similarity.faiss_available(),
                        help="faiss's inverted-file index, for millions of galaxies (a few neighbours may be "
                             "missed). Needs `pip install faiss-cpu`." if similarity.faiss_available() else
                        "Needs `pip install faiss-cpu`: an approximate index for millions of galaxies.")
index = ml.search_index(*ml.model_key(model), vectors, ds.fingerprint, dims, approximate)
a1, a2 = st.columns([2, 5], vertical_alignment="center")
with a1:
    shown_answer = common.answer_select("The model's answer under each galaxy", "dc_answer", default="Class6.1",
                                        none="none")
calibration = ml.spread_calibration(model, cache, ds.fingerprint) if shown_answer else None
if calibration is not None:
    a2.caption(f"Under each galaxy, after its score: the model's {shown_answer} ± its spread. {calibration.meaning()}")

if view == VIEWS[0]:
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    typed = c1.text_input("GalaxyID", value=str(cache.ids[0]), key="dc_query")
    upload = c2.file_uploader("or an image (JPEG, PNG or FITS)", key="dc_upload",
                              type=["jpg", "jpeg", "png", "fits", "fit", "fts", "gz"])
    k = c3.number_input("Neighbours", 1, 200, 24, key="dc_k")
    fov = c4.number_input("Its field of view", 0.05, 1.0, None, 0.01, format="%.4f", key="dc_fov",
                          placeholder="1.0",
                          help="For an uploaded image that is not a 424 px original: the part of the 424 px frame it "
                               "shows (0.6038 for the central 256 px, as in the 96 px packs). Empty: a 424 px "
                               "original, or its folder's galaxy_core.json. The sidebar's field of view is the data "
                               "folder's: it is not taken here, as the image may be another.")
    query, name = None, None
    if upload is not None:
        try:
            saved = common.saved_upload(upload)
            query = embeddings.embed_file(ml.load_model(model), saved, cache, source_fov=fov)
            name = upload.name
        except DataError as e:  # the upload by its name, the field box beside it: never the temporary folder
            st.error(access.upload_message(e, box="Its field of view",
                                           sidebar_fov=st.session_state.get("source_fov")))
    elif typed.strip():
        try:
            query, name = vectors[cache.row_of(typed.strip())], f"GalaxyID {typed.strip()}"
        except KeyError as e:
            st.error(str(e).strip("'\""))
    if query is not None:
        found = index.similar(query, cache.ids, int(k))
        st.caption(f"The {len(found)} galaxies nearest to {name}, nearest first"
                   + (f" (on {dims} principal components, {index.kept:.0%} of the variance)." if dims else "."))
        marked_gallery(found["row"], [f"{g} · {d:.3f}" for g, d in zip(found["GalaxyID"], found["distance"])], "near")
        download(found, "similar.csv", "dc_similar_csv")

if view == VIEWS[2]:
    c1, c2 = st.columns(2)
    n = c1.number_input("How many", 1, 500, 48, key="dc_odd_n")
    neighbours = c2.number_input("Neighbours in the score", 1, 100, 10, key="dc_odd_k",
                                 help="a galaxy's score is its mean cosine distance to this many nearest others")
    score = ml.anomaly_scores(*ml.model_key(model), vectors, ds.fingerprint, int(neighbours), dims, approximate)
    odd = similarity.most_unusual(score, cache.ids, int(n))
    st.caption(f"The {len(odd)} galaxies least like any other of the {len(cache):,}, oddest first: stars, "
               "artifacts, mergers, rare shapes. Yes and No answer your own question (see 'Your own question').")
    marked_gallery(odd["row"], [f"{g} · {v:.3f}" for g, v in zip(odd["GalaxyID"], odd["score"])], "odd")
    download(odd, "unusual.csv", "dc_odd_csv")

if view == VIEWS[1]:
    st.caption("Answer Yes or No under the galaxies below, or under any gallery of this page (at least one of "
               "each); then every galaxy is ranked by it and the ones it is least sure of are offered next. The "
               "answers stay in this browser session until you save them.")
    head, tuned, ranked_by = None, None, vectors
    rows, said = own_questions.marked(cache.row_of, answers)
    answered = own_questions.answered(len(cache), rows)
    if n_yes and n_no:
        head = ml.own_head(*ml.model_key(model), ds.fingerprint, tuple(answers.items()), vectors[rows])
        # A fine-tuned copy ranks only for the answers and the model and data it was tuned on.
        held = st.session_state.get("dc_tuned")
        if held and held["for"] == (dict(answers), ml.model_key(model), ds.fingerprint):
            tuned, head, ranked_by = held["model"], held["head"], held["vectors"]
    offer = own_questions.offer(answered, head, ranked_by,
                                lambda: ml.anomaly_scores(*ml.model_key(model), vectors, ds.fingerprint, 10))
    st.markdown("**Label these**" + (" (the head is least sure of them)" if head is not None else ""))
    marked_gallery(offer, [str(cache.ids[r]) for r in offer], "ask")
    if head is not None:
        c1, c2 = st.columns([1, 2], vertical_alignment="center")
        if c1.button("Fine-tune the last stage on these answers", key="dc_tune", disabled=tuned is not None,
                     help="Teaches the backbone's last stage and a new head your answers (20 passes over 8 views "
                          "of each), then embeds every galaxy again: seconds to train, about a minute per 20,000 "
                          "galaxies to embed on two CPU cores. The 37-answer model is never changed."):
            bars = {}

            def update(stage: str, done: int, total: int) -> None:
                if stage not in bars:
                    bars[stage] = common.progress_bar(f"{stage.capitalize()}:", "epochs" if stage == "fine-tuning"
                                                      else "galaxies")[1]
                bars[stage](done, total)

            try:
                t_model, t_head, t_vectors = finetune.tune_and_rank(
                    ml.load_model(model), cache, rows, said, head, progress=update)
            except ValueError as e:
                st.error(f"Cannot fine-tune: {e}")
            else:
                st.session_state["dc_tuned"] = {"for": (dict(answers), ml.model_key(model), ds.fingerprint),
                                                "model": t_model, "head": t_head, "vectors": t_vectors}
                st.rerun()
        c2.caption("Ranked by the fine-tuned last stage: a new answer returns to the frozen one until you fine-tune "
                   "again." if tuned is not None else "Ranked by a head on the frozen embeddings.")
        ranked = own_questions.rank(head, cache.ids, ranked_by)
        fresh = own_questions.candidates(ranked, answers, 24)
        shown, why = own_questions.probability_shown(head)
        st.markdown(f"**Most likely yes to '{question}'**, not yet labelled")
        st.caption(f"{why[0]}." if shown else f"By rank, without probabilities: {why[0]} (see 'Is p(yes) a "
                   "probability?' in docs/discovery.md).")
        marked_gallery([cache.row_of(g) for g in fresh["GalaxyID"]], own_questions.captions(fresh, shown), "top")
        c1, c2 = st.columns(2)
        with c1:
            download(ranked, "ranked.csv", "dc_ranked_csv")
        name = c2.text_input("Save as (a folder in discoveries/)", key="dc_save_name", placeholder="rings")
        if name.strip() and c2.button("Save labels, head and ranking", key="dc_save"):
            try:
                folder = own_questions.save(common.discoveries_root() / name.strip(), question,
                                            own_questions.answers_frame(answers), head, ranked, model=str(model),
                                            cache=str(cache.path), tuned=tuned)
                st.success(f"Saved in `{folder}`; the command line does the same: `python -m galaxy_core label "
                           f"{cache.path} {folder / own_questions.LABELS_FILE} --name {folder.name}`.")
            except (OSError, ValueError) as e:
                st.error(f"Not saved: {e}")
