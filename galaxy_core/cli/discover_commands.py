"""Commands on a model's embeddings: ``similar``, ``anomalies`` and ``label`` (a question of your own)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from galaxy_core import tables
from galaxy_core.data.prepare import resolve_cache
from galaxy_core.progress import TextProgress

from .common import (
    cache_dir,
    catalogue_options,
    column_names,
    command,
    data_folder,
    emit,
    load_model,
    main_process,
    samp_option,
    send_samp,
    source_fov,
    write_table,
)


def _embedded(args: argparse.Namespace):
    """The cache of ``args.data``, the model (``--model``, else the default) and every galaxy's embedding."""
    from galaxy_core.discover import embeddings

    cache = resolve_cache(data_folder(args.data), source_fov=args.source_fov, names=column_names(args))
    model = load_model(args, cache.synthetic)
    return cache, model, embeddings.embed_cache(model, cache, tta=args.tta, progress=TextProgress("embed"))


def _write_table(args: argparse.Namespace, frame, cache, model) -> str:
    """The first rows for the terminal, or the whole table, with the catalogue's own columns, written to ``--out``
    in the format its extension names (atomically, with units and provenance)."""
    if not args.out:
        send_samp(args, tables.SkyTable(cache.with_catalogue(frame), cache.units), args.command)
        return "\n" + frame.head(20).to_string(index=False, float_format=lambda v: f"{v:.4f}")
    sky = cache.sky
    return write_table(args, cache.with_catalogue(frame), args.out, units=cache.units, model=model,
                       source=str(cache.meta["source"]), sky=(sky.ra, sky.dec) if sky.ra else None)


def _how(args: argparse.Namespace, kept: float) -> str:
    """How the search was made, when not exact on the full vectors."""
    return ((f"; {args.dims} principal components, {kept:.0%} of the variance" if kept < 1.0 else "")
            + ("; approximate, faiss" if args.approximate else ""))


def cmd_similar(args: argparse.Namespace) -> int:
    from galaxy_core.discover import embeddings, similarity

    cache, model, vectors = _embedded(args)
    query = Path(args.query)
    if query.is_file():
        vector = embeddings.embed_file(model, query, cache, source_fov=args.query_source_fov, tta=args.tta)
        name = query.name
    else:
        vector, name = vectors[cache.row_of(args.query)], f"GalaxyID {args.query}"
    index = similarity.Index(vectors, args.dims, args.approximate)
    frame = index.similar(vector, cache.ids, args.k).drop(columns="row")
    human = (f"the {len(frame)} galaxies of {cache.path} nearest to {name} (cosine distance"
             f"{_how(args, index.kept)})" + _write_table(args, frame, cache, model))
    emit(args, human, {"query": str(args.query), "n": len(frame), "out": args.out,
                       "neighbours": frame.head(args.k).to_dict("records")})
    return 0


def cmd_anomalies(args: argparse.Namespace) -> int:
    from galaxy_core.discover import similarity

    cache, model, vectors = _embedded(args)
    index = similarity.Index(vectors, args.dims, args.approximate)
    score = index.anomaly_scores(args.neighbours)
    frame = similarity.most_unusual(score, cache.ids, args.n).drop(columns="row")
    human = (f"the {len(frame)} galaxies of {cache.path} least like any other (mean cosine distance to their "
             f"{args.neighbours} nearest neighbours{_how(args, index.kept)})" + _write_table(args, frame, cache, model))
    emit(args, human, {"n": len(frame), "out": args.out, "anomalies": frame.head(20).to_dict("records")})
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    import numpy as np

    from galaxy_core.discover import own_questions

    answers = own_questions.read_labels(args.labels)
    cache, model, vectors = _embedded(args)
    row = {str(g): i for i, g in enumerate(cache.ids)}
    found = answers["GalaxyID"].isin(row)
    missing, answers = answers["GalaxyID"][~found].tolist(), answers[found]
    if missing and main_process():
        print(f"note: {len(missing)} labelled galaxies are not in {cache.path}, e.g. {missing[:5]}", file=sys.stderr)
    rows = np.array([row[g] for g in answers["GalaxyID"]], np.int64)
    head = own_questions.fit(vectors[rows], answers["label"].to_numpy(), l2=args.l2, base_rate=args.base_rate,
                      random_marks=args.random_marks)
    penalty = f"L2 {head.l2:g} ({head.l2_from})"  # before a fine-tuned head replaces it
    tuned = None
    if args.fine_tune:
        from galaxy_core.discover import finetune

        bars = {}
        tuned, head, vectors = finetune.tune_and_rank(
            model, cache, rows, answers["label"].to_numpy(), head, epochs=args.epochs, tta=args.tta,
            progress=lambda stage, d, t: bars.setdefault(stage, TextProgress(stage))(d, t))
    ranked = own_questions.rank(head, cache.ids, vectors)
    folder = own_questions.save(Path(args.root) / args.name, args.question or args.name, answers, head, ranked,
                                model=str(args.model), cache=str(cache.path), tuned=tuned)
    written = _write_table(args, ranked, cache, model) if args.out else ""
    fresh = own_questions.candidates(ranked, answers["GalaxyID"])
    ask = cache.ids[own_questions.ask_next(head.even_odds(vectors), own_questions.answered(len(cache), rows), args.ask)]
    shown, why = own_questions.probability_shown(head)
    # The table keeps p_yes for whoever reads it with the head's settings; the text shows it only where it means
    # what it says.
    top = (", ".join(f"{g} (p {v:.3f})" for g, v in zip(fresh["GalaxyID"].head(10), fresh["p_yes"])) if shown
           else ", ".join(fresh["GalaxyID"].head(10)) + f"\n    (by rank, without p(yes): {'; '.join(why)})")
    human = (f"{folder}: learnt '{args.question or args.name}' from {head.n_yes} yes and {head.n_no} no on "
             f"{len(cache):,} galaxies' embeddings, {penalty}{', last stage fine-tuned' if tuned else ''}; "
             f"ranking in {folder / own_questions.RANKED_FILE}{written}\n"
             f"  most likely yes, not yet labelled: {top}\n"
             f"  label these next (the head is least sure of them): {', '.join(ask)}")
    emit(args, human, {"folder": str(folder), "n_yes": head.n_yes, "n_no": head.n_no, "missing": len(missing),
                       "l2": head.l2, "l2_from": head.l2_from, "base_rate": head.base_rate,
                       "probability_shown": shown, "why": "; ".join(why),
                       "top": fresh.head(args.ask).to_dict("records"), "ask_next": list(ask)})
    return 0


