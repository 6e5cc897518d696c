"""Training: launch a run in the background, watch its learning curves, stop it, compare past runs."""

import dataclasses
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from galaxy_core import models, training
from pages import _common as common

common.require_app(__file__)

ds = common.dataset()
root = common.runs_root()
st.title("Training")

# ----------------------------------------------------------------------------------------------------- settings
st.subheader("New run")
c1, c2, c3, c4 = st.columns(4)
names = models.list_models()
devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
device = c2.selectbox("Device", devices, key="tr_device", help="auto takes the GPU when there is one")
# The default is the project's own network, with the recipe for this machine (training.CPU_RECIPES on a CPU).
name = c1.selectbox("Model", names, index=names.index("galaxynet") if "galaxynet" in names else 0, key="tr_model")
# Each model's settings start from its recipe for the chosen device and are remembered per model and device.
recipe = dataclasses.asdict(training.config_for(name, device=device))
on_cpu = training.pick_device(device).type == "cpu"
if name in training.CPU_RECIPES:
    args = ", ".join(f"{k} {v}" for k, v in recipe["model_args"].items()) or "default size"
    st.caption(f"{name}: the {'CPU' if on_cpu else 'GPU'} recipe ({args}). "
               + ("It is the recipe of the shipped checkpoint: 41 minutes on 2 cores for the 10,704 training "
                  "galaxies of the 96 px pack." if on_cpu else ""))
c1, c2, c3, c4 = st.columns(4)
kind = "cpu" if on_cpu else "gpu"
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
                          help="validate and save a moving average of the weights; 0.999 averages about the last "
                               "1,000 steps")
    teachers = [r for r in training.list_runs(root) if r["status"] == "finished" and r["model"] != "mean"]
    chosen_teachers = a2.multiselect(
        "Teachers", [r["name"] for r in teachers], key="tr_teachers",
        help="finished runs on the same training/validation split; their averaged predictions fill in the answers "
             "no volunteer gave and label this data's unlabelled galaxies")
    unlabelled = st.text_input("More unlabelled galaxies for the teachers to label (folder or cache, optional)",
                               key="tr_unlabelled").strip()
if st.button("Start training", type="primary", key="tr_start"):
    cfg = training.config_for(name, data=str(ds.cache.path), out=str(root), epochs=int(epochs),
                              batch_size=int(batch), lr=float(lr), scheduler=scheduler, augment=augment,
                              device=device, max_train=int(max_train) or None, ema=float(ema),
                              teacher=[str(root / t) for t in chosen_teachers] or None,
                              unlabelled=str(common.absolute_path(unlabelled)) if unlabelled else None)
    try:
        st.session_state["tr_run"] = str(training.launch(cfg))
    except (RuntimeError, FileExistsError) as e:
        st.error(f"Not started: {e}")
st.caption(f"Runs are written to `{root}` and keep going if you close or reload this page.")

# --------------------------------------------------------------------------------------------------- live view
active = training.active_run(root, str(ds.cache.path)) or st.session_state.get("tr_run")


@st.fragment(run_every=2 if active and training.read_status(active).get("state") in ("starting", "running")
             else None)
def live(run: str) -> None:
    status = training.read_status(run)
    state = status.get("state", "unknown")
    rows = training.read_metrics(run)
    st.subheader(f"Run {Path(run).name}: {state}")
    if state in ("starting", "running"):
        epoch, epochs_total = status.get("epoch", 0), status.get("epochs") or 1
        step, steps = status.get("step", 0), status.get("steps") or 1
        st.progress(min((epoch + step / steps) / epochs_total, 1.0),
                    text=f"epoch {min(epoch + 1, epochs_total)} of {epochs_total}, step {step:,} of {steps:,}")
        if st.button("Stop", key="tr_stop", help="Stops after the current step; the last epoch is kept."):
            training.stop(run)
            st.toast("Asked the run to stop after its current step.")
    elif state in ("failed", "died"):
        st.error(f"The run {state}: {status.get('error', 'see train.log in its folder')}")
    if rows:
        m = pd.DataFrame(rows)
        fig = go.Figure([go.Scatter(x=m["epoch"], y=m[c], name=n, mode="lines+markers")
                         for c, n in (("train_rmse", "training"), ("val_rmse", "validation"))])
        fig.update_layout(height=320, xaxis_title="epoch", yaxis_title="RMSE", margin=common.TIGHT)
        st.plotly_chart(fig, key="tr_live_curve")
    else:
        st.caption("The curves appear when the first epoch ends.")
    if state not in ("starting", "running") and st.session_state.get("tr_watching") == run:
        st.session_state.pop("tr_watching")
        st.rerun()  # the run ended: refresh the whole page (run list, no more auto-refresh)
    if state in ("starting", "running"):
        st.session_state["tr_watching"] = run


if active:
    live(active)

# ---------------------------------------------------------------------------------------------------- past runs
st.subheader("Runs")
runs = training.list_runs(root)
if not runs:
    st.caption(f"No runs yet in `{root}`.")
    st.stop()
table = pd.DataFrame([{"run": r["name"], "model": r["model"], "status": r["status"],
                       "val RMSE": r["summary"].get("val_rmse"), "epochs": r["summary"].get("epochs"),
                       "train s": r["summary"].get("train_seconds"), "data": r["data"]} for r in runs])
st.dataframe(table, hide_index=True, column_config={"val RMSE": st.column_config.NumberColumn(format="%.4f"),
                                                    "train s": st.column_config.NumberColumn(format="%.0f")})
# No key: when a new run appears the choice starts again from the newest five.
chosen = st.multiselect("Validation curves to overlay", [r["name"] for r in runs],
                        default=[r["name"] for r in runs[:5]])
fig = go.Figure()
for r in runs:
    m = training.read_metrics(r["path"]) if r["name"] in chosen else []
    if m:
        fig.add_trace(go.Scatter(x=[x["epoch"] for x in m], y=[x["val_rmse"] for x in m], name=r["name"],
                                 mode="lines+markers"))
fig.update_layout(height=360, xaxis_title="epoch", yaxis_title="validation RMSE", margin=common.TIGHT)
st.plotly_chart(fig, key="tr_overlay_curve")
