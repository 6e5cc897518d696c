"""Mergers: the fraction of galaxies a model calls mergers (predicted Class8.6 above a threshold), with its
uncertainty, beside the count each galaxy's spread gives, against the expectation from a merger rate, calibrated
against the volunteers, and checked against non-parametric morphology measured by statmorph."""

import streamlit as st

from galaxy_core.data import images
from galaxy_core.data.cache import GalaxyCache, subsample
from galaxy_core.errors import DataError
from galaxy_core.mergers import compare, evolution, fraction, morphology
from galaxy_core.mergers.calibration import precision_recall, synthetic_mismatch
from galaxy_core.predict import doubt, plusminus
from galaxy_core.show import figures
from galaxy_core.training import estimate
from pages import _common as common
from pages import _models as ml

common.require_app(__file__)

ds = common.dataset()
cache = ds.cache
st.title("Mergers")
st.caption(f"A galaxy counts as a merger when the model's {fraction.MERGER_COLUMN} (odd_feature--merger, the "
           "cumulative vote fraction P(odd) x P(merger | odd)) is above the threshold.")

model = ml.choose_model("mg_model")
if model is None:
    st.stop()
c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
subsets = list(compare.SUBSETS)
subset = c1.radio("Galaxies", subsets, format_func=compare.SUBSETS.get, horizontal=True, key="mg_subset",
                  index=subsets.index(compare.default_subset(cache, subsets)),
                  help="validation: the labelled galaxies the model never trained on, as the Evaluation page "
                       "scores a shipped checkpoint (for a run on this data: its validation split)")
threshold = c2.slider("Merger threshold on predicted Class8.6", 0.0, 0.99, 0.5, 0.01, key="mg_threshold")
rate = c3.number_input("Merger rate R (per galaxy per Gyr)", 0.0, 10.0, fraction.DEFAULT_RATE_PER_GYR, 0.01,
                       format="%.3f", key="mg_rate", help="0.05 at z~0, as the seed paper quoted Lotz et al. (2011)")
timescale = c4.number_input("Observability timescale T (Gyr)", 0.0, 10.0, fraction.MORPHOLOGY_TIMESCALE_GYR,
                            0.05, format="%.2f", key="mg_timescale",
                            help="how long a merger stays visible: ~0.2-0.4 Gyr for disturbed morphology, ~1 Gyr "
                                 "for close pairs (Lotz et al. 2008, 2010, 2011)")

ml.warn_domain(model, cache.synthetic)
key = ml.model_key(model)
pct = fraction.percent_text  # two significant digits for small fractions: 0.015 %, not 0.00 %
try:
    res = ml.merger_predictions(*key, cache, ds.fingerprint, subset)
except ValueError as e:
    st.error(f"Cannot run this model on this data: {e}")
    st.stop()
p, unseen = res["p"], res["unseen"]
if not len(p):
    if unseen is not None and unseen.n_trained:
        st.info(f"No labelled galaxies the model never trained on in this data: it trained on all "
                f"{unseen.n_trained:,} of them.")
    else:
        st.info(f"No {'unlabelled' if subset == 'unlabelled' else 'labelled'} galaxies in this data.")
    st.stop()
if unseen is not None:
    st.caption(f"{len(p):,} labelled galaxies the model never trained on; "
               + (f"the {unseen.n_trained:,} it trained on are left out." if unseen.known else
                  "this model does not list the galaxies it trained on, so none could be left out."))

report = compare.report(p, threshold, rate_per_gyr=rate, timescale_gyr=timescale, mean=res["mean"])
th, mean, theory = report.threshold_estimate, report.mean_estimate, report.theory
expected = theory.expected
calibration = ml.spread_calibration(model, cache, ds.fingerprint)
rows = res["rows"]
# Each galaxy's spread costs VIEWS predictions: up to the calibration's own number of galaxies it is predicted
# unasked (for the validation galaxies they are the calibration's, already predicted); beyond, on request.
spread = None
if len(rows) <= doubt.SCALE_SAMPLE or ml.has_spread(model, ds.fingerprint, rows):
    spread = ml.spread_of(model, cache, ds.fingerprint, rows, keep=True)
