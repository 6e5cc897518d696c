"""Commands that make and score models: ``train``, ``evaluate``, ``benchmark``, ``export``, ``models`` and ``runs``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .common import cache_dir, command, data_folder, emit, refuse_pickle, source_fov


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_train(args: argparse.Namespace) -> int:
    from galaxy_core.models import config, runs
    from galaxy_core.progress import format_duration
    from galaxy_core.training import loop

    pace = {}  # the wall clock at the start and the epochs done since, for the time left

    def report(e: dict) -> None:
        if e["type"] == "start":
            pace.update(t0=time.monotonic(), epochs=e["epochs"], first=None)
            print(f"run {e['run']}: {'resumed, ' if e['resumed'] else ''}{e['epochs']} epochs; follow it on the "
                  f"dashboard's Training page, or stop it with `touch {e['run']}/STOP`", flush=True)
        elif e["type"] == "epoch":
            if not pace.get("first"):  # the pace from the first epoch's own start: not the data's or a teacher's time
                pace.update(first=e["epoch"], t0=time.monotonic() - e["seconds"])
            done_here, left = e["epoch"] - pace["first"] + 1, pace.get("epochs", e["epoch"]) - e["epoch"]
            eta = (time.monotonic() - pace.get("t0", time.monotonic())) / done_here * left
            print(f"epoch {e['epoch']:3d} of {pace.get('epochs', '?')}  train {e['train_rmse']:.4f}  val "
                  f"{e['val_rmse']:.4f}  lr {e['lr']:.2e}  {e['seconds']:.1f}s  {e['images_per_s']:,.0f} img/s"
                  + (f"  {format_duration(eta)} left" if left else ""), flush=True)

    refuse_pickle(*(args.teacher or []))
    if args.resume:
        run = loop.train(config.TrainConfig(), report, resume=True, run_dir=args.resume)
    elif args.config:
        cfg = config.TrainConfig.from_dict(json.loads(Path(args.config).read_text()))
        run = loop.train(cfg, report, run_dir=Path(cfg.out) / cfg.name if cfg.name else None)
    else:
        if not args.data:
            print("train: give a data folder or cache (or --resume RUN)", file=sys.stderr)
            return 2
        model_args = dict(kv.split("=", 1) for kv in args.model_arg)
        cfg = config.config_for(
            args.model, data=data_folder(args.data), model_args={k: _parse_value(v) for k, v in model_args.items()},
            source_fov=args.source_fov, out=args.out, name=args.name, epochs=args.epochs, batch_size=args.batch_size,
            optimizer=args.optimizer, lr=args.lr, lr_floor=args.lr_floor, weight_decay=args.weight_decay,
            scheduler=args.scheduler,
            augment=args.augment, partial=args.partial, tta=args.tta, seed=args.seed, max_train=args.max_train,
            sizes=[int(v) for v in args.sizes.split(",")] if args.sizes else None, device=args.device,
            compile=args.compile or None, compile_mode=args.compile_mode, ema=args.ema,
            teacher=args.teacher or None, unlabelled=args.unlabelled, teacher_weight=args.teacher_weight,
            teacher_tta=args.teacher_tta, memory_gb=args.memory_gb)
        run = loop.train(cfg, report)
    status = runs.read_status(run)
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    human = f"run {run}: {status.get('state')}"
    if summary:
        human += (f"; best validation RMSE {summary['val_rmse']:.4f} (epoch {summary['best_epoch']}), "
                  f"{summary['val_rmse_tta']:.4f} with {summary['tta_views']}-view averaging; "
                  f"{summary['train_seconds']:.0f} s of training on {summary['device']}")
    emit(args, human, {"run": str(run), "state": status.get("state"), **summary})
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from galaxy_core.predict import evaluation

    refuse_pickle(args.run)
    ev = evaluation.evaluate(args.run, data_folder(args.data) if args.data else None, split=args.split, tta=args.tta,
                             device=args.device, include_trained=args.include_trained, source_fov=args.source_fov)
    where = f"{len(ev):,} galaxies ({args.split}, {args.tta} view(s))"
    if ev.n_excluded:
        where += f"; {ev.n_excluded:,} it learnt from left out (--include-trained counts them)"
    if not ev.scorable:  # said instead of a number (null in the JSON), and not an error: nothing went wrong
        emit(args, f"{args.run or 'the default model'}: too few galaxies to score: {where}; at least "
             f"{evaluation.MIN_SCORED_GALAXIES} are needed", ev.summary())
        return 0
    human = f"{args.run or 'the default model'}: RMSE {ev.rmse():.4f} over {where}"
    pa = ev.per_answer()
    if args.per_answer:
        human += "\n" + pa.to_string(index=False, float_format=lambda v: f"{v:.4f}")
    else:
        human += "\n" + ev.per_question().to_string(index=False, columns=["question", "rmse", "n"],
                                                    float_format=lambda v: f"{v:.4f}")
    if args.save:
        ev.save_predictions(args.save)
        human += f"\npredictions written to {args.save}"
    emit(args, human, {**ev.summary(), "per_answer": dict(zip(pa["column"], pa["rmse"].round(6)))})
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    import time

    from galaxy_core.training import benchmark

    out = args.out or f"runs/benchmark-{time.strftime('%Y%m%d-%H%M%S')}"
    names = tuple(args.models.split(",")) if args.models else benchmark.BENCHMARK_MODELS
    table = benchmark.benchmark(data_folder(args.data), out, names, epochs_scale=args.epochs_scale,
                                max_train=args.max_train, device=args.device, source_fov=args.source_fov,
                                unlabelled=args.unlabelled, compile=args.compile)
    fmt = {"val_rmse": "{:.4f}", "val_rmse_tta8": "{:.4f}", "parameters": "{:,}", "train_seconds": "{:.1f}",
           "images_per_s": "{:,.0f}"}
    shown = table.copy()
    for col, f in fmt.items():
        shown[col] = [f.format(v) if v is not None and v == v else "-" for v in table[col]]
    # A Markdown table, ready for a results table (docs/cpu-training.md).
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + " --- |" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    human = f"benchmark on {args.data} ({time.strftime('%Y-%m-%d')}), runs in {out}\n" + "\n".join(lines)
    emit(args, human, {"out": out, "rows": table.to_dict(orient="records")})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from galaxy_core.training import export

    if args.force and not args.replace_default:
        print("export: --force goes with --replace-default", file=sys.stderr)
        return 2
    refuse_pickle(args.run)
    r = export.export_checkpoint(args.run, args.out, half=not args.float32, tta=args.tta, device=args.device)
    human = (f"{args.run} -> {r['checkpoint']} ({r['bytes'] / 1e6:.1f} MB, {r['weights']} weights); validation RMSE "
             f"with {r['tta']} view(s) over {r['n']:,} galaxies: {r['val_rmse_run']:.5f} as trained, "
             f"{r['val_rmse_checkpoint']:.5f} as exported (largest change of an answer {r['max_abs_difference']:.1e})")
    if args.replace_default:
        d = export.replace_default(r["checkpoint"], force=args.force, tta=args.tta, device=args.device)
        r["replace_default"] = d
        human += f"\n{r['checkpoint']} is now the default model ({d['default']})"
        if d["rmse_new"] is not None:
            human += (f"; RMSE {d['rmse_new']:.4f} against the old default's {d['rmse_old']:.4f} on the "
                      f"{d['n']:,} galaxies neither learnt from")
        if d["refusal_overridden"]:
            human += f"\n  forced although {d['refusal_overridden']}"
        if d["kept"]:
            human += f"\n  the old default is kept in {d['kept']}"
    else:
        human += f"\nthe default model is unchanged; to use this one: --model {r['checkpoint']}"
    emit(args, human, r)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import torch

    from galaxy_core.models import registry

    rows = []
    for name in registry.list_models():
        with torch.device("meta"):  # shapes only: no memory or time spent initialising weights
            m = registry.build_model(name)
        rows.append({"name": name, "parameters": registry.count_parameters(m), "input_size": m.config["input_size"],
                     "output": m.config["output"]})
    human = "\n".join(f"{r['name']:12s} {r['parameters']:>12,} parameters  {r['input_size']} px  {r['output']}"
                      for r in rows)
    emit(args, human, {"models": rows})
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from galaxy_core.models import runs

    found = runs.list_runs(args.root)

    def line(name, model, status, rmse, error) -> str:
        return f"{name:32s} {model:10s} {status:9s} {rmse:>8s}" + (f"  {error}" if error else "")

    rows = [line(r["name"], r["model"] or "-", r["status"],
                 "-" if r["summary"].get("val_rmse") is None else f"{r['summary']['val_rmse']:.4f}", r["error"])
            for r in found]
    header = line("run", "model", "status", "val RMSE", "error" if any(r["error"] for r in found) else None)
    human = "\n".join([header, *rows]) if rows else f"no runs in {args.root}"
    emit(args, human, {"runs": [{**r, "path": str(r["path"])} for r in found]})
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the command line's ``sub``-parsers."""

    sp = command(sub, "train", cmd_train, "train a model; writes a run folder with metrics.csv and checkpoints")
    sp.add_argument("data", nargs="?", help="a prepared cache or a data folder")
    cache_dir(sp)
    # Not argparse choices: listing the registry imports PyTorch, which --help should not wait for.
    sp.add_argument("--model", default="galaxynet", help="a registered model (default galaxynet; the `models` "
                                                         "command lists them)")
    sp.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="constructor argument, e.g. --model-arg width=32 --model-arg output=tree")
    source_fov(sp)
    sp.add_argument("--out", default=None, help="parent folder of run folders (default runs/)")
    sp.add_argument("--name", default=None, help="run folder name (default <model>-<time>)")
    sp.add_argument("--epochs", type=int, help="passes over the training galaxies (default: the model's recipe)")
    sp.add_argument("--batch-size", type=int, help="galaxies per step (default: the model's recipe)")
    sp.add_argument("--optimizer", choices=["adam", "adamw"], help="default: the model's recipe")
    sp.add_argument("--lr", type=float, help="peak learning rate (default: the model's recipe)")
    sp.add_argument("--weight-decay", type=float, help="default: the model's recipe")
    sp.add_argument("--scheduler", choices=["plateau", "onecycle", "cosine", "constant"],
                    help="learning-rate schedule (default: the model's recipe)")
    sp.add_argument("--lr-floor", type=float, help="onecycle and cosine end at this fraction of --lr (default 0)")
    sp.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                    help="random rotations, flips, zoom and shifts on the device")
    sp.add_argument("--partial", action=argparse.BooleanOptionalAction, default=None,
                    help="also train on partially labelled galaxies (masked loss)")
    sp.add_argument("--tta", type=int, help="views averaged for the final validation figure (1-8)")
    sp.add_argument("--seed", type=int, help="seed of the weights, batches and augmentation (default 0)")
    sp.add_argument("--max-train", type=int, help="train on at most this many galaxies")
    sp.add_argument("--sizes", metavar="PX,PX,...", help="progressive resizing: input sizes of equal stages of the "
                                                       "epochs, ending at the model's, e.g. 56,64,72,80")
    sp.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    sp.add_argument("--compile", action="store_true", help="torch.compile the model")
    sp.add_argument("--compile-mode", choices=["default", "reduce-overhead", "max-autotune"],
                    help="torch.compile mode (reduce-overhead uses CUDA graphs)")
    sp.add_argument("--ema", type=float, help="decay of a moving average of the weights, e.g. 0.999 (0 = off)")
    sp.add_argument("--memory-gb", type=float, help="most GiB of training images held on the device; more are read "
                                                    "from the cache batch by batch (default: half the free GPU "
                                                    "memory, 4 GiB on a CPU)")
    sp.add_argument("--teacher", action="append", metavar="MODEL",
                    help="run folder, or exported checkpoint with its galaxies.json, whose predictions fill the "
                         "answers no volunteer gave (repeat for an ensemble)")
    sp.add_argument("--unlabelled", metavar="DATA", help="cache or folder of unlabelled galaxies for the teacher "
                                                         "to label (same field and size as the data's cache)")
    sp.add_argument("--teacher-weight", type=float, help="weight of a teacher's target in the loss (default 1)")
    sp.add_argument("--teacher-tta", type=int, help="views the teacher averages (default 8)")
    sp.add_argument("--resume", metavar="RUN", help="continue a killed or stopped run from its last epoch")
    sp.add_argument("--config", metavar="JSON", help="take every setting from a TrainConfig JSON file")

    sp = command(sub, "evaluate", cmd_evaluate,
                 "RMSE of a run or checkpoint overall, per question or per answer, on galaxies it never learnt from")
    sp.add_argument("run", nargs="?", default=None,
                    help="run or checkpoint folder (default: the shipped checkpoint)")
    sp.add_argument("--data", default=None,
                    help="labelled data folder or cache (default: the cache the model was trained on, if it is on "
                         "this machine; the shipped checkpoint's is not)")
    source_fov(sp)
    cache_dir(sp)
    sp.add_argument("--split", default="val", choices=["val", "train", "labelled"],
                    help="val (default): the galaxies it never learnt from (a run's own validation split); train: "
                         "those it learnt from; labelled: all labelled galaxies but those it learnt from")
    sp.add_argument("--include-trained", action="store_true",
                    help="with --split labelled: count the galaxies it learnt from too (not a fair test)")
    sp.add_argument("--tta", type=int, default=1, help="dihedral views to average (1-8)")
    sp.add_argument("--per-answer", action="store_true", help="list all 37 answers")
    sp.add_argument("--save", default=None, help="write the predictions to this CSV")
    sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")

    sp = command(sub, "benchmark", cmd_benchmark,
                 "train mean, seed-cnn, resnet18 and galaxynet on one split and print one table")
    sp.add_argument("data", help="a prepared cache or a data folder")
    source_fov(sp)
    cache_dir(sp)
    sp.add_argument("--models", default=None,
                    help="comma-separated model names (default mean,seed-cnn,resnet18,galaxynet)")
    sp.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every recipe's epochs (quick looks)")
    sp.add_argument("--max-train", type=int, default=None, help="cap the training galaxies (quick looks)")
    sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    sp.add_argument("--out", default=None, help="folder for the runs (default runs/benchmark-<time>)")
    sp.add_argument("--unlabelled", default=None, metavar="DATA",
                    help="unlabelled galaxies (cache or folder): adds galaxynet distilled from the galaxynet run")
    sp.add_argument("--compile", action="store_true", help="torch.compile every network")

    sp = command(sub, "export", cmd_export,
                 "write a run's best model as a checkpoint folder (float16 weights, checked on the run's validation "
                 "split); --replace-default makes it the default model")
    sp.add_argument("run", help="run folder")
    sp.add_argument("--out", default=None, help="checkpoint folder (default checkpoints/<run name>)")
    sp.add_argument("--replace-default", action="store_true",
                    help="also make it checkpoints/default, the model used when none is named, keeping the old one "
                         "as checkpoints/default-replaced-<time>; refused for a model that is worse than the old "
                         "one or learnt from the synthetic demo")
    sp.add_argument("--force", action="store_true", help="with --replace-default: replace it even so")
    sp.add_argument("--float32", action="store_true", help="keep float32 weights (twice the size)")
    sp.add_argument("--tta", type=int, default=8, help="views averaged for the check (1-8)")
    sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")

    command(sub, "models", cmd_models, "the registered models")

    sp = command(sub, "runs", cmd_runs, "past training runs, newest first")
    sp.add_argument("--root", default="runs", help="folder holding the run folders (default runs/)")
