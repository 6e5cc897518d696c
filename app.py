"""The dashboard: ``streamlit run app.py``. This file is the home page, the shared sidebar and the page list.

The data folder is chosen in the sidebar (``GALAXY_DATA`` sets its starting value); every page works on the cache
prepared from it. Pages are layout only: they read widgets, call ``galaxy_core`` and draw the result with plotly.

Everything runs under ``if __name__ == "__main__"``. Streamlit runs this file as ``__main__``; the worker processes
that ``galaxy_core`` starts to decode images (multiprocessing's spawn method) import the main script again as
``__mp_main__``, and must neither run the app nor spend seconds importing torch and Streamlit.
"""

PAGES = {
    "pages/dataset.py": ("Dataset browser", ":material/photo_library:",
                         "counts, memory, the tree check, thumbnails sorted by any answer, the typical galaxies"),
    "pages/distributions.py": ("Distributions", ":material/bar_chart:",
                               "histograms of the 37 answers with their skewness, correlations, train vs validation"),
    "pages/training.py": ("Training", ":material/model_training:",
                          "train a model in the background and watch its learning curves"),
    "pages/evaluation.py": ("Evaluation", ":material/query_stats:",
                            "RMSE overall and per answer, true vs predicted, best and worst galaxies"),
    "pages/mergers.py": ("Mergers", ":material/join_inner:",
                         "the merger fraction with its uncertainty, against the expectation from merger rates"),
    "pages/predict.py": ("Predict", ":material/upload_file:",
                         "the 37 answers for your own images, as a table, a tree and a Kaggle-format CSV"),
    "pages/discover.py": ("Discover", ":material/travel_explore:",
                          "galaxies like a given one, a question of your own learnt from a few marks, the oddest"),
}


if __name__ == "__main__":
    import importlib
    import threading

    import streamlit as st

    st.set_page_config(page_title="Galaxy Zoo 2 morphology", page_icon=":material/blur_on:", layout="wide")

    def home() -> None:
        st.title("Galaxy Zoo 2 morphology")
        st.markdown(
            "An open tool for the morphology of galaxies with deep learning. Galaxy Zoo 2 volunteers classified SDSS "
            "colour images by answering a decision tree of 11 questions (Willett et al. 2013); the Kaggle *Galaxy "
            "Challenge* published their answers for 61,578 galaxies as 37 vote fractions (Dieleman, Willett & Dambre "
            "2015). This tool prepares such data once into a compact cache, trains neural networks that predict the "
            "37 answers, evaluates them, estimates merger fractions, and predicts new images.")
        ds = st.session_state.get("dataset")
        if ds is None:
            if not isinstance(st.session_state.get("dataset_error"), common.images.FieldUnknown):  # asked already
                st.warning("No data yet: choose a data folder in the sidebar.")
        else:
            s = common.cache_summary(ds.cache, ds.fingerprint)
            if ds.demo:
                st.info("You are looking at the **built-in synthetic demo** (`data/demo`): made-up galaxies and labels "
                        "to try the tool, useless for science. Put real data in `data/` or name a folder in the "
                        "sidebar.")
            else:
                st.success(f"Data in use: `{ds.folder}`")
            cols = st.columns(5)
            for col, (name, value) in zip(cols, [("galaxies", s["n"]), ("fully labelled", s["n_full"]),
                                                 ("partially labelled", s["n_partial"]),
                                                 ("unlabelled", s["n_unlabelled"]),
                                                 ("train / validation", f"{s['n_train']:,} / {s['n_val']:,}")]):
                col.metric(name, f"{value:,}" if isinstance(value, int) else value)
        st.subheader("Pages")
        for path, (title, icon, what) in PAGES.items():
            st.page_link(path, label=f"**{title}**: {what}", icon=icon)
        st.subheader("How to use your own data")
        st.markdown(
            "Put your images and labels in a folder with the Kaggle layout and type its path in the sidebar:\n\n"
            # A list, not a code block: a code block makes the browser fetch a 1.5 MB syntax highlighter first.
            "- `my_data/images_training_rev1/<GalaxyID>.jpg`: labelled images (JPEG or PNG, any size)\n"
            "- `my_data/images_test_rev1/<GalaxyID>.jpg`: unlabelled images (optional)\n"
            "- `my_data/training_solutions_rev1.csv`: `GalaxyID` and `Class1.1` ... `Class11.6` (blank = unknown)"
            "\n\n"
            "Images are assumed to be whole 424 x 424 px Galaxy Zoo cutouts. If yours show only the central part of "
            "that frame (for example the 96 px packs cut from its central 256 px), give the fraction as the *source "
            "field of view* (0.6038 for those packs) or write `{\"source_fov\": 0.6038}` into "
            "`my_data/galaxy_core.json`. "
            "The first use decodes every image once into a cache in your user cache folder (`~/.cache/galaxy_core`, "
            "or `$GALAXY_CACHE_DIR`; nothing is written into the data folder); later visits open it at once. The "
            "same steps work from a terminal: `python -m galaxy_core summary my_data`, "
            "`python -m galaxy_core prepare my_data`, `python -m galaxy_core train my_data`.\n\n"
            "The dashboard reads only folders inside its data roots: the project folder and `../shared/data` beside "
            "it, or the folders listed in the `GALAXY_DATA_ROOTS` environment variable (separated by `:`) of whoever "
            "starts it, so that people it is served to cannot browse the rest of the server's disk.")

    pages = [st.Page(home, title="Home", icon=":material/home:", default=True)]
    pages += [st.Page(path, title=title, icon=icon) for path, (title, icon, _) in PAGES.items()]
    # The menu goes out before the imports, so that the first frame already shows it and a word in the main area.
    page = st.navigation(pages)
    starting = st.empty()
    starting.caption("Starting: loading the galaxy_core package ...")
    from pages import _common as common

    starting.empty()
    common.sidebar()
    page.run()
    common.preload_frontend()

    @st.cache_resource(show_spinner=False)
    def import_in_background(module: str) -> threading.Thread:
        """Once per server process. Importing PyTorch takes ~2 s, which the home, Dataset and Distributions pages do
        not need (pages/_common.py imports none of it): a start draws its first page without it, then imports it
        while the user reads, so that the pages with models rarely wait for it."""
        thread = threading.Thread(target=importlib.import_module, args=(module,), daemon=True)
        thread.start()
        return thread

    import_in_background("pages._models")
