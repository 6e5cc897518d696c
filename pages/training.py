"""Training: launch a run in the background, watch its learning curves, stop it, compare past runs."""

import dataclasses
import math
import os
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from galaxy_core import config, models, runs, views
from pages import _common as common
from pages import _models as ml

common.require_app(__file__)

ds = common.dataset()
root = common.runs_root()
st.title("Training")

# ----------------------------------------------------------------------------------------------------- settings
st.subheader("New run")
c1, c2, c3, _ = st.columns(4)
names = models.list_models()
devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
device = c2.selectbox("Device", devices, key="tr_device", help="auto takes the GPU when there is one")
gpus = torch.cuda.device_count() if views.pick_device(device).type == "cuda" else 0
processes = c3.number_input(
    "Processes", 1, gpus or os.cpu_count() or 1, 1, key="tr_processes",
    help="Train with this many processes on this machine (torchrun and DistributedDataParallel): each takes its "
         "share of every batch, " + ("one GPU each." if gpus else "and the CPU threads are split between them."))
# The default is the project's own network, with the recipe for this machine (config.CPU_RECIPES on a CPU).
name = c1.selectbox("Model", names, index=names.index("galaxynet") if "galaxynet" in names else 0, key="tr_model")
# Each model's settings start from its recipe for the chosen device and are remembered per model and device.
recipe = dataclasses.asdict(config.config_for(name, device=device))
on_cpu = views.pick_device(device).type == "cpu"
if name in config.CPU_RECIPES:
    args = ", ".join(f"{k} {v}" for k, v in recipe["model_args"].items()) or "default size"
    shipped = next(iter(ml.shipped_checkpoints()), None)
    same = shipped is not None and all(shipped["train_config"].get(k) == recipe[k] for k in (
        "model", "model_args", "epochs", "batch_size", "lr", "weight_decay", "lr_floor", "ema"))
    note = ""
    if same and shipped["summary"].get("wall_seconds"):
        trained = shipped["train_config"]
        note = (f" It is the recipe of the shipped checkpoint `{shipped['name']}`, trained in "
                f"{ml.duration_text(shipped['summary']['wall_seconds'])} "
                f"({shipped['summary'].get('device', 'cpu')}) on `{Path(trained.get('data', '?')).name}`.")
    st.caption(f"{name}: the {'CPU' if on_cpu else 'GPU'} recipe ({args}).{note}")
kind = "cpu" if on_cpu else "gpu"
closed_form = ml.is_closed_form(name)
if closed_form:
    st.caption(f"`{name}` is fitted in closed form (each answer's mean over the training galaxies): it has no "
               "epochs, learning rate, batch or augmentation to set.")
    epochs, batch, lr, scheduler, max_train, augment, ema, chosen_teachers, unlabelled = (
        1, recipe["batch_size"], recipe["lr"], recipe["scheduler"], 0, False, 0.0, [], "")
else:
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 1, 1000, recipe["epochs"], key=f"tr_epochs_{name}_{kind}")
    batch = c2.number_input("Batch size", 2, 4096, recipe["batch_size"], key=f"tr_batch_{name}_{kind}")
    lr = c3.number_input("Learning rate", 1e-6, 1.0, recipe["lr"], 1e-4, format="%.1e", key=f"tr_lr_{name}_{kind}")
    schedulers = ["plateau", "onecycle", "cosine", "constant"]
    scheduler = c4.selectbox("Scheduler", schedulers, schedulers.index(recipe["scheduler"]),
                             key=f"tr_sched_{name}_{kind}")
    max_train = c1.number_input("Training galaxies (0 = all)", 0, 10_000_000, 0, key="tr_max_train")
    augment = c2.checkbox("Augmentation", recipe["augment"], key=f"tr_augment_{name}_{kind}",
                          help="random rotations, flips, zoom and shifts of every training image")
    with st.expander("Weight averaging and distillation"):
        a1, a2 = st.columns([1, 2])
        ema = a1.number_input("Weight average decay (0 = off)", 0.0, 0.99999, float(recipe["ema"]), 0.001,
                              format="%.4f", key=f"tr_ema_{name}_{kind}",
                              help="validate and save a moving average of the weights; 0.999 averages about the "
                                   "last 1,000 steps")
        teachers = [r for r in runs.list_runs(root) if r["status"] == "finished" and r["model"] != "mean"]
        chosen_teachers = a2.multiselect(
            "Teachers", [r["name"] for r in teachers], key="tr_teachers",
            help="finished runs on the same training/validation split; their averaged predictions fill in the "
                 "answers no volunteer gave and label this data's unlabelled galaxies")
        unlabelled = st.text_input("More unlabelled galaxies for the teachers to label (folder or cache, optional)",
                                   key="tr_unlabelled").strip()
try:
    unlabelled = str(common.allowed_folder(unlabelled)) if unlabelled else None
except PermissionError as e:
    st.error(f"More unlabelled galaxies: {e}")
    st.stop()
