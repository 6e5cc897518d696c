"""The command line: ``python -m galaxy_core <command>``, a thin layer over the package's functions.

Every command prints a short human summary; with ``--json`` it also prints one JSON object as its last line, for
scripts (``python -m galaxy_core evaluate runs/x --json | tail -1``).

At about 760 lines this is over the package's 500-line mark: fifteen commands, each a few lines over the package
and its options with their help, which read best beside each other (issue 27 asks for a split by job).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import catalog, data, demo, explore, images, merger_calibration, merger_fraction, mergers, settings
from .files import DiskFull, TextProgress, atomic_write_text, format_bytes
from .merger_fraction import MERGER_COLUMN


def _main_process() -> bool:
    """False in the processes ``torchrun`` starts beside rank 0, which print nothing but their errors."""
    return int(os.environ.get("RANK", "0")) == 0


def _emit(args: argparse.Namespace, human: str, obj: dict[str, Any]) -> None:
    if not _main_process():
        return
    print(human)
    if args.json:
        print(json.dumps(obj, default=str))


def _data(path: str) -> str:
    """A data folder or cache named on the command line; the project's ``data/`` with nothing in it (a fresh
    clone's) stands for the built-in synthetic demo in ``data/demo``, made on first use, as in the dashboard."""
    if not demo.stands_for_demo(path):
        return path
    if _main_process():
        print(f"note: {path} holds no images yet, so the built-in synthetic demo in {demo.DEFAULT_ROOT} is used (put "
              f"your data in {path} in the Kaggle layout, or name another folder)", file=sys.stderr)
    return str(demo.ensure_demo_dataset(progress=TextProgress("making the demo") if _main_process() else None))


def _refuse_pickle(*paths: str | None) -> None:
    """Refuse a pickled checkpoint given as a model (``models.refuse_pickle``: unpickling runs the file's code)
    before anything looks inside it; None (the default model) passes."""
    from . import models

    for path in paths:
        if path is not None:
            models.refuse_pickle(path)


def cmd_summary(args: argparse.Namespace) -> int:
    s = explore.summarize(_data(args.data), args.source_fov, args.workers, args.frame_arcsec)
    tc = s["tree_check"]
    lines = [f"{s['root']}: {s['n_images']:,} images ({s['n_full']:,} fully labelled, {s['n_partial']:,} partially "
             f"labelled, {s['n_unlabelled']:,} unlabelled)",
             f"  sizes: {', '.join(f'{k} x{v:,}' for k, v in list(s['image_sizes'].items())[:4])}; "
             f"{format_bytes(s['disk_bytes'])} on disk",
             f"  in memory: {s['memory']['uint8_mib']:,.0f} MiB as uint8, {s['memory']['float32_mib']:,.0f} MiB as "
             f"float32",
             f"  decision tree: {'consistent' if tc['consistent'] else 'VIOLATED'} (worst |sum - parent| "
             f"{max(tc['max_abs_violation'].values(), default=0):.2g})"]
    lines += [f"  unreadable: {u['GalaxyID']}: {u['reason']}" for u in s["unreadable"][:10]]
    lines += [f"  note: {p}" for p in s["problems"]]
    _emit(args, "\n".join(lines), s)
    return 0


def _shard(text: str) -> tuple[int, int]:
    """``--shard 0/4`` -> (0, 4)."""
    try:
        i, k = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/K, such as 0/4 for the first of 4 shards, got {text!r}") \
            from None
    return i, k


