"""Training: launch a run in the background, watch its learning curves, stop it, compare past runs."""

import streamlit as st

from galaxy_core import hardware
from galaxy_core.models import config, launcher, registry, runs
from galaxy_core.show import access, figures
from galaxy_core.training import distill, estimate, export, loop
from pages import _common as common
from pages import _models as ml

common.require_app(__file__)

ds = common.dataset()
root = common.runs_root()
# This data as a run may name it: its cache, its folder, the cache's source (a run started as `train data/`).
here = (ds.cache.path, ds.folder, ds.cache.meta.get("source"))
st.title("Training")

# ----------------------------------------------------------------------------------------------------- settings
st.subheader("New run")
c1, c2, c3, _ = st.columns(4)
names = registry.list_models()
device = c2.selectbox("Device", launcher.device_choices(), key="tr_device", help="auto takes the GPU when there is one")
gpus = launcher.gpus_for(device)
processes = c3.number_input(
    "Processes", 1, launcher.max_processes(device), 1, key="tr_processes",
    help="Train with this many processes on this machine (torchrun and DistributedDataParallel): each takes its "
         "share of every batch, " + ("one GPU each." if gpus else "and the CPU threads are split between them."))
# The default is the project's own network, with the recipe for this machine (config.CPU_RECIPES on a CPU).
name = c1.selectbox("Model", names, index=names.index("galaxynet") if "galaxynet" in names else 0, key="tr_model")
# Each model's settings start from its recipe for the chosen device and are remembered per model and device.
recipe = config.config_for(name, device=device)
note = estimate.recipe_caption(name, device, next(iter(export.shipped_checkpoints()), None))
if note:
    st.caption(note)
kind = "cpu" if hardware.pick_device(device).type == "cpu" else "gpu"
closed_form = ml.is_closed_form(name)
if closed_form:
    st.caption(f"`{name}` is fitted in closed form (each answer's mean over the training galaxies): it has no "
               "epochs, learning rate, batch or augmentation to set.")
    epochs, batch, lr, scheduler, max_train, augment, ema, chosen_teachers, unlabelled = (
        1, recipe.batch_size, recipe.lr, recipe.scheduler, 0, False, 0.0, [], "")
else:
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 1, 1000, recipe.epochs, key=f"tr_epochs_{name}_{kind}")
    batch = c2.number_input("Batch size", 2, 4096, recipe.batch_size, key=f"tr_batch_{name}_{kind}")
    lr = c3.number_input("Learning rate", 1e-6, 1.0, recipe.lr, 1e-4, format="%.1e", key=f"tr_lr_{name}_{kind}")
    schedulers = list(loop.SCHEDULES)
    scheduler = c4.selectbox("Scheduler", schedulers, schedulers.index(recipe.scheduler),
                             key=f"tr_sched_{name}_{kind}")
    max_train = c1.number_input("Training galaxies (0 = all)", 0, 10_000_000, 0, key="tr_max_train")
    augment = c2.checkbox("Augmentation", recipe.augment, key=f"tr_augment_{name}_{kind}",
                          help="random rotations, flips, zoom and shifts of every training image")
    with st.expander("Weight averaging and distillation"):
        a1, a2 = st.columns([1, 2])
        ema = a1.number_input("Weight average decay (0 = off)", 0.0, 0.99999, float(recipe.ema), 0.001,
                              format="%.4f", key=f"tr_ema_{name}_{kind}",
                              help="validate and save a moving average of the weights; 0.999 averages about the "
                                   "last 1,000 steps")
        chosen_teachers = a2.multiselect(
            "Teachers", distill.possible_teachers(root), key="tr_teachers",
            help="finished runs on the same training/validation split; their averaged predictions fill in the "
                 "answers no volunteer gave and label this data's unlabelled galaxies")
        unlabelled = st.text_input("More unlabelled galaxies for the teachers to label (folder or cache, optional)",
                                   key="tr_unlabelled").strip()
try:
    unlabelled = str(access.allowed_folder(unlabelled)) if unlabelled else None
except PermissionError as e:
    st.error(f"More unlabelled galaxies: {e}")
    st.stop()
cfg = config.config_for(name, data=str(ds.cache.path), out=str(root), epochs=int(epochs), batch_size=int(batch),
                        lr=float(lr), scheduler=scheduler, augment=augment, device=device,
                        max_train=int(max_train) or None, ema=float(ema),
                        teacher=[str(root / t) for t in chosen_teachers] or None,
                        unlabelled=unlabelled)