m1, m2, m3, m4, m5 = st.columns(5)
m1.metric(f"Merger fraction (p > {threshold:.2f})", pct(th.fraction),
          help=f"Wilson (1927) score interval, right even when few or no galaxies are flagged; the percentile "
               f"bootstrap gives {pct(th.boot_lo)} - {pct(th.boot_hi)}")
m1.caption(f"95 % Wilson interval {pct(th.lo)} - {pct(th.hi)} ({th.n_flagged:,} of {th.n:,} galaxies)")
probable = f"Fraction by P(> {threshold:.2f})"
if spread is None:
    m2.metric(probable, "not yet")
    if m2.button(f"Predict {doubt.VIEWS} views of the {len(rows):,} galaxies", key="mg_spread_go",
                 help=f"{doubt.VIEWS} times the merger prediction above; kept with the cache afterwards"):
        ml.spread_of(model, cache, ds.fingerprint, rows, keep=True)
        st.rerun()
else:
    count = ml.count_above(model, ds.fingerprint, spread, calibration.scale, fraction.MERGER_COLUMN,
                           threshold, subset)
    m2.metric(probable, pct(count["fraction"]),
              help="Not all or nothing: each galaxy counts by its probability of lying above the threshold, from its "
                   f"{doubt.VIEWS}-view Class8.6 and its spread as ± below, as a normal clipped to [0, 1]. The count "
                   "interval is among these galaxies (Poisson-binomial); the fraction's is a bootstrap over "
                   "galaxies, for the population they come from.")
    m2.caption(f"{count['expected_count']:,.1f} of {count['n']:,} galaxies expected above (95 %: "
               f"{count['count_lo']:,} - {count['count_hi']:,} of these); 95 % bootstrap interval {pct(count['lo'])} - "
               f"{pct(count['hi'])}"
               + ("; raw spread, uncalibrated" if calibration.scale.factor is None else
                  f"; ± = {calibration.scale.factor:.3g} × spread"))
m3.metric("Mean predicted Class8.6", pct(mean.fraction))
m3.caption(f"95 % bootstrap interval {pct(mean.lo)} - {pct(mean.hi)}; no threshold, less biased for a rare "
           "class")
m4.metric("Expected from R x T", pct(expected))
m4.caption(f"Lotz et al. (2011): f = R x T = {rate:g} / Gyr x {timescale:g} Gyr")
m5.metric("Observed / expected", fraction.ratio_text(theory.ratio))
m5.caption(f"implied rate R = {theory.implied_rate_per_gyr:.3g} / Gyr for T = {timescale:g} Gyr")
st.markdown(
    "**From a rate to a fraction.** A merger rate R counts mergers per galaxy per Gyr; a fraction counts galaxies "
    "*seen* merging, which is the rate times how long a merger stays visible: ")
st.latex(rf"f = R \times T_{{\rm obs}} = {rate:g}\ {{\rm Gyr^{{-1}}}} \times {timescale:g}\ {{\rm Gyr}} = "
         rf"{expected:.4f}")
st.caption(theory.text)

st.subheader("Merger probabilities")
st.plotly_chart(figures.histogram_figure(p, threshold))

st.subheader("Flagged galaxies")
flagged = compare.most_confident(p, threshold)
if len(flagged):
    st.caption(f"The {len(flagged)} most confident of the {th.n_flagged:,} galaxies above the threshold, each "
               f"with p ± its spread. {calibration.meaning()}")
    flagged_spread = spread.subset(flagged) if spread is not None else \
        ml.spread_of(model, cache, ds.fingerprint, rows[flagged])
    shown = plusminus.answer_texts(flagged_spread, calibration.scale, fraction.MERGER_COLUMN, p[flagged])
else:
    shown = []