cfg = config.config_for(name, data=str(ds.cache.path), out=str(root), epochs=int(epochs), batch_size=int(batch),
                        lr=float(lr), scheduler=scheduler, augment=augment, device=device,
                        max_train=int(max_train) or None, ema=float(ema),
                        teacher=[str(root / t) for t in chosen_teachers] or None,
                        unlabelled=unlabelled)
if not closed_form:
    try:
        probe = ml.duration_probe(cfg, ds.fingerprint)
    except (RuntimeError, ValueError) as e:
        st.warning(f"Cannot time these settings: {e}")
    else:
        total = int(epochs) * probe["epoch_seconds"] + probe["final_seconds"]
        st.caption(f"Estimated duration on this machine ({probe['device']}): **{ml.duration_text(total)}** "
                   f"for {int(epochs)} epoch{'s' if int(epochs) != 1 else ''} of {probe['n_train']:,} galaxies"
                   + (" (and the unlabelled ones the teachers label)" if chosen_teachers else "")
                   + f", at {probe['images_per_s']:,.0f} images/s, "
                   + (f"the speed at which {probe['measured_by']} trained with these settings on a machine like "
                      f"this one ({probe['machine']})"
                      if probe["measured_by"] else f"timed over a few training steps here ({probe['machine']})")
                   + (" while another run was training, so too long" if probe["busy"] else "")
                   + (" (for one process)" if processes > 1 else "") + ".")
if st.button("Start training", type="primary", key="tr_start"):
    try:
        st.session_state["tr_run"] = str(runs.launch(cfg, int(processes)))
    except (RuntimeError, FileExistsError, ValueError) as e:
        st.error(f"Not started: {e}")
st.caption(f"Runs are written to `{root}` and keep going if you close or reload this page.")

# ------------------------------------------------------------------------------------------- live view and runs
baseline = ml.mean_baseline(ds.cache, ds.fingerprint)


def curves_figure(series: list[tuple[str, list[dict], str]], height: int) -> go.Figure:
    """Learning curves, with the mean baseline's validation RMSE as the line a network must get below."""
    fig = go.Figure([go.Scatter(x=[r["epoch"] for r in rows], y=[r[col] for r in rows], name=name,
                                mode="lines+markers") for name, rows, col in series])
    if math.isfinite(baseline):
        fig.add_hline(y=baseline, line_dash="dot", line_color="grey",
                      annotation_text=f"mean baseline {baseline:.4f}", annotation_position="top right")
    fig.update_layout(height=height, xaxis_title="epoch", yaxis_title="RMSE", margin=common.TIGHT)
    return fig


def live_run(run: dict) -> None:
    status = runs.read_status(run["path"])
    state, rows = run["status"], runs.read_metrics(run["path"])
    st.subheader(f"Run {run['name']}: {state}")
    if state in ("starting", "running"):
        epoch, epochs_total = status.get("epoch", 0), status.get("epochs") or 1
        step, steps = status.get("step", 0), status.get("steps") or 1
        st.progress(min((epoch + step / steps) / epochs_total, 1.0),
                    text=f"epoch {min(epoch + 1, epochs_total)} of {epochs_total}, step {step:,} of {steps:,}")
        if st.button("Stop", key="tr_stop", help="Stops after the current step; the last epoch is kept."):
            runs.stop(run["path"])
            st.toast("Asked the run to stop after its current step.")
    elif state in ("failed", "died"):
        st.error(f"The run {state}: {run['error'] or 'see train.log in its folder'}")
    if rows:
        st.plotly_chart(curves_figure([("training", rows, "train_rmse"), ("validation", rows, "val_rmse")], 320),
                        key="tr_live_curve")
    else:
        st.caption("The curves appear when the first epoch ends.")


def runs_view() -> None:
    """The watched run and every run, from one reading of the run folders, so that all of it shows one state."""
    found = runs.list_runs(root)
    by_path = {str(r["path"]): r for r in found}
    watched = runs.active_run(root, str(ds.cache.path)) or st.session_state.get("tr_run")
    if watched is not None and str(watched) in by_path:
        live_run(by_path[str(watched)])
    st.subheader("Runs")
    if not found:
        st.caption(f"No runs yet in `{root}`.")
        return
    table = pd.DataFrame([{"run": r["name"], "model": r["model"], "status": r["status"],
                           "val RMSE": r["summary"].get("val_rmse"), "epochs": r["summary"].get("epochs"),
                           "train s": r["summary"].get("train_seconds"), "data": r["data"], "error": r["error"]}
                          for r in found])
    st.dataframe(table, hide_index=True,
                 column_config={"val RMSE": st.column_config.NumberColumn(format="%.4f"),
                                "train s": st.column_config.NumberColumn(format="%.0f")})
    # No key: when a new run appears the choice starts again from the newest five.
    chosen = st.multiselect("Validation curves to overlay", [r["name"] for r in found],
                            default=[r["name"] for r in found[:5]])
    series = [(r["name"], m, "val_rmse") for r in found if r["name"] in chosen
              for m in [runs.read_metrics(r["path"])] if m]
    if series:
        st.plotly_chart(curves_figure(series, 360), key="tr_overlay_curve")
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
