"""Commands that answer for galaxies: ``predict`` (the 37 answers), ``mergers`` (the merger fraction) and
``morphology`` (statmorph's check)."""

from __future__ import annotations

import argparse
import sys

from galaxy_core import tables
from galaxy_core.atomic import atomic_write_text
from galaxy_core.data import layout
from galaxy_core.data.cache import subsample
from galaxy_core.data.prepare import resolve_cache
from galaxy_core.demo import demo_set
from galaxy_core.errors import DataError
from galaxy_core.mergers import calibration, compare, evolution, fraction
from galaxy_core.mergers.fraction import MERGER_COLUMN
from galaxy_core.progress import TextProgress

from .common import (
    cache_dir,
    catalogue_options,
    column_names,
    command,
    data_folder,
    emit,
    frame_arcsec,
    load_model,
    load_models,
    main_process,
    refuse_pickle,
    samp_option,
    send_samp,
    source_fov,
)


def cmd_predict(args: argparse.Namespace) -> int:
    from galaxy_core.predict import modelchoice, prediction, uncertainty

    members = load_models(args, layout.folder_is_synthetic(args.images))
    # Said before the minutes predicting take: one model and one view have no spread; members must see alike.
    uncertainty.check_members(members)
    spread = uncertainty.label_for(len(members), args.tta) if args.uncertainty else None
    meta = tables.provenance(source=str(args.images), tta=args.tta, **modelchoice.ensemble_provenance(members),
                             **({"members": len(members)} if len(members) > 1 else {}))
    result = prediction.predict_folder(args.images, members, out=args.out, source_fov=args.source_fov, tta=args.tta,
                                       batch_size=args.batch_size, device=args.device, workers=args.workers,
                                       progress=TextProgress("predict") if main_process() else None,
                                       frame_arcsec=args.frame_arcsec, names=column_names(args), meta=meta,
                                       uncertainty=args.uncertainty)
    frame, skipped = result.frame, result.skipped
    if spread and spread.startswith("views") and main_process():  # measured, so said where the number is used
        print("note: one model's spread across its views measures how much its answers change as the galaxy is "
              "turned and mirrored; on the validation galaxies it was about 10 times smaller than the actual "
              "errors and ranked them no better than the value alone (docs/uncertainty.md)", file=sys.stderr)
    human = f"predicted {len(frame):,} galaxies" + (f" with {len(members)} models (their mean)"
                                                     if len(members) > 1 else "") + \
        (f", each answer with its spread ({spread})" if spread else "") + (f" -> {args.out}" if args.out else "")
    for s in skipped[:20]:
        human += f"\n  skipped {s['path']}: {s['reason']}"
    if not args.out:
        human += "\n" + frame.head(10).to_string(index=False, float_format=lambda v: f"{v:.3f}")
    send_samp(args, args.out or result.sky_table(meta), "predictions")
    emit(args, human, {"n": len(frame), "skipped": len(skipped), "out": args.out, "members": len(members),
                       "spread": spread})
    return 0 if len(frame) else 1


