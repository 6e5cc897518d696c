"""Mergers: the fraction of galaxies a model calls mergers (predicted Class8.6 above a threshold), with its
uncertainty, against the expectation from a merger rate, and calibrated against the volunteers."""

import numpy as np
import streamlit as st

from galaxy_core import figures, mergers
from pages import _common as common
from pages import _models as ml

common.require_app(__file__)

ds = common.dataset()
cache = ds.cache
st.title("Mergers")
st.caption(f"A galaxy counts as a merger when the model's {mergers.MERGER_COLUMN} (odd_feature--merger, the "
           "cumulative vote fraction P(odd) x P(merger | odd)) is above the threshold.")

model = ml.choose_model("mg_model")
if model is None:
    st.stop()
c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
subset = c1.radio("Galaxies", ["val", "labelled", "unlabelled"], format_func=common.SUBSET_NAMES.get,
                  horizontal=True, key="mg_subset")
threshold = c2.slider("Merger threshold on predicted Class8.6", 0.0, 0.99, 0.5, 0.01, key="mg_threshold")
rate = c3.number_input("Merger rate R (per galaxy per Gyr)", 0.0, 10.0, mergers.DEFAULT_RATE_PER_GYR, 0.01,
                       format="%.3f", key="mg_rate", help="0.05 at z~0, as the seed paper quoted Lotz et al. (2011)")
timescale = c4.number_input("Observability timescale T (Gyr)", 0.0, 10.0, mergers.MORPHOLOGY_TIMESCALE_GYR, 0.05,
                            format="%.2f", key="mg_timescale",
                            help="how long a merger stays visible: ~0.2-0.4 Gyr for disturbed morphology, ~1 Gyr "
                                 "for close pairs (Lotz et al. 2008, 2010, 2011)")

ml.warn_domain(model, cache.synthetic)
key = ml.model_key(model)
try:
    res = ml.merger_probabilities(*key, cache, ds.fingerprint, subset)
    p = res["p"]
    if not len(p):
        st.info(f"No galaxies in the {common.SUBSET_NAMES[subset]} of this data.")
        st.stop()
    calib = ml.merger_calibration(*key, cache, ds.fingerprint, subset)  # None: no labelled galaxies to use
except ValueError as e:
    st.error(f"Cannot run this model on this data: {e}")
    st.stop()

report = mergers.report(p, threshold, rate, timescale, calib and calib["calibration"],
                        labelled=calib and calib["pairs"].pair, mean=res["mean"], matched=calib and calib["matched"])
th, mean, theory = report["threshold_estimate"], report["mean_estimate"], report["theory"]
expected = theory["expected"]
m1, m2, m3, m4 = st.columns(4)
m1.metric(f"Merger fraction (p > {threshold:.2f})", f"{th['fraction']:.2%}",
          help=f"Wilson (1927) score interval, right even when few or no galaxies are flagged; the percentile "
               f"bootstrap gives {th['boot_lo']:.2%} - {th['boot_hi']:.2%}")
m1.caption(f"95 % Wilson interval {th['lo']:.2%} - {th['hi']:.2%} ({th['n_flagged']:,} of {th['n']:,} galaxies)")
m2.metric("Mean predicted Class8.6", f"{mean['fraction']:.2%}")
m2.caption(f"95 % bootstrap interval {mean['lo']:.2%} - {mean['hi']:.2%}; no threshold, less biased for a rare "
           "class")
m3.metric("Expected from R x T", f"{expected:.2%}")
m3.caption(f"Lotz et al. (2011): f = R x T = {rate:g} / Gyr x {timescale:g} Gyr")
m4.metric("Observed / expected", f"{theory['ratio']:.2g}")
m4.caption(f"implied rate R = {theory['implied_rate_per_gyr']:.3g} / Gyr for T = {timescale:g} Gyr")
st.markdown(
    "**From a rate to a fraction.** A merger rate R counts mergers per galaxy per Gyr; a fraction counts galaxies "
    "*seen* merging, which is the rate times how long a merger stays visible: ")
st.latex(rf"f = R \times T_{{\rm obs}} = {rate:g}\ {{\rm Gyr^{{-1}}}} \times {timescale:g}\ {{\rm Gyr}} = "
         rf"{expected:.4f}")
st.caption(theory["text"])

st.subheader("Merger probabilities")
st.plotly_chart(figures.histogram_figure(p, threshold))

st.subheader("Flagged galaxies")
order = np.argsort(-p, kind="stable")
flagged = order[p[order] > threshold][:24]
if len(flagged):
    st.caption(f"The {len(flagged)} most confident of the {th['n_flagged']:,} galaxies above the threshold.")
common.gallery(cache, res["rows"][flagged], [f"{cache.ids[r]} · p {v:.2f}"
                                             for r, v in zip(res["rows"][flagged], p[flagged])])

st.subheader("Calibration against the volunteers")
if calib is None:
    st.info("No labelled galaxies to calibrate the model against.")
    st.stop()
p_pred, p_true = calib["pairs"].pair
where = (f"the {len(p_pred):,} galaxies of the validation split" if calib["pairs"].fallback
         else f"these {len(p_pred):,} labelled galaxies")
cal, pr, matched = report["calibration"], report["precision_recall"], report["matched_estimate"]
st.caption(f"Model and volunteers compared on {where}. Volunteers' merger: their Class8.6 > 0.5.")
k1, k2, k3, k4 = st.columns(4)
k1.metric("Volunteers' fraction (> 0.5)", f"{cal['volunteer_fraction']:.2%}")
k2.metric("Matching threshold", f"{cal['matching_threshold']:.3f}",
          help="the threshold at which the model flags as many galaxies as the volunteers do")
k3.metric("Fraction at the matching threshold", f"{matched['fraction']:.2%}")
k3.caption(f"95 % interval {matched['lo']:.2%} - {matched['hi']:.2%} ({matched['interval']}), including the "
           f"uncertainty of the threshold itself ({matched['threshold_lo']:.3f} - {matched['threshold_hi']:.3f})")
k4.metric(f"Precision / recall at {threshold:.2f}",
          " / ".join("n/a" if np.isnan(x) else f"{x:.2f}" for x in (pr["precision"], pr["recall"])))
c1, c2 = st.columns(2)
with c1:
    fig = figures.calibration_figure(mergers.calibration_table(p_pred, p_true))
    fig.add_vline(x=threshold, line_dash="dash", line_color="firebrick")
    st.plotly_chart(fig, key="mg_calibration")
with c2:
    edges = [0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0]
    st.plotly_chart(figures.calibration_figure(mergers.reliability_curve(p_pred, p_true, edges)), key="mg_reliability")

with st.expander("Literature values"):
    st.dataframe(mergers.literature_table(), hide_index=True)