common.gallery(cache, rows[flagged], [f"{cache.ids[r]} · p {t}" for r, t in zip(rows[flagged], shown)],
               width=150, samp="most confident mergers")  # wide enough for "id · p 0.66 ± 0.05" on one line


def calibration_data() -> tuple[GalaxyCache, str] | None:
    """The data to calibrate on and how to name it: this data, or the labelled folder typed in (None, with the
    reason shown, when that cannot be opened). Unlabelled data needs another folder: the same model is run there
    and the matching threshold found there is applied to the galaxies here."""
    c1, c2 = st.columns([3, 1])
    text = c1.text_input("Calibrate on the labelled galaxies of", key="mg_cal_folder", placeholder="this data",
                         help="Blank: this data. Else a labelled data folder or prepared cache (relative paths are "
                              "from the project folder), e.g. ../shared/data/gz2-kaggle-96 while looking at "
                              "unlabelled galaxies: the same model is run on its labelled galaxies that it never "
                              "trained on, and the threshold that matches the volunteers there is applied here.")
    fov = c2.number_input("Its field of view (optional)", min_value=0.05, max_value=1.0, value=None, step=0.01,
                          format="%.4f", key="mg_cal_fov", placeholder="from its galaxy_core.json",
                          help="As the sidebar's: the fraction of the 424 px frame the folder's images show, "
                               f"{images.PACK_FOV:.4f} for the gz2-kaggle-96 packs, 1.0 for the originals.")
    if not text.strip():
        return cache, "this data"
    try:
        other = common.open_dataset(text, fov)
    except images.FieldUnknown as e:
        st.warning(f"Its images are {e.size[0]} x {e.size[1]} px, not 424 px Kaggle originals: give the part of the "
                   f"frame they show beside the folder, {images.PACK_FOV:.4f} for the central 256 px (the "
                   "gz2-kaggle-96 packs), 1.0 for whole frames.")
        return None
    except (DataError, OSError, ValueError) as e:
        st.error(f"Cannot calibrate on this folder: {e}")
        return None
    if other.cache.fingerprint == cache.fingerprint:
        return cache, "this data"
    return other.cache, f"`{other.folder}`"


def calibration_section() -> dict | None:
    """The calibration against the volunteers; returns ``ml.merger_calibration``'s result when there is one."""
    st.subheader("Calibration against the volunteers")
    chosen = calibration_data()
    if chosen is None:
        return None
    on, where = chosen
    # Refused before the model predicts there, as the command line's mergers --calibrate-run refuses it.
    refused = synthetic_mismatch(on.synthetic, cache.synthetic, f"the labelled galaxies of {where}")
    if refused:
        kind = "synthetic demo" if cache.synthetic else "real"
        st.error(f"{refused[0].upper()}{refused[1:]}. Name a labelled data folder of {kind} galaxies above.")
        return None
    try:
        calib = ml.merger_calibration(*key, cache, ds.fingerprint, subset, on=on)
    except ValueError as e:
        st.error(f"Cannot run this model on {where}: {e}")
        return None
    unseen = calib["unseen"]
    galaxies = (f"the {calib['n']:,} labelled galaxies of {where} that the model never trained on (the galaxies "
                "the Evaluation page scores as 'validation' for a shipped checkpoint); "
                + (f"the {unseen.n_trained:,} it trained on are left out" if unseen.known else
                   "this model does not list the galaxies it trained on, so none could be left out and the "
                   "agreement may flatter it"))
    if calib["too_few"]:
        other = " Name a labelled data folder above to calibrate on." if on is cache else ""
        if calib["n"] == 0 and not unseen.n_trained:  # unlabelled data: nothing to count
            st.info(f"No labelled galaxies in {where} to calibrate on.{other}")
        else:
            st.info(f"{calib['too_few'][0].upper()}{calib['too_few'][1:]}: {galaxies}.{other}")
        return None
    p_pred, p_true = calib["pairs"].pair
    cal, matched = calib["calibration"], calib["matched"]
    pr = precision_recall(p_pred, p_true, threshold)
    st.caption(f"Model and volunteers compared on {galaxies}. Volunteers' merger: their Class8.6 > 0.5 "
               f"({calib['n_mergers']:,} galaxies)."
               + (" The matching threshold found there is applied to the galaxies here." if on is not cache else ""))
    k1, k2, k3, k4 = st.columns(4)
    k1.metric("Volunteers' fraction (> 0.5)", pct(cal["volunteer_fraction"]))
    k2.metric("Matching threshold", f"{cal['matching_threshold']:.3f}",
              help="the threshold at which the model flags as many galaxies as the volunteers do")
    k3.metric("Fraction at the matching threshold", pct(matched.fraction))
    k3.caption(f"95 % interval {pct(matched.lo)} - {pct(matched.hi)} ({matched.interval}), including the "
               f"uncertainty of the threshold itself ({matched.threshold_lo:.3f} - {matched.threshold_hi:.3f})")
    k4.metric(f"Precision / recall at {threshold:.2f}",
              " / ".join(fraction.number_text(x, 2) for x in (pr["precision"], pr["recall"])))
    fractions, reliability = figures.merger_calibration_figures(p_pred, p_true, threshold)
    c1, c2 = st.columns(2)
    c1.plotly_chart(fractions, key="mg_calibration")
    c2.plotly_chart(reliability, key="mg_reliability")
    return calib