def _figures_html(figs: list) -> str:
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Merger fraction</title></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def cmd_mergers(args: argparse.Namespace) -> int:
    if (args.predictions is None) == (args.images is None) or (args.model is not None and args.images is None):
        print("mergers: give a predictions CSV, or --images FOLDER (with --model) to predict first", file=sys.stderr)
        return 2
    if args.by is None and (args.out or args.lotz):
        print("mergers: --out and --lotz go with --by COLUMN (the fraction against a catalogue column)",
              file=sys.stderr)
        return 2
    if (args.by is not None and args.images is not None and not tables.is_table(args.images)
            and layout.folder_catalogue(args.images) is None):
        print(f"mergers: --by reads a catalogue column, and {args.images} has no catalogue: give a catalogue table "
              "as --images (or name one as \"catalogue\" in the folder's galaxy_core.json), or a predictions table "
              "that carries the catalogue's columns", file=sys.stderr)
        return 2
    bins = evolution.parse_bins(args.bins)  # before the minutes predicting or calibrating may take
    refuse_pickle(args.calibrate_run)  # before the minutes predicting may take
    values = unit = None  # the --by column and its unit
    if args.images is not None:
        synthetic = layout.folder_is_synthetic(args.images)
        model = load_model(args, synthetic)
    else:
        table = compare.prediction_table(args.predictions)
        ids, p = table.frame["GalaxyID"].to_numpy(), table.frame[MERGER_COLUMN].to_numpy(dtype=float)
        source, synthetic = str(args.predictions), bool(len(ids)) and bool(demo_set.is_demo_id(ids).all())
        if args.by is not None:
            values = evolution.column_values(table.frame, args.by, source)
            unit = table.units.get(args.by) or None  # the column's own unit, from a FITS, VOTable or Parquet table
    # Calibrated before the images are predicted: a calibration refused across synthetic and real galaxies stops
    # the command before the minutes predicting takes.
    cal, cal_pp, cal_line = _calibration(args, synthetic) if args.calibrate_run else (None, None, None)
    if args.images is not None:
        from galaxy_core.predict import prediction

        result = prediction.predict_folder(args.images, model, source_fov=args.source_fov, tta=args.tta,
                                           device=args.device, progress=TextProgress("predict"))
        frame, skipped = result.frame, result.skipped
        if not len(frame):
            raise DataError(f"no readable images in {args.images} ({len(skipped)} skipped)")
        p, source = frame[MERGER_COLUMN].to_numpy(dtype=float), str(args.images)
        if args.by is not None:  # the catalogue's columns came with the answers, one row a predicted galaxy
            values = evolution.column_values(result.table(), args.by, source)
            unit = (result.units or {}).get(args.by) or None

    r = compare.report(p, args.threshold, rate_per_gyr=args.rate, timescale_gyr=args.timescale,
                       calibration=cal, n_boot=args.boot, labelled=cal_pp)
    th, mean = r.threshold_estimate, r.mean_estimate
    lines = [f"mergers in {source}: {th.n:,} galaxies",
             f"  {MERGER_COLUMN} > {args.threshold:g}: {th.fraction:.4f} ({th.n_flagged:,} galaxies; 95 % CI "
             f"{th.lo:.4f}-{th.hi:.4f} Wilson, {th.boot_lo:.4f}-{th.boot_hi:.4f} bootstrap)",
             f"  mean {MERGER_COLUMN}: {mean.fraction:.4f} (95 % CI {mean.lo:.4f}-{mean.hi:.4f} bootstrap)",
             f"  theory: {r.theory.text}"] + ([cal_line] if cal_line else [])
    if cal is not None:
        c, me = cal, r.matched_estimate
        lines.append(f"  matching threshold {c['matching_threshold']:.3f} (95 % CI {me.threshold_lo:.3f}-"
                     f"{me.threshold_hi:.3f}): fraction here {me.fraction:.4f} (95 % CI {me.lo:.4f}-"
                     f"{me.hi:.4f}, with the threshold's uncertainty); mean predicted {c['mean_predicted']:.4f} vs "
                     f"volunteers {c['mean_volunteer']:.4f}")
    by = None if args.by is None else _fraction_by(args, values=values, unit=unit, p=p, bins=bins, cal_pp=cal_pp,
                                                   source=source, lines=lines)
    if args.plot:
        from galaxy_core.show import figures  # plotly: only when a plot is asked for

        figs = [figures.histogram_figure(p, args.threshold)]
        if cal_pp is not None:
            figs += figures.merger_calibration_figures(*cal_pp)
        if by is not None:
            e = by["expected"]
            figs.append(figures.fraction_by_figure(by["result"], evolution.column_label(args.by, unit),
                                                   e and e.curve, e.name if e else ""))
        atomic_write_text(args.plot, _figures_html(figs))
        lines.append(f"  plot written to {args.plot}")
    extra = {} if by is None else {"by": by["json"]}
    emit(args, "\n".join(lines), {**r.to_dict(), "source": source, **extra})
    return 0


def _calibration(args: argparse.Namespace, synthetic: bool) -> tuple[dict | None, tuple | None, str]:
    """``--calibrate-run`` compared with the volunteers on labelled galaxies it never learnt from (of ``--data``,
    else of the cache it trained on), for predictions of synthetic galaxies or not (``synthetic``).

    Returns the ``calibrate`` dict, the labelled (p_pred, p_true) pairs and the line saying on what it was made;
    with too few galaxies the first two are None and the line says why (the uncalibrated report stands). Raises
    ValueError when one kind of galaxies would calibrate the other (``calibration.synthetic_mismatch``)."""
    from galaxy_core.predict import evaluation

    ev = evaluation.evaluate(args.calibrate_run, data_folder(args.data) if args.data else None, split="labelled",
                             tta=args.tta, device=args.device, source_fov=args.source_fov)
    refused = calibration.synthetic_mismatch(bool(demo_set.is_demo_id(ev.ids).all()), synthetic) if len(ev) else None
    if refused:
        raise ValueError(f"{refused}; give --data a labelled folder like the predicted galaxies")
    found = calibration.calibration_on(ev.y_pred, ev.y_true, ev.mask, threshold=args.threshold)
    if found["pairs"] is None:
        return None, None, (f"  calibration on {args.calibrate_run}: {found['too_few']}, among the labelled galaxies "
                            f"it never learnt from ({ev.n_excluded:,} it learnt from left out)")
    c = found["calibration"]
    return c, found["pairs"].pair, (
        f"  calibration on {args.calibrate_run} ({c['n']:,} labelled galaxies it never learnt from, "
        f"{ev.n_excluded:,} it learnt from left out): volunteers flag {c['volunteer_fraction']:.4f}, the model "
        f"{c['predicted_fraction']:.4f} at {args.threshold:g}; precision {c['precision']:.2f}, recall "
        f"{c['recall']:.2f}")


