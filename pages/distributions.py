"""Distributions: the 37 answers' histograms and skewness, their correlations, and training vs validation."""

import streamlit as st

from galaxy_core import tree
from galaxy_core.data.cache import SUBSET_NAMES
from galaxy_core.show import explore, figures
from pages import _common as common

common.require_app(__file__)

ds = common.dataset()
cache = ds.cache
st.title("Distributions of the 37 answers")

subset = st.radio("Galaxies", ["labelled", "train", "val"], format_func=SUBSET_NAMES.get, horizontal=True,
                  key="dist_subset")
stats = common.label_statistics(cache, ds.fingerprint, subset)
if stats["n"] == 0 or not stats["stats"]["n"].any():
    st.info("No labelled galaxies in this subset.")
    st.stop()
st.caption(f"{stats['n']:,} galaxies; each answer counts only the galaxies where it is known.")
questions = list(tree.BY_KEY)


def histograms() -> None:
    st.caption("All 37 at a glance: a row per answer, a column per bin of vote fraction, the colour the share of the "
               "galaxies with that answer known that fall in the bin (log scale; blank: none).")
    st.plotly_chart(common.histogram_overview(cache, ds.fingerprint, subset))
    c1, c2 = st.columns([3, 1])
    question = c1.selectbox(
        "Histograms of the answers to", [None] + questions, index=1, key="dist_hist_question",
        format_func=lambda k: "all 11 questions (37 panels; slower to draw)" if k is None else
        f"{k}: {tree.BY_KEY[k].text}")
    log = c2.toggle("Logarithmic counts", key="dist_log",
                    help="Most answers pile up near 0: a log scale shows the tail of confident votes.")
    st.plotly_chart(common.histogram_grid(cache, ds.fingerprint, subset, log, question))
    with st.expander("Mean, spread and skewness of every answer"):
        st.dataframe(stats["stats"], hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in ("mean", "std", "median", "skewness")})


def correlations() -> None:
    st.caption("Pearson correlation between answers over the fully labelled galaxies. Answers of one question "
               "share their parent answer, so they are anticorrelated by construction; look off the diagonal blocks "
               "for morphology (e.g. spiral arms with disks).")
    st.plotly_chart(figures.heatmap_figure(stats["corr"], height=850))
    question = st.selectbox("Within one question", questions, key="dist_question",
                            format_func=lambda k: f"{k}: {tree.BY_KEY[k].text}")
    st.plotly_chart(figures.heatmap_figure(explore.question_block(stats["corr"], question), height=420))


def training_vs_validation() -> None:
    comp = common.split_comparison(cache, ds.fingerprint)
    st.caption("The validation galaxies are a seeded random tenth of the fully labelled ones, so both splits should "
               "follow the same distributions: KS is the largest gap between their cumulative distributions, of "
               "order 1/sqrt(validation size) for a fair split.")
    st.plotly_chart(figures.split_means_figure(comp))
    column = common.answer_select("Answer", "dist_answer", default="Class1.1")
    st.plotly_chart(figures.split_histogram_figure(
        explore.split_histograms(cache.labels, cache.mask, cache.split, column), column))
    st.dataframe(comp, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("mean_train", "mean_val", "ks")})


# Lazy tabs: only the open one runs and is drawn (the browser took about a second for all six charts at once).
TABS = {"Histograms": histograms, "Correlations": correlations, "Training vs validation": training_vs_validation}
for tab, draw in zip(st.tabs(list(TABS), key="dist_tab", on_change="rerun"), TABS.values()):
    if tab.open:
        with tab:
            draw()