def morphology_section(calib: dict | None) -> None:
    st.subheader("Independent check: non-parametric morphology")
    st.caption("Gini, M20 and asymmetry measured on the images by statmorph (Rodriguez-Gomez et al. 2019) after "
               f"undoing the asinh stretch of the JPEGs (Lupton et al. 2004, Q = {morphology.LUPTON_Q:g}), with the "
               "classic merger cuts: G > -0.14 M20 + 0.33 (Lotz et al. 2008) and A > 0.35 (Conselice 2003). "
               "Measurements statmorph flags as bad (flag > 1) are dropped. Each galaxy is measured once and kept "
               "with the cache.")
    rows = res["rows"]
    # Keyed by the subset and its size: one key would keep the value (and maximum) of the galaxies shown before.
    n = st.number_input(f"Galaxies to measure (a random sample of the {len(rows):,})", 1, len(rows),
                        min(1000, len(rows)), 100, key=f"mg_morph_n_{subset}_{len(rows)}")
    sample = subsample(rows, int(n), seed=0)
    table = ml.morphology_stored(cache, ds.fingerprint, ml.morphology_mtime(cache))
    todo = len(morphology.unmeasured(table, sample))
    if todo:
        seconds, cores = morphology.measuring_seconds(todo)
        st.info(f"{todo:,} of these {len(sample):,} galaxies are not measured yet: "
                f"{estimate.duration_text(seconds)} on {cores} cores. The command line does the same headless: "
                f"`python -m galaxy_core morphology {cache.path}`.")
        if not st.button("Measure", key="mg_morph_go", type="primary"):
            return
        bar, update = common.progress_bar("Measuring with statmorph:")
        before = ml.morphology_mtime(cache)
        t = morphology.cache_table(cache, sample, progress=update)
        bar.empty()
        if ml.morphology_mtime(cache) != before:
            st.rerun()  # kept with the cache: drawn from there, as on every later visit
        st.warning(f"The cache folder {cache.path} cannot be written to, so these measurements are not kept.")
    else:
        t = morphology.rows_of(table, sample)
    methods = compare.other_methods(cache, sample, threshold, p=p, p_rows=rows,
                                    calibrated=calib["calibration"]["matching_threshold"] if calib else None)
    try:
        check = compare.morphology_check(t, methods.flags, methods.known)
    except ValueError as e:
        st.warning(str(e))
        return
    used = check["used"]
    d1, d2 = st.columns([1, 3])
    d1.metric("Galaxies compared", f"{len(used):,}", help=f"of {len(t):,} measured")
    d2.caption("Dropped: " + ("; ".join(f"{k} {v:,}" for k, v in check["dropped"].items()) or "none") + ".")
    st.dataframe(compare.fractions_table(check["fractions"]), hide_index=True,
                 column_config={"fraction": st.column_config.NumberColumn(format="percent")})
    st.caption("Overlap: the share of each row's mergers that the column's method also flags (count in brackets).")
    st.dataframe(compare.overlap_shares(check["overlap"]))
    st.plotly_chart(figures.gini_m20_figure(t.iloc[used], methods.flags[methods.marked][used], methods.marked),
                    key="mg_gini_m20")
    st.markdown("**What the cuts select** (random examples)")
    for name, (picked, n_flagged) in compare.cut_examples(t).items():
        st.caption(f"{name}: {n_flagged:,} galaxies")
        common.gallery(cache, t["row"].to_numpy()[picked],
                       [f"G {g:.2f} · M20 {m:.2f} · A {a:.2f}" for g, m, a in
                        t.loc[picked, ["gini", "m20", "asymmetry"]].itertuples(index=False)])