def _fraction_by(args: argparse.Namespace, *, values, unit: str | None, p, bins, cal_pp, source: str,
                 lines: list[str]) -> dict:
    """The fraction against ``--by`` (in ``unit``, None when the table gives none): its lines added to ``lines``,
    the table written to ``--out`` (any format of ``tables``, with the unit and how it was made); returns the
    result, the expectation (or None) and what ``--json`` prints."""

    result = evolution.fraction_by(values, p, bins, args.threshold, n_boot=args.boot, calibration=cal_pp)
    expected = evolution.expectation_for(args.by, args.lotz, rate_per_gyr=args.rate, timescale=args.timescale,
                                         lo=result.edges[0], hi=result.edges[-1])
    table = evolution.bins_table(result, args.by, expected=expected and expected.choice, timescale=args.timescale)
    lines += [f"  merger fraction ({MERGER_COLUMN} > {args.threshold:g}) against "
              f"{evolution.column_label(args.by, unit)}"
              + (f"; left out: {result.left_out}" if result.left_out else "")
              + (f"; {result.merged}" if result.merged else ""),
              *("    " + line for line in evolution.shown_table(table, args.by).to_string(index=False)
                .splitlines()),
              f"    ({result.rule}"
              + (f"; calibrated at {result.calibrated_threshold:.3f}, interval {result.calibrated_interval}"
                 if result.calibrated_threshold is not None else "")
              + (f"; expected: {expected.name}" if expected else "") + ")"]
    if args.out:
        fractions = [c for c in table.columns if c.startswith(("fraction", "wilson", "boot", "calibrated", "expected"))]
        edges = {f"{args.by}_{k}": unit for k in ("lo", "hi", "centre")} if unit else {}
        units = {**{c: "" for c in fractions}, **edges}
        tables.write_table(table, args.out, units=units, meta=tables.provenance(
            source=source, threshold=args.threshold, column=args.by, timescale=args.timescale,
            expected=expected.name if expected else None, rule=result.rule))
        lines.append(f"  per-bin table written to {args.out}")
        send_samp(args, args.out, f"merger fraction by {args.by}")
    records = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}  # NaN: JSON's null
               for row in table.to_dict("records")]
    return {"result": result, "expected": expected,
            "json": {"column": args.by, "rule": result.rule, "n_missing": result.n_missing,
                     "n_outside": result.n_outside, "calibrated_threshold": result.calibrated_threshold,
                     "bins": records}}