# Data a run cannot learn from (unlabelled, no validation galaxies), or a run already training on it (from this page,
# another session or a terminal), is said before Start, which stays off.
refusal = launcher.why_not_trainable(ds.cache, cfg)
busy = runs.active_run(root, *here)
if refusal is None and busy is not None:
    refusal = (f"`{busy.name}` is training on this data (followed below, wherever it was started); one run at a "
               f"time on one data set: stop it or wait for it to end")
if refusal:
    st.warning(f"Training cannot start: {refusal}.")
elif not closed_form:
    try:
        probe = ml.duration_probe(cfg, ds.fingerprint)
    except (RuntimeError, ValueError) as e:
        st.warning(f"Cannot time these settings: {e}")
    else:
        st.caption(estimate.duration_caption(probe, int(epochs), bool(chosen_teachers), processes))
if st.button("Start training", type="primary", key="tr_start", disabled=refusal is not None, help=refusal):
    try:
        st.session_state["tr_run"] = str(launcher.launch(cfg, int(processes)))
    except (RuntimeError, FileExistsError, ValueError) as e:
        st.error(f"Not started: {e}")
st.caption(f"Runs are written to `{root}` and keep going if you close or reload this page.")

# ------------------------------------------------------------------------------------------- live view and runs
baseline = ml.mean_baseline(ds.cache, ds.fingerprint)


def live_run(run: dict) -> None:
    status = runs.read_status(run["path"])
    state, rows = run["status"], runs.read_metrics(run["path"])
    st.subheader(f"Run {run['name']}: {state}")
    if state in ("starting", "running"):
        done, text = runs.progress(status)
        st.progress(done, text=text)
        if st.button("Stop", key="tr_stop", help="Stops after the current step; the last epoch is kept."):
            launcher.stop(run["path"])
            st.toast("Asked the run to stop after its current step.")
    elif state in ("failed", "died"):
        st.error(f"The run {state}: {run['error'] or 'see train.log in its folder'}")
    if rows:
        st.plotly_chart(figures.curves_figure([("training", rows, "train_rmse"), ("validation", rows, "val_rmse")],
                                              baseline, 320), key="tr_live_curve")
    else:
        st.caption("The curves appear when the first epoch ends.")


def runs_view() -> None:
    """The watched run and every run, from one reading of the run folders, so that all of it shows one state."""
    found = runs.list_runs(root)
    by_path = {str(r["path"]): r for r in found}
    watched = runs.active_run(root, *here) or st.session_state.get("tr_run")
    if watched is not None and str(watched) in by_path:
        live_run(by_path[str(watched)])
    st.subheader("Runs")
    if not found:
        st.caption(f"No runs yet in `{root}`.")
        return
    st.dataframe(runs.runs_table(found), hide_index=True,
                 column_config={"val RMSE": st.column_config.NumberColumn(format="%.4f"),
                                "train s": st.column_config.NumberColumn(format="%.0f")})
    failed = [r for r in found if r["error"]]
    if failed:  # a table cell cuts a long error short: here it is whole
        with st.expander(f"Why {len(failed)} run{'s' if len(failed) > 1 else ''} failed"):
            for r in failed:
                st.markdown(f"**{r['name']}** ({r['status']}): {r['error']}")
    # Only runs on this data: their curves and this data's mean baseline are measured on the same galaxies.
    ours = [r for r in found if runs.same_data(r, *here)]
    others = len(found) - len(ours)
    # No key: when a new run appears the choice starts again from the newest five.
    chosen = st.multiselect("Validation curves to overlay (runs on this data)", [r["name"] for r in ours],
                            default=[r["name"] for r in ours[:5]])
    if others:
        st.caption(f"{others} run{'s' if others > 1 else ''} on other data left out of the overlay (their validation "
                   f"galaxies are not this data's); choose that data in the sidebar to compare them.")
    series = runs.validation_curves(ours, chosen)
    if series:
        st.plotly_chart(figures.curves_figure(series, baseline, 360), key="tr_overlay_curve")
    else:
        st.caption("No finished epoch to draw yet.")


# While a run trains, the whole view (its progress, the table, the overlay) refreshes every 2 s; when the last run
# ends, one full rerun stops the refreshing.
training_now = runs.active_run(root) is not None


@st.fragment(run_every=2 if training_now else None)
def refreshing() -> None:
    runs_view()
    if training_now and runs.active_run(root) is None:
        st.rerun()


refreshing()