def by_column_section(calib: dict | None) -> None:
    """The merger fraction in bins of a catalogue column (redshift, stellar mass ...), where the data has one."""
    names = evolution.catalogue_columns(cache)
    if not names:
        return
    st.subheader("Fraction against a catalogue column")
    c1, c2, c3 = st.columns([2, 2, 3])
    column = c1.selectbox("Catalogue column", names, key="mg_by_column",
                          index=next((i for i, n in enumerate(names) if evolution.is_redshift(n)), 0))
    text = c2.text_input("Bins", "5", key="mg_by_bins",
                         help="a number of equal-count bins, or increasing edges such as 0,0.05,0.1,0.2")
    lotz = evolution.LOTZ_2011
    choice = None  # a rate against redshift says nothing of a mass or a magnitude
    if evolution.is_redshift(column):
        choice = c3.selectbox("Merger rate R(z) = R0 (1 + z)^m", list(lotz), key="mg_by_lotz",
                              format_func=lambda k: "constant: the rate R above"
                              if k == evolution.DEFAULT_CHOICE else f"{lotz[k].label} (m = {lotz[k].m:g})",
                              help="Lotz et al. (2011), ApJ 742, 103: only the exponents m and the minor-to-major "
                                   "ratio were verified (from its abstract); R0 is the seed paper's 0.05 per Gyr.")
    t_cal = calib["calibration"]["matching_threshold"] if calib else None
    try:
        values = evolution.catalogue_values(cache, res["rows"], column)
        result = evolution.fraction_by(values, p, evolution.parse_bins(text), threshold,
                                              calibration=t_cal)
    except ValueError as e:  # bad bins, or a column that is not numbers (DataError)
        st.error(str(e))
        return
    expected = evolution.expectation_for(column, choice, rate_per_gyr=rate, timescale=timescale,
                                         lo=result.edges[0], hi=result.edges[-1])
    table = evolution.bins_table(result, column, expected=expected and expected.choice, timescale=timescale)
    label = evolution.column_label(column, evolution.catalogue_unit(cache, column))
    st.plotly_chart(figures.fraction_by_figure(result, label, expected and expected.curve,
                                               expected.name if expected else ""), key="mg_by_figure")
    st.dataframe(evolution.shown_table(table, column), hide_index=True)
    common.samp_button(table, f"merger fraction by {column}", key="mg_by_samp")
    st.caption(f"{result.rule[0].upper()}{result.rule[1:]}."
               + (f" Left out: {result.left_out}." if result.left_out else "")
               + (f" {result.merged[0].upper()}{result.merged[1:]}." if result.merged else "")
               + (f" Calibrated at {result.calibrated_threshold:.3f} ({result.calibrated_interval})."
                  if t_cal is not None else ""))


calibration = calibration_section()
by_column_section(calibration)
morphology_section(calibration)

with st.expander("Literature values"):
    st.dataframe(fraction.literature_table(), hide_index=True)