def cmd_morphology(args: argparse.Namespace) -> int:
    from galaxy_core.mergers import morphology

    refuse_pickle(args.model)  # before the minutes measuring may take
    cache = resolve_cache(data_folder(args.data), source_fov=args.source_fov)
    rows = subsample(cache.indices(args.subset), args.sample, args.seed)
    if not len(rows):
        raise DataError(f"no galaxies in the {args.subset} rows of {cache.path}")
    table = morphology.cache_table(cache, rows, workers=args.workers, progress=TextProgress("morphology"))
    p = None
    if args.model is not None:
        from galaxy_core.predict import modelchoice, prediction

        p = prediction.predict_answer(modelchoice.load_model(args.model), cache, MERGER_COLUMN, rows)
    methods = compare.other_methods(cache, rows, args.threshold, p=p)
    check = compare.morphology_check(table, methods.flags, methods.known)
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
    emit(args, "\n".join(lines), {"fractions": check["fractions"].to_dict("records"),
                                    "overlap": check["overlap"].to_dict(), "dropped": check["dropped"],
                                    "n_compared": len(check["used"]), "n_measured": check["n_measured"]})
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the command line's ``sub``-parsers."""

    sp = command(sub, "predict", cmd_predict, "the 37 answers for a folder of images, as a Kaggle-format CSV")
    sp.add_argument("images", help="folder of .jpg/.png images or FITS cutouts, a data folder in the Kaggle "
                                   "layout, or a catalogue table (.csv, .fits, .vot, .parquet) naming each galaxy's "
                                   "id and image file")
    sp.add_argument("--model", default=None, action="append",
                    help="run or checkpoint folder (default: the shipped checkpoint, else the newest finished run in "
                         "runs/); repeat it for an ensemble (the answers are the members' mean), or name a folder "
                         "holding several member folders")
    sp.add_argument("--uncertainty", action="store_true",
                    help="add a spread column beside each answer (Class8.6_std, a standard deviation in vote "
                         "fractions): across the models of an ensemble, else across one model's --tta views (2-8); "
                         "the kind is recorded in the table's metadata (spread = views:8 or ensemble:NxV)")
    sp.add_argument("--out", default=None,
                    help="table to write, in the format its extension names: .csv (the Kaggle format, plus the "
                         "catalogue's columns when there is one), .fits, .vot, .parquet or .ecsv (with units and "
                         "provenance)")
    source_fov(sp)
    frame_arcsec(sp)
    catalogue_options(sp)
    sp.add_argument("--tta", type=int, default=1, help="dihedral views to average (1-8)")
    samp_option(sp)
    sp.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    sp.add_argument("--workers", type=int, default=None, help="decoding processes (default: every core)")
    sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")

    sp = command(sub, "mergers", cmd_mergers,
                 "the merger fraction (Class8.6) with confidence intervals, calibration and the theory comparison "
                 "(Lotz et al. 2011)")
    sp.add_argument("predictions", nargs="?", default=None,
                    help="predictions table (the Kaggle CSV, or FITS, VOTable or Parquet: GalaxyID, "
                         "Class8.6, ... and any catalogue columns); or use --images")
    sp.add_argument("--images", default=None, help="folder of images to predict first (instead of a CSV)")
    sp.add_argument("--model", default=None, help="run or checkpoint folder for --images (default: the shipped "
                                                  "checkpoint, else the newest finished run in runs/)")
    source_fov(sp)
    sp.add_argument("--tta", type=int, default=1, help="dihedral views to average when predicting (1-8)")
    sp.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    sp.add_argument("--threshold", type=float, default=0.5, help="a galaxy is a merger when Class8.6 > this")
    sp.add_argument("--rate", type=float, default=fraction.DEFAULT_RATE_PER_GYR,
                    help="merger rate R, per galaxy per Gyr (default 0.05, as the seed paper quoted Lotz et al. 2011)")
    sp.add_argument("--timescale", type=float, default=fraction.MORPHOLOGY_TIMESCALE_GYR,
                    help="observability timescale T, Gyr (default 0.3 for morphology; about 1 for close pairs)")
    sp.add_argument("--calibrate-run", metavar="MODEL", default=None,
                    help="run or checkpoint folder: compare its Class8.6 with the volunteers' on labelled galaxies it "
                         "never learnt from (of --data, else of the cache it trained on) and match the threshold")
    sp.add_argument("--data", default=None, metavar="DATA",
                    help="labelled data folder or cache to calibrate on (needed for the shipped checkpoint; real "
                         "galaxies for real predictions)")
    cache_dir(sp)
    sp.add_argument("--plot", metavar="OUT.html", default=None,
                    help="write the histogram (and calibration, and --by) plots")
    sp.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    samp_option(sp)
    sp.add_argument("--by", metavar="COLUMN", default=None,
                    help="the fraction in bins of this column of the predictions table, or of the catalogue "
                         "table given as --images (e.g. z, a stellar mass)")
    sp.add_argument("--bins", default="5", help="for --by: a number of equal-count bins (default 5) or "
                                                "comma-separated edges, e.g. 0,0.05,0.1,0.2")
    sp.add_argument("--lotz", default=None, choices=list(evolution.LOTZ_2011),
                    help="for --by: the merger rate R(z) = R0 (1+z)^m to expect (Lotz et al. 2011; docs/mergers.md; "
                         "seed: the constant --rate); default: seed for a column named like a redshift (z, "
                         "redshift, zspec, zphot ...), none for another")
    sp.add_argument("--out", metavar="TABLE", default=None,
                    help="for --by: write the per-bin table (.csv, .fits, .vot, .parquet or .ecsv; all but CSV keep "
                         "the column's unit and how the table was made)")

    sp = command(sub, "morphology", cmd_morphology,
                 "Gini, M20 and asymmetry by statmorph for a cache's galaxies (each measured once and kept), with the "
                 "merger fractions they give")
    sp.add_argument("data", help="a prepared cache or a data folder")
    source_fov(sp)
    cache_dir(sp)
    sp.add_argument("--subset", default="all", choices=["all", "labelled", "train", "val", "unlabelled"],
                    help="which galaxies of the cache (default all)")
    sp.add_argument("--sample", type=int, default=None, help="measure a seeded random sample of this many")
    sp.add_argument("--seed", type=int, default=0, help="seed of the --sample")
    sp.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
    sp.add_argument("--model", default=None, help="run or checkpoint folder: compare its Class8.6 > --threshold")
    sp.add_argument("--threshold", type=float, default=0.5, help="the model's merger threshold on Class8.6")
    sp.add_argument("--out", default=None, help="write the measurements to this CSV")