def _model_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("data", help="a prepared cache, a data folder (Kaggle layout or plain), or a catalogue table")
    source_fov(sp)
    cache_dir(sp)
    catalogue_options(sp)
    sp.add_argument("--model", default=None, help="run or checkpoint folder whose backbone embeds the galaxies "
                                                  "(default: the shipped checkpoint)")
    sp.add_argument("--tta", type=int, default=4, help="dihedral views each embedding averages (1-8, default 4)")
    sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    sp.add_argument("--out", default=None, help="write the table here, in the format its extension names (.csv, "
                                                ".fits, .vot, .parquet, .ecsv), with the catalogue's columns")
    samp_option(sp)


def _search_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--dims", type=int, default=None,
                    help="search on this many principal components of the embeddings (default: all; 32 of 256 "
                         "finds 79%% of the 10 nearest)")
    sp.add_argument("--approximate", action="store_true",
                    help="faiss's inverted-file index (pip install faiss-cpu): for millions of galaxies; "
                         "may miss a few neighbours")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the command line's ``sub``-parsers."""

    sp = command(sub, "similar", cmd_similar, "the galaxies nearest to one galaxy in a model's embedding space")
    _model_options(sp)
    _search_options(sp)
    sp.add_argument("query", help="a GalaxyID of the data, or an image file (JPEG, PNG or FITS)")
    sp.add_argument("-k", type=int, default=20, help="how many neighbours (default 20; the query itself is the "
                                                     "first when it is in the data)")
    sp.add_argument("--query-source-fov", type=float, default=None,
                    help="for an image file: the part of the 424 px frame it shows (default: its folder's "
                         "galaxy_core.json, else a 424 px original)")

    sp = command(sub, "anomalies", cmd_anomalies, "the galaxies least like any other in a model's embedding space")
    _model_options(sp)
    _search_options(sp)
    sp.add_argument("-n", type=int, default=100, help="how many to list (default 100)")
    sp.add_argument("--neighbours", type=int, default=10,
                    help="the score is the mean distance to this many nearest neighbours (default 10)")

    sp = command(sub, "label", cmd_label,
                 "learn a yes/no question of your own from a CSV of GalaxyID,label on a model's embeddings, rank every"
                 " galaxy by it and say which to label next")
    _model_options(sp)
    sp.add_argument("labels", help="CSV with the columns GalaxyID,label (yes/no, 1/0 or true/false)")
    sp.add_argument("--name", required=True, help="the folder to keep the labels, head and ranking in, under --root")
    sp.add_argument("--question", default=None, help="the question in words (default: the name)")
    sp.add_argument("--root", default="discoveries", help="parent folder (default discoveries/)")
    sp.add_argument("--l2", type=float, default=None,
                    help="L2 penalty of the logistic regression (default: chosen by 5-fold cross-validation on the "
                         "labelled galaxies)")
    sp.add_argument("--base-rate", type=float, default=None,
                    help="the share of 'yes' among all galaxies of the data, if known (e.g. 0.01): p_yes is moved to "
                         "it from the even odds the head learns at (King & Zeng 2001)")
    sp.add_argument("--random-marks", action="store_true",
                    help="the labelled galaxies were drawn at random among the yes and among the no (not chosen "
                         "from rankings): with --base-rate and enough of them, p(yes) is printed as a probability")
    sp.add_argument("--ask", type=int, default=12, help="how many galaxies to suggest labelling next (default 12)")
    sp.add_argument("--fine-tune", action="store_true",
                    help="also fine-tune the backbone's last stage on the labelled galaxies (galaxynet models; "
                         "the tuned copy is kept in the folder, the model itself never changes)")
    sp.add_argument("--epochs", type=int, default=20, help="fine-tuning passes over the 8 views of each labelled "
                                                          "galaxy (default 20)")
