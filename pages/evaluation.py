"""Evaluation: a run's RMSE overall and per answer, true vs predicted, its error against its spread, the best and
the worst galaxies (the best with their spread)."""

import streamlit as st

from galaxy_core.models import runs
from galaxy_core.predict import evaluation, plusminus
from galaxy_core.show import figures
from galaxy_core.training import export
from pages import _common as common
from pages import _models as ml
from pages._samp import samp_button

common.require_app(__file__)

ds = common.dataset()
cache = ds.cache
st.title("Evaluation")

finished = runs.finished_runs(common.runs_root())
checkpoints = export.shipped_checkpoints()
if not finished and not checkpoints:
    st.info(f"No run with a checkpoint in `{common.runs_root()}` and no checkpoint shipped in `checkpoints/` yet: "
            "train one on the Training page.")
    st.stop()
options = evaluation.model_choices(finished, checkpoints, str(ds.cache.path))
c1, c2 = st.columns([3, 1])
choice = c1.selectbox("Model", list(options), key="ev_run")
split = c2.selectbox("Galaxies", list(evaluation.SPLITS), format_func=evaluation.SPLITS.get, key="ev_split",
                     help="The validation split (for a shipped checkpoint: the galaxies it never trained on) is "
                          "the fair test. 'All labelled' leaves out the galaxies the model learnt from unless you "
                          "ask for them; 'trained on' shows how well it fits what it learnt.")
run = options[choice]
if run["kind"] == "checkpoint":
    trained = run["summary"]
    st.caption(f"Shipped checkpoint {run['name']}: {run['model']} trained "
               f"{'on ' + trained['device'] if trained.get('device') else ''} "
               f"for {trained.get('epochs', '?')} epochs; "
               + ("'Validation' here means the labelled galaxies of this data it never trained on."
                  if run["galaxies"] else "it does not list its training galaxies, so every galaxy counts."))
elif run["data"] != str(ds.cache.path):
    st.warning(f"This run was trained on `{run['data']}`, not on the data in use: 'validation' here means the "
               "labelled galaxies of this data it never learnt from (matched by GalaxyID, when its training cache is "
               "on this machine; else every galaxy counts).")
ml.warn_domain(run["path"], cache.synthetic)
t1, t2 = st.columns(2)
everything = t1.toggle(f"All galaxies (else a fixed random {evaluation.EVALUATION_SAMPLE:,} when there are more)",
                       False, key="ev_all",
                       help="On a CPU a network needs about a minute for 50,000 galaxies (once: predictions are "
                            "stored with the cache); 5,000 give the overall RMSE with a standard error of about 0.7 %.")
include_trained = split == "labelled" and t2.toggle(
    "Include the galaxies it trained on", False, key="ev_include_trained",
    help="Scores over galaxies a model learnt from flatter it: left out unless you ask.")
try:
    ev = ml.run_evaluation(str(run["path"]), ml.model_key(run["path"])[1], cache, ds.fingerprint, split,
                           None if everything else evaluation.EVALUATION_SAMPLE, include_trained)
except (ValueError, KeyError, FileNotFoundError) as e:
    st.error(f"Cannot evaluate {run['name']} on this data: {e}")
    st.stop()
if len(ev) == 0:
    st.info("No galaxies to evaluate in this split.")
    st.stop()
if ev.n_excluded:
    st.caption(f"{ev.n_excluded:,} labelled galaxies the model trained on are left out of these scores.")
if split == "train" or include_trained:
    st.warning("These galaxies include ones the model learnt from: the scores flatter it and are no test.",
               icon=":material/warning:")

pa = ev.per_answer()
c1, c2, c3 = st.columns(3)
if ev.scorable:
    c1.metric("RMSE over all 37 answers", f"{ev.rmse():.4f}")
else:
    c1.metric("RMSE over all 37 answers", "too few to score",
              help=f"An RMSE needs at least {evaluation.MIN_SCORED_GALAXIES} galaxies to be a result; the plots "
                   "below show the few there are.")
c2.metric("galaxies", f"{len(ev):,}")
c3.metric("model", str(run["model"]))

if ev.scorable:  # per answer is fewer galaxies still: no scores where the overall one is not
    st.subheader("Per answer")
    st.plotly_chart(figures.per_answer_figure(pa))
    samp_button(pa, f"{run['name']} RMSE per answer", key="ev_samp_answers")
    with st.expander("Per question"):
        per_question = ev.per_question()
        st.dataframe(per_question, hide_index=True,
                     column_config={"rmse": st.column_config.NumberColumn(format="%.4f")})
        samp_button(per_question, f"{run['name']} RMSE per question", key="ev_samp_questions")

st.subheader("True vs predicted")
answer = common.answer_select("Answer", "ev_answer", default="Class1.1", none="all 37 answers")
st.plotly_chart(figures.true_vs_predicted_figure(ev.y_true, ev.y_pred, ev.mask, answer))

# The spread is measured, and its scale fitted, on the labelled galaxies the model never learnt from, whichever
# split the scores above are on: how sure a model is says something only where it could be wrong.
st.subheader("Error against spread")
calibration = ml.spread_calibration(run["path"], cache, ds.fingerprint)
if calibration.scale.report is None:
    st.info(f"No plot of error against spread: {calibration.scale.why}.")
else:
    st.plotly_chart(figures.error_by_spread_figure(calibration.error_bins(answer), calibration.scale.factor),
                    key="ev_spread")
    st.caption(f"{'All 37 answers' if answer is None else answer} of the {len(calibration.rows):,} labelled galaxies "
               f"the model never learnt from, in ten equal-count bins of the raw spread of "
               f"{plusminus.spread_words(calibration.spread.members, calibration.spread.views)}. "
               + plusminus.ranking_text(calibration.ranking(answer)))

st.subheader("Top 5: the volunteers' vs the model's")
column = common.answer_select("Answer", "ev_top_answer", default="Class8.6")
top = ev.top_k(column, 5)
spread = ml.spread_of(run["path"], cache, ds.fingerprint, [*top["actual"]["row"], *top["predicted"]["row"]])
n = len(top["actual"])  # as many as top["predicted"]: the first n spreads are theirs, the next n the others'
st.caption(calibration.meaning())
c1, c2 = st.columns(2)
for k, (col, (kind, title)) in enumerate(zip((c1, c2), (("actual", "highest volunteer fraction"),
                                                        ("predicted", "highest predicted fraction")))):
    with col:
        st.markdown(f"**{title}**")
        t = top[kind]
        shown = plusminus.answer_texts(spread.subset(slice(k * n, (k + 1) * n)), calibration.scale, column,
                                       t["predicted"])
        common.gallery(cache, t["row"], [f"{g} · true {a:.2f} · pred {p}"
                                         for g, a, p in zip(t["GalaxyID"], t["true"], shown)], width=120,
                       samp=f"top 5 {kind} {column}")

st.subheader("Worst predictions")
worst = ev.worst(10)
common.gallery(cache, worst["row"], [f"{g} · RMSE {r:.3f}" for g, r in zip(worst["GalaxyID"], worst["rmse"])],
               width=120, samp="worst predictions")
pick = st.selectbox("Compare volunteers and model for", list(worst["GalaxyID"]), key="ev_worst_pick")
k = ev.index_of(pick)
common.tree_chart(ev.y_true[k], ev.y_pred[k], known=ev.mask[k], key="ev_tree")