def cmd_prepare(args: argparse.Namespace) -> int:
    settings = dict(fov=args.fov, size=args.size, source_fov=args.source_fov, val_fraction=args.val_fraction,
                    seed=args.seed, frame_arcsec=args.frame_arcsec)
    if args.merge is not None:
        cache = data.merge_shards(_data(args.data), args.merge, args.out, **settings)
    else:
        cache = data.prepare(_data(args.data), args.out, workers=args.workers, progress=TextProgress("prepare"),
                             force=args.force, shard=args.shard, **settings)
    m = cache.meta
    human = (f"cache {cache.path}: {m['n']:,} galaxies at {m['size']} px, field {m['fov']:.3f} of the 424 px frame "
             f"({m['n_train']:,} train, {m['n_val']:,} validation, {m['n_unlabelled']:,} unlabelled) in "
             f"{m['seconds']:.1f} s")
    for s in m["skipped"][:20]:
        human += f"\n  skipped {s['GalaxyID']} ({s['path']}): {s['reason']}"
    for note in m["problems"][:10]:  # e.g. a FITS galaxy missing a band file, or images without a label row
        human += f"\n  note: {note}"
    _emit(args, human, {"cache": str(cache.path), **{k: m[k] for k in ("n", "n_train", "n_val", "n_unlabelled",
                                                                        "size", "fov", "seconds")},
                        "skipped": len(m["skipped"])})
    return 0


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_train(args: argparse.Namespace) -> int:
    from . import config, runs, training

    def report(e: dict) -> None:
        if e["type"] == "epoch":
            print(f"epoch {e['epoch']:3d}  train {e['train_rmse']:.4f}  val {e['val_rmse']:.4f}  lr {e['lr']:.2e}  "
                  f"{e['seconds']:.1f}s  {e['images_per_s']:,.0f} img/s", flush=True)

    _refuse_pickle(*(args.teacher or []))
    if args.resume:
        run = training.train(config.TrainConfig(), report, resume=True, run_dir=args.resume)
    elif args.config:
        cfg = config.TrainConfig.from_dict(json.loads(Path(args.config).read_text()))
        run = training.train(cfg, report, run_dir=Path(cfg.out) / cfg.name if cfg.name else None)
    else:
        if not args.data:
            print("train: give a data folder or cache (or --resume RUN)", file=sys.stderr)
            return 2
        model_args = dict(kv.split("=", 1) for kv in args.model_arg)
        cfg = config.config_for(
            args.model, data=_data(args.data), model_args={k: _parse_value(v) for k, v in model_args.items()},
            source_fov=args.source_fov, out=args.out, name=args.name, epochs=args.epochs, batch_size=args.batch_size,
            optimizer=args.optimizer, lr=args.lr, lr_floor=args.lr_floor, weight_decay=args.weight_decay,
            scheduler=args.scheduler,
            augment=args.augment, partial=args.partial, tta=args.tta, seed=args.seed, max_train=args.max_train,
            sizes=[int(v) for v in args.sizes.split(",")] if args.sizes else None, device=args.device,
            compile=args.compile or None, compile_mode=args.compile_mode, ema=args.ema,
            teacher=args.teacher or None, unlabelled=args.unlabelled, teacher_weight=args.teacher_weight,
            teacher_tta=args.teacher_tta, memory_gb=args.memory_gb)
        run = training.train(cfg, report)
    status = runs.read_status(run)
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    human = f"run {run}: {status.get('state')}"
    if summary:
        human += (f"; best validation RMSE {summary['val_rmse']:.4f} (epoch {summary['best_epoch']}), "
                  f"{summary['val_rmse_tta']:.4f} with {summary['tta_views']}-view averaging; "
                  f"{summary['train_seconds']:.0f} s of training on {summary['device']}")
    _emit(args, human, {"run": str(run), "state": status.get("state"), **summary})
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import evaluation

    _refuse_pickle(args.run)
    ev = evaluation.evaluate(args.run, _data(args.data) if args.data else None, split=args.split, tta=args.tta,
                             device=args.device, include_trained=args.include_trained, source_fov=args.source_fov)
    where = f"{len(ev):,} galaxies ({args.split}, {args.tta} view(s))"
    if ev.n_excluded:
        where += f"; {ev.n_excluded:,} it learnt from left out (--include-trained counts them)"
    if not ev.scorable:  # said instead of a number (null in the JSON), and not an error: nothing went wrong
        _emit(args, f"{args.run or 'the default model'}: too few galaxies to score: {where}; at least "
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
    _emit(args, human, {**ev.summary(), "per_answer": dict(zip(pa["column"], pa["rmse"].round(6)))})
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    import time

    from . import benchmark

    out = args.out or f"runs/benchmark-{time.strftime('%Y%m%d-%H%M%S')}"
    names = tuple(args.models.split(",")) if args.models else benchmark.BENCHMARK_MODELS
    table = benchmark.benchmark(_data(args.data), out, names, args.epochs_scale, args.max_train, args.device,
                                args.source_fov, unlabelled=args.unlabelled, compile=args.compile)
    fmt = {"val_rmse": "{:.4f}", "val_rmse_tta8": "{:.4f}", "parameters": "{:,}", "train_seconds": "{:.1f}",
           "images_per_s": "{:,.0f}"}
    shown = table.copy()
    for col, f in fmt.items():
        shown[col] = [f.format(v) if v is not None and v == v else "-" for v in table[col]]
    # A Markdown table, ready for a results table (docs/cpu-training.md).
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + " --- |" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    human = f"benchmark on {args.data} ({time.strftime('%Y-%m-%d')}), runs in {out}\n" + "\n".join(lines)
    _emit(args, human, {"out": out, "rows": table.to_dict(orient="records")})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from . import export

    if args.force and not args.replace_default:
        print("export: --force goes with --replace-default", file=sys.stderr)
        return 2
    _refuse_pickle(args.run)
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
    _emit(args, human, r)
    return 0


def _model_for(args: argparse.Namespace) -> str:
    """``--model``, else the model the dashboard also defaults to (``modelchoice.default_model``), said on stderr."""
    from . import modelchoice

    if args.model is not None:
        _refuse_pickle(args.model)
        return args.model
    path, why = modelchoice.default_model()
    if _main_process():
        print(f"model: {why} (choose another with --model)", file=sys.stderr)
    return str(path)


def _load_model(args: argparse.Namespace, images_synthetic: bool):
    """The model of ``--model`` (else the default, said on stderr) on ``--device``, with a warning on stderr when it
    was trained on the synthetic demo and the images are real, or the reverse. The model's folder is kept in
    ``args.model``, so that it is chosen and said once."""
    from . import distributed, hardware, modelchoice

    args.model = _model_for(args)
    model = modelchoice.load_model(args.model, distributed.device_for(hardware.pick_device(args.device)))
    warning = modelchoice.domain_warning(model, images_synthetic)
    if warning and _main_process():
        print(f"warning: {warning}", file=sys.stderr)
    return model


def cmd_predict(args: argparse.Namespace) -> int:
    from . import prediction

    model = _load_model(args, settings.folder_is_synthetic(args.images))
    result = prediction.predict_folder(args.images, model, args.out, args.source_fov, args.tta, args.batch_size,
                                       args.device, args.workers, TextProgress("predict") if _main_process() else None,
                                       args.frame_arcsec)
    frame, skipped = result.frame, result.skipped
    human = f"predicted {len(frame):,} galaxies" + (f" -> {args.out}" if args.out else "")
    for s in skipped[:20]:
        human += f"\n  skipped {s['path']}: {s['reason']}"
    if not args.out:
        human += "\n" + frame.head(10).to_string(index=False, float_format=lambda v: f"{v:.3f}")
    _emit(args, human, {"n": len(frame), "skipped": len(skipped), "out": args.out})
    return 0 if len(frame) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    out = demo.make_demo_dataset(args.out, n_labelled=args.n, n_unlabelled=args.n_unlabelled, size=args.size,
                                 seed=args.seed, overwrite=args.overwrite, progress=TextProgress("demo"))
    _emit(args, f"synthetic demo dataset in {out}", {"out": str(out), "n_labelled": args.n,
                                                     "n_unlabelled": args.n_unlabelled})
    return 0


def cmd_morphology(args: argparse.Namespace) -> int:
    from . import morphology

    _refuse_pickle(args.model)  # before the minutes measuring may take
    cache = data.resolve_cache(_data(args.data), source_fov=args.source_fov)
    rows = data.subsample(cache.indices(args.subset), args.sample, args.seed)
    if not len(rows):
        raise catalog.DataError(f"no galaxies in the {args.subset} rows of {cache.path}")
    table = morphology.cache_table(cache, rows, args.workers, TextProgress("morphology"))
    p = None
    if args.model is not None:
        from . import modelchoice, prediction

        p = prediction.predict_answer(modelchoice.load_model(args.model), cache, MERGER_COLUMN, rows)
    methods = mergers.other_methods(cache, rows, args.threshold, p)
    check = mergers.morphology_check(table, methods.flags, methods.known)
    lines = [f"morphology of {len(rows):,} galaxies of {cache.path} ({args.subset}"
             + (f", a random {args.sample:,}" if args.sample and args.sample < len(cache.indices(args.subset)) else "")
             + f"): {len(check['used']):,} compared",
             *(f"  dropped {n:,}: {reason}" for reason, n in check["dropped"].items()),
             *(f"  {r.method:32s} {r.fraction:7.2%}  ({r.n_flagged:,}; 95 % Wilson {r.lo:.2%}-{r.hi:.2%})"
               for r in check["fractions"].itertuples()),
             "  overlap (galaxies flagged by both):", *("    " + line for line in
                                                        check["overlap"].to_string().splitlines())]
    if args.out:
        buf = table.to_csv(index=False, lineterminator="\n")
        atomic_write_text(args.out, buf)
        lines.append(f"  table written to {args.out}")
    _emit(args, "\n".join(lines), {"fractions": check["fractions"].to_dict("records"),
                                    "overlap": check["overlap"].to_dict(), "dropped": check["dropped"],
                                    "n_compared": len(check["used"]), "n_measured": check["n_measured"]})
    return 0


def _embedded(args: argparse.Namespace):
    """The cache of ``args.data``, the model (``--model``, else the default) and every galaxy's embedding."""
    from . import embeddings

    cache = data.resolve_cache(_data(args.data), source_fov=args.source_fov)
    model = _load_model(args, cache.synthetic)
    return cache, model, embeddings.embed_cache(model, cache, tta=args.tta, progress=TextProgress("embed"))


def _write_table(args: argparse.Namespace, frame) -> str:
    """The first rows for the terminal, or the whole table written to ``--out`` (atomically)."""
    if not args.out:
        return "\n" + frame.head(20).to_string(index=False, float_format=lambda v: f"{v:.4f}")
    atomic_write_text(args.out, frame.to_csv(index=False, lineterminator="\n"))
    return f" -> {args.out}"


def _how(args: argparse.Namespace, kept: float) -> str:
    """How the search was made, when not exact on the full vectors."""
    return ((f"; {args.dims} principal components, {kept:.0%} of the variance" if kept < 1.0 else "")
            + ("; approximate, faiss" if args.approximate else ""))


def cmd_similar(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import embeddings, similarity

    cache, model, vectors = _embedded(args)
    query = Path(args.query)
    if query.is_file():
        vector, name = embeddings.embed_file(model, query, cache, args.query_source_fov, args.tta), query.name
    else:
        vector, name = vectors[cache.row_of(args.query)], f"GalaxyID {args.query}"
    index = similarity.Index(vectors, args.dims, args.approximate)
    idx, distance = index.search(vector, args.k)
    rows, distance = idx[0][idx[0] >= 0], distance[0][idx[0] >= 0]
    frame = pd.DataFrame({"rank": range(1, len(rows) + 1), "GalaxyID": cache.ids[rows], "distance": distance})
    human = (f"the {len(rows)} galaxies of {cache.path} nearest to {name} (cosine distance"
             f"{_how(args, index.kept)})" + _write_table(args, frame))
    _emit(args, human, {"query": str(args.query), "n": len(rows), "out": args.out,
                        "neighbours": frame.head(args.k).to_dict("records")})
    return 0


def cmd_anomalies(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from . import similarity

    cache, _, vectors = _embedded(args)
    index = similarity.Index(vectors, args.dims, args.approximate)
    score = index.anomaly_scores(args.neighbours)
    order = np.argsort(-score, kind="stable")[:args.n]
    frame = pd.DataFrame({"rank": range(1, len(order) + 1), "GalaxyID": cache.ids[order], "score": score[order]})
    human = (f"the {len(order)} galaxies of {cache.path} least like any other (mean cosine distance to their "
             f"{args.neighbours} nearest neighbours{_how(args, index.kept)})" + _write_table(args, frame))
    _emit(args, human, {"n": len(order), "out": args.out, "anomalies": frame.head(20).to_dict("records")})
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    import numpy as np

    from . import labels

    answers = labels.read_labels(args.labels)
    cache, model, vectors = _embedded(args)
    row = {str(g): i for i, g in enumerate(cache.ids)}
    found = answers["GalaxyID"].isin(row)
    missing, answers = answers["GalaxyID"][~found].tolist(), answers[found]
    if missing and _main_process():
        print(f"note: {len(missing)} labelled galaxies are not in {cache.path}, e.g. {missing[:5]}", file=sys.stderr)
    rows = np.array([row[g] for g in answers["GalaxyID"]], np.int64)
    head = labels.fit(vectors[rows], answers["label"].to_numpy(), l2=args.l2)
    tuned = None
    if args.fine_tune:
        from . import finetune

        bars = {}
        tuned, head, vectors = finetune.tune_and_rank(
            model, cache, rows, answers["label"].to_numpy(), head, epochs=args.epochs, tta=args.tta,
            progress=lambda stage, d, t: bars.setdefault(stage, TextProgress(stage))(d, t))
    ranked = labels.rank(head, cache.ids, vectors)
    answered = np.zeros(len(cache), bool)
    answered[rows] = True
    folder = labels.save(Path(args.root) / args.name, args.question or args.name, answers, head, ranked,
                         str(args.model), str(cache.path), tuned=tuned)
    fresh = ranked[~ranked["GalaxyID"].isin(answers["GalaxyID"])]
    ask = cache.ids[labels.ask_next(head.probability(vectors), answered, args.ask)]
    human = (f"{folder}: learnt '{args.question or args.name}' from {head.n_yes} yes and {head.n_no} no on "
             f"{len(cache):,} galaxies' embeddings{' (last stage fine-tuned)' if tuned else ''}; ranking in "
             f"{folder / labels.RANKED_FILE}\n"
             f"  most likely yes, not yet labelled: {', '.join(fresh['GalaxyID'].head(10))}\n"
             f"  label these next (the head is least sure of them): {', '.join(ask)}")
    _emit(args, human, {"folder": str(folder), "n_yes": head.n_yes, "n_no": head.n_no, "missing": len(missing),
                        "top": fresh.head(args.ask).to_dict("records"), "ask_next": list(ask)})
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import models

    import torch

    rows = []
    for name in models.list_models():
        with torch.device("meta"):  # shapes only: no memory or time spent initialising weights
            m = models.build_model(name)
        rows.append({"name": name, "parameters": models.count_parameters(m), "input_size": m.config["input_size"],
                     "output": m.config["output"]})
    human = "\n".join(f"{r['name']:12s} {r['parameters']:>12,} parameters  {r['input_size']} px  {r['output']}"
                      for r in rows)
    _emit(args, human, {"models": rows})
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from . import runs

    found = runs.list_runs(args.root)

    def line(r: dict) -> str:
        rmse = r["summary"].get("val_rmse")
        text = f"{r['name']:32s} {r['model'] or '-':10s} {r['status']:9s} {'-' if rmse is None else f'{rmse:.4f}'}"
        return text + (f"  {r['error']}" if r["error"] else "")

    human = "\n".join(line(r) for r in found) or f"no runs in {args.root}"
    _emit(args, human, {"runs": [{**r, "path": str(r["path"])} for r in found]})
    return 0


def _figures_html(figs: list) -> str:
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Merger fraction</title></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def cmd_mergers(args: argparse.Namespace) -> int:
    if (args.predictions is None) == (args.images is None) or (args.model is not None and args.images is None):
        print("mergers: give a predictions CSV, or --images FOLDER (with --model) to predict first", file=sys.stderr)
        return 2
    _refuse_pickle(args.calibrate_run)  # before the minutes predicting may take
    if args.images is not None:
        from . import prediction

        model = _load_model(args, settings.folder_is_synthetic(args.images))
        result = prediction.predict_folder(args.images, model, None, args.source_fov, args.tta, device=args.device,
                                           progress=TextProgress("predict"))
        frame, skipped = result.frame, result.skipped
        if not len(frame):
            raise catalog.DataError(f"no readable images in {args.images} ({len(skipped)} skipped)")
        p, source = frame[MERGER_COLUMN].to_numpy(dtype=float), str(args.images)
        synthetic = settings.folder_is_synthetic(args.images)
    else:
        ids, p = mergers.read_predictions(args.predictions)
        source, synthetic = str(args.predictions), bool(len(ids)) and bool(demo.is_demo_id(ids).all())

    calibration, cal_pp, shortfall = None, None, None
    if args.calibrate_run:
        from . import evaluation

        ev = evaluation.evaluate(args.calibrate_run, _data(args.data) if args.data else None, split="labelled",
                                 tta=args.tta, device=args.device, source_fov=args.source_fov)
        if len(ev) and bool(demo.is_demo_id(ev.ids).all()) != synthetic:
            kinds = ("synthetic demo", "real") if not synthetic else ("real", "synthetic demo")
            raise ValueError(f"the calibration galaxies are {kinds[0]} ones and the predictions are of {kinds[1]} "
                             f"galaxies: a threshold matched on one says nothing about the other; give --data a "
                             f"labelled folder like the predicted galaxies")
        pairs = merger_calibration.calibration_pairs(ev.y_pred, ev.y_true, ev.mask)
        if pairs is None:  # the uncalibrated report stands; the calibration is left out, saying why
            short = merger_calibration.calibration_shortfall(*merger_calibration.calibration_counts(ev.y_true, ev.mask))
            shortfall = (f"  calibration on {args.calibrate_run}: {short}, among the labelled galaxies it never "
                         f"learnt from ({ev.n_excluded:,} it learnt from left out)")
        else:
            cal_pp = pairs.pair
            calibration = merger_calibration.calibrate(*cal_pp, volunteer_threshold=args.threshold)

    r = mergers.report(p, args.threshold, args.rate, args.timescale, calibration, n_boot=args.boot, labelled=cal_pp)
    th, mean = r["threshold_estimate"], r["mean_estimate"]
    lines = [f"mergers in {source}: {th['n']:,} galaxies",
             f"  {MERGER_COLUMN} > {args.threshold:g}: {th['fraction']:.4f} ({th['n_flagged']:,} galaxies; 95 % CI "
             f"{th['lo']:.4f}-{th['hi']:.4f} Wilson, {th['boot_lo']:.4f}-{th['boot_hi']:.4f} bootstrap)",
             f"  mean {MERGER_COLUMN}: {mean['fraction']:.4f} (95 % CI {mean['lo']:.4f}-{mean['hi']:.4f} bootstrap)",
             f"  theory: {r['theory']['text']}"] + ([shortfall] if shortfall else [])
    if calibration is not None:
        c, me = calibration, r["matched_estimate"]
        lines += [f"  calibration on {args.calibrate_run} ({c['n']:,} labelled galaxies it never learnt from, "
                  f"{ev.n_excluded:,} it learnt from left out): volunteers flag "
                  f"{c['volunteer_fraction']:.4f}, the model {c['predicted_fraction']:.4f} at {args.threshold:g}; "
                  f"precision {c['precision']:.2f}, recall {c['recall']:.2f}",
                  f"  matching threshold {c['matching_threshold']:.3f} (95 % CI {me['threshold_lo']:.3f}-"
                  f"{me['threshold_hi']:.3f}): fraction here {me['fraction']:.4f} (95 % CI {me['lo']:.4f}-"
                  f"{me['hi']:.4f}, with the threshold's uncertainty); mean predicted {c['mean_predicted']:.4f} vs "
                  f"volunteers {c['mean_volunteer']:.4f}"]
    if args.plot:
        from . import figures  # plotly: only when a plot is asked for

        figs = [figures.histogram_figure(p, args.threshold)]
        if cal_pp is not None:
            figs += figures.merger_calibration_figures(*cal_pp)
        atomic_write_text(args.plot, _figures_html(figs))
        lines.append(f"  plot written to {args.plot}")
    _emit(args, "\n".join(lines), {**r, "source": source})
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m galaxy_core",
                                description="Galaxy Zoo morphology: prepare data, train, evaluate and predict the 37 "
                                            "Galaxy Zoo 2 answers.")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, fn, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        sp.add_argument("--json", action="store_true", help="also print one JSON object as the last line")
        return sp

    def source_fov(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--source-fov", type=float, default=None,
                        help="fraction of the 424 px Kaggle frame the images show (default: the folder's "
                             "galaxy_core.json, else 1.0 for 424 px originals; 0.6038 for the 96 px packs)")

    def frame_arcsec(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--frame-arcsec", type=float, default=None, metavar="ARCSEC",
                        help="FITS cutouts: width of the 424 px GZ2 frame in arcsec (8.48 x petroR90), for files "
                             "without a PETROR90 card; with a WCS pixel scale each file is then cropped to the "
                             "model's field (default: the folder's galaxy_core.json)")

    sp = command("summary", cmd_summary, "counts, image sizes, memory needed and the decision-tree check of a folder")
    sp.add_argument("data", help="data folder in the Kaggle layout")
    source_fov(sp)
    frame_arcsec(sp)
    sp.add_argument("--workers", type=int, default=None, help="processes reading image headers (default: every core)")

    sp = command("prepare", cmd_prepare, "decode every image once into a memory-mapped uint8 cache")
    sp.add_argument("data", help="data folder in the Kaggle layout")
    sp.add_argument("--out", default=None, help="cache folder (default: <data>/.galaxy_cache/..., or ~/.cache)")
    parts = sp.add_mutually_exclusive_group()
    parts.add_argument("--shard", type=_shard, metavar="I/K",
                       help="prepare only the I-th of K parts (0-based), beside the cache as <cache>.shard-I-of-K; "
                            "run the K shards anywhere the folder is, then --merge K")
    parts.add_argument("--merge", type=int, metavar="K", help="join the K shards into the cache")
    sp.add_argument("--fov", type=float, default=images.DEFAULT_FOV,
                    help=f"field to keep, as a fraction of the 424 px frame (default {images.DEFAULT_FOV:.4f})")
    sp.add_argument("--size", type=int, default=data.DEFAULT_SIZE, help="output side in pixels (default 80)")
    source_fov(sp)
    frame_arcsec(sp)
    sp.add_argument("--val-fraction", type=float, default=0.1, help="share of labelled galaxies kept for validation "
                                                                     "(default 0.1)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    sp.add_argument("--workers", type=int, default=None, help="decoding processes (default: every core)")
    sp.add_argument("--force", action="store_true", help="rebuild even if an up-to-date cache exists")

    sp = command("train", cmd_train, "train a model; writes a run folder with metrics.csv and checkpoints")
    sp.add_argument("data", nargs="?", help="a prepared cache or a data folder")
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
    sp.add_argument("--teacher", action="append", metavar="RUN",
                    help="run folder whose predictions fill the answers no volunteer gave (repeat for an ensemble)")
    sp.add_argument("--unlabelled", metavar="DATA", help="cache or folder of unlabelled galaxies for the teacher "
                                                         "to label (same field and size as the data's cache)")
    sp.add_argument("--teacher-weight", type=float, help="weight of a teacher's target in the loss (default 1)")
    sp.add_argument("--teacher-tta", type=int, help="views the teacher averages (default 8)")
    sp.add_argument("--resume", metavar="RUN", help="continue a killed or stopped run from its last epoch")
    sp.add_argument("--config", metavar="JSON", help="take every setting from a TrainConfig JSON file")

    sp = command("evaluate", cmd_evaluate, "RMSE of a run or checkpoint overall, per question or per answer, on "
                                           "galaxies it never learnt from")
    sp.add_argument("run", nargs="?", default=None,
                    help="run or checkpoint folder (default: the shipped checkpoint)")
    sp.add_argument("--data", default=None,
                    help="labelled data folder or cache (default: the cache the model was trained on, if it is on "
                         "this machine; the shipped checkpoint's is not)")
    source_fov(sp)
    sp.add_argument("--split", default="val", choices=["val", "train", "labelled"],
                    help="val (default): the galaxies it never learnt from (a run's own validation split); train: "
                         "those it learnt from; labelled: all labelled galaxies but those it learnt from")
    sp.add_argument("--include-trained", action="store_true",
                    help="with --split labelled: count the galaxies it learnt from too (not a fair test)")
    sp.add_argument("--tta", type=int, default=1, help="dihedral views to average (1-8)")
    sp.add_argument("--per-answer", action="store_true", help="list all 37 answers")
    sp.add_argument("--save", default=None, help="write the predictions to this CSV")
    sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")

    sp = command("benchmark", cmd_benchmark, "train mean, seed-cnn, resnet18 and galaxynet on one split and print "
                                             "one table")
    sp.add_argument("data", help="a prepared cache or a data folder")
    source_fov(sp)
    sp.add_argument("--models", default=None,
                    help="comma-separated model names (default mean,seed-cnn,resnet18,galaxynet)")
    sp.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every recipe's epochs (quick looks)")
    sp.add_argument("--max-train", type=int, default=None, help="cap the training galaxies (quick looks)")
    sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    sp.add_argument("--out", default=None, help="folder for the runs (default runs/benchmark-<time>)")
    sp.add_argument("--unlabelled", default=None, metavar="DATA",
                    help="unlabelled galaxies (cache or folder): adds galaxynet distilled from the galaxynet run")
    sp.add_argument("--compile", action="store_true", help="torch.compile every network")

    sp = command("export", cmd_export, "write a run's best model as a checkpoint folder (float16 weights, checked on "
                                       "the run's validation split); --replace-default makes it the default model")
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

    sp = command("predict", cmd_predict, "the 37 answers for a folder of images, as a Kaggle-format CSV")
    sp.add_argument("images", help="folder of .jpg/.png images or FITS cutouts (or a data folder in the Kaggle "
                                   "layout)")
    sp.add_argument("--model", default=None, help="run or checkpoint folder (default: the shipped checkpoint, else "
                                                  "the newest finished run in runs/)")
    sp.add_argument("--out", default=None, help="CSV to write")
    source_fov(sp)
    frame_arcsec(sp)
    sp.add_argument("--tta", type=int, default=1, help="dihedral views to average (1-8)")
    sp.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    sp.add_argument("--workers", type=int, default=None, help="decoding processes (default: every core)")
    sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")

    sp = command("demo", cmd_demo, "write the built-in synthetic dataset in the Kaggle layout (made-up galaxies "
                                   "and labels, for trying the tool)")
    sp.add_argument("--out", default=str(demo.DEFAULT_ROOT), help="folder to write (default data/demo, where the "
                                                                  "dashboard and data/ look for it)")
    sp.add_argument("--overwrite", action="store_true", help="replace the folder if it already holds files")
    sp.add_argument("--n", type=int, default=600, help="labelled galaxies (default 600)")
    sp.add_argument("--n-unlabelled", type=int, default=100, help="unlabelled galaxies (default 100)")
    sp.add_argument("--size", type=int, default=424, help="image side in px (default 424, as Kaggle's)")
    sp.add_argument("--seed", type=int, default=0, help="the same seed gives the same files")

    sp = command("mergers", cmd_mergers, "the merger fraction (Class8.6) with confidence intervals, calibration and "
                                         "the theory comparison (Lotz et al. 2011)")
    sp.add_argument("predictions", nargs="?", default=None,
                    help="Kaggle-format predictions CSV (GalaxyID, Class8.6, ...); or use --images")
    sp.add_argument("--images", default=None, help="folder of images to predict first (instead of a CSV)")
    sp.add_argument("--model", default=None, help="run or checkpoint folder for --images (default: the shipped "
                                                  "checkpoint, else the newest finished run in runs/)")
    source_fov(sp)
    sp.add_argument("--tta", type=int, default=1, help="dihedral views to average when predicting (1-8)")
    sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    sp.add_argument("--threshold", type=float, default=0.5, help="a galaxy is a merger when Class8.6 > this")
    sp.add_argument("--rate", type=float, default=merger_fraction.DEFAULT_RATE_PER_GYR,
                    help="merger rate R, per galaxy per Gyr (default 0.05, as the seed paper quoted Lotz et al. 2011)")
    sp.add_argument("--timescale", type=float, default=merger_fraction.MORPHOLOGY_TIMESCALE_GYR,
                    help="observability timescale T, Gyr (default 0.3 for morphology; about 1 for close pairs)")
    sp.add_argument("--calibrate-run", metavar="MODEL", default=None,
                    help="run or checkpoint folder: compare its Class8.6 with the volunteers' on labelled galaxies it "
                         "never learnt from (of --data, else of the cache it trained on) and match the threshold")
    sp.add_argument("--data", default=None, metavar="DATA",
                    help="labelled data folder or cache to calibrate on (needed for the shipped checkpoint; real "
                         "galaxies for real predictions)")
    sp.add_argument("--plot", metavar="OUT.html", default=None, help="write the histogram (and calibration) plots")
    sp.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")

    sp = command("morphology", cmd_morphology, "Gini, M20 and asymmetry by statmorph for a cache's galaxies (each "
                                               "measured once and kept), with the merger fractions they give")
    sp.add_argument("data", help="a prepared cache or a data folder")
    source_fov(sp)
    sp.add_argument("--subset", default="all", choices=["all", "labelled", "train", "val", "unlabelled"],
                    help="which galaxies of the cache (default all)")
    sp.add_argument("--sample", type=int, default=None, help="measure a seeded random sample of this many")
    sp.add_argument("--seed", type=int, default=0, help="seed of the --sample")
    sp.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
    sp.add_argument("--model", default=None, help="run or checkpoint folder: compare its Class8.6 > --threshold")
    sp.add_argument("--threshold", type=float, default=0.5, help="the model's merger threshold on Class8.6")
    sp.add_argument("--out", default=None, help="write the measurements to this CSV")

    def embedded(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("data", help="a prepared cache or a data folder")
        source_fov(sp)
        sp.add_argument("--model", default=None, help="run or checkpoint folder whose backbone embeds the galaxies "
                                                      "(default: the shipped checkpoint)")
        sp.add_argument("--tta", type=int, default=4, help="dihedral views each embedding averages (1-8, default 4)")
        sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
        sp.add_argument("--out", default=None, help="write the table to this CSV")

    def searched(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--dims", type=int, default=None,
                        help="search on this many principal components of the embeddings (default: all; 32 of 256 "
                             "finds 79%% of the 10 nearest)")
        sp.add_argument("--approximate", action="store_true",
                        help="faiss's inverted-file index (pip install faiss-cpu): for millions of galaxies; "
                             "may miss a few neighbours")

    sp = command("similar", cmd_similar, "the galaxies nearest to one galaxy in a model's embedding space")
    embedded(sp)
    searched(sp)
    sp.add_argument("query", help="a GalaxyID of the data, or an image file (JPEG, PNG or FITS)")
    sp.add_argument("-k", type=int, default=20, help="how many neighbours (default 20; the query itself is the "
                                                     "first when it is in the data)")
    sp.add_argument("--query-source-fov", type=float, default=None,
                    help="for an image file: the part of the 424 px frame it shows (default: its folder's "
                         "galaxy_core.json, else a 424 px original)")

    sp = command("anomalies", cmd_anomalies, "the galaxies least like any other in a model's embedding space")
    embedded(sp)
    searched(sp)
    sp.add_argument("-n", type=int, default=100, help="how many to list (default 100)")
    sp.add_argument("--neighbours", type=int, default=10,
                    help="the score is the mean distance to this many nearest neighbours (default 10)")

    sp = command("label", cmd_label, "learn a yes/no question of your own from a CSV of GalaxyID,label on a model's "
                                     "embeddings, rank every galaxy by it and say which to label next")
    embedded(sp)
    sp.add_argument("labels", help="CSV with the columns GalaxyID,label (yes/no, 1/0 or true/false)")
    sp.add_argument("--name", required=True, help="the folder to keep the labels, head and ranking in, under --root")
    sp.add_argument("--question", default=None, help="the question in words (default: the name)")
    sp.add_argument("--root", default="discoveries", help="parent folder (default discoveries/)")
    sp.add_argument("--l2", type=float, default=1.0, help="L2 penalty of the logistic regression (default 1)")
    sp.add_argument("--ask", type=int, default=12, help="how many galaxies to suggest labelling next (default 12)")
    sp.add_argument("--fine-tune", action="store_true",
                    help="also fine-tune the backbone's last stage on the labelled galaxies (galaxynet models; "
                         "the tuned copy is kept in the folder, the model itself never changes)")
    sp.add_argument("--epochs", type=int, default=20, help="fine-tuning passes over the 8 views of each labelled "
                                                          "galaxy (default 20)")

    command("models", cmd_models, "the registered models")
    sp = command("runs", cmd_runs, "past training runs, newest first")
    sp.add_argument("--root", default="runs", help="folder holding the run folders (default runs/)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "out", None) is None and args.command == "train":
        args.out = "runs"
    try:
        return args.fn(args)
    except (catalog.DataError, DiskFull, FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        # Bad input is the user's to fix: one clear line, no traceback.
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if "galaxy_core.distributed" in sys.modules:  # under torchrun: leave the process group cleanly
            sys.modules["galaxy_core.distributed"].stop()
