"""What the commands share: output, the data folder, the model, common options."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from galaxy_core.data import layout
from galaxy_core.demo import demo_set
from galaxy_core.errors import DataError
from galaxy_core.progress import TextProgress


def main_process() -> bool:
    """False in the processes ``torchrun`` starts beside rank 0, which print nothing but their errors."""
    return int(os.environ.get("RANK", "0")) == 0


def emit(args: argparse.Namespace, human: str, obj: dict[str, Any]) -> None:
    if not main_process():
        return
    print(human)
    if args.json:
        print(json.dumps(obj, default=str))


def data_folder(path: str) -> str:
    """A data folder or cache named on the command line; the project's ``data/`` with nothing in it (a fresh
    clone's) stands for the built-in synthetic demo in ``data/demo``, made on first use, as in the dashboard."""
    if not demo_set.stands_for_demo(path):
        return path
    if main_process():
        print(f"note: {path} holds no images yet, so the built-in synthetic demo in {demo_set.DEFAULT_ROOT} is used "
              f"(put your data in {path} in the Kaggle layout, or name another folder)", file=sys.stderr)
    return str(demo_set.ensure_demo_dataset(progress=TextProgress("making the demo") if main_process() else None))


def refuse_pickle(*paths: str | None) -> None:
    """Refuse a pickled checkpoint given as a model (``registry.refuse_pickle``: unpickling runs the file's code)
    before anything looks inside it, and before any slow work; None (the default model) passes. The one look a
    command's model gets: loading it (``modelchoice.model_folder``, ``registry.load_model_folder``) looks again only
    where no ``model.safetensors`` is found, which a model that passed here and loads has."""
    from galaxy_core.models import registry

    for path in paths:
        if path is not None:
            registry.refuse_pickle(path)


def model_for(args: argparse.Namespace) -> str:
    """``--model``, else the model the dashboard also defaults to (``modelchoice.default_model``), said on stderr."""
    from galaxy_core.predict import modelchoice

    if args.model is not None:
        refuse_pickle(args.model)
        return args.model
    path, why = modelchoice.default_model()
    if main_process():
        print(f"model: {why} (choose another with --model)", file=sys.stderr)
    return str(path)


def load_model(args: argparse.Namespace, images_synthetic: bool):
    """The model of ``--model`` (else the default, said on stderr) on ``--device``, with a warning on stderr when it
    was trained on the synthetic demo and the images are real, or the reverse. The model's folder is kept in
    ``args.model``, so that it is chosen and said once."""
    from galaxy_core import distributed
    from galaxy_core.predict import modelchoice

    args.model = model_for(args)
    model = modelchoice.load_model(args.model, distributed.process_device(args.device))
    warning = modelchoice.domain_warning(model, images_synthetic)
    if warning and main_process():
        print(f"warning: {warning}", file=sys.stderr)
    return model


def load_models(args: argparse.Namespace, images_synthetic: bool) -> list:
    """Every model of a repeatable ``--model`` (an ensemble folder standing for its members,
    ``modelchoice.member_folders``), else the default alone, on ``--device``, as :func:`load_model` loads one;
    ``args.model`` becomes the list of folders named."""
    from galaxy_core import distributed
    from galaxy_core.predict import modelchoice

    named = args.model or [None]
    args.model = [model_for(argparse.Namespace(model=m)) for m in named]
    device = distributed.process_device(args.device)
    members = modelchoice.load_models(args.model, device)
    warnings = {w for w in (modelchoice.domain_warning(m, images_synthetic) for m in members) if w}
    for warning in sorted(warnings) if main_process() else []:
        print(f"warning: {warning}", file=sys.stderr)
    return members


def catalogue_options(sp: argparse.ArgumentParser) -> None:
    """The catalogue table's column names (``catalogue_table.ColumnNames``), for commands that take a data folder or
    table."""
    g = sp.add_argument_group("catalogue table columns (default: the table folder's galaxy_core.json, else the "
                              "usual names, case-insensitive)")
    g.add_argument("--id-column", default=None, metavar="NAME", help="unique id (default: id, GalaxyID, objid or "
                                                                      "id_str)")
    g.add_argument("--file-column", default=None, metavar="NAME",
                   help="image file, relative to the table's folder (default: file, file_loc or path; without one, "
                        "<id>.jpg/.png/.fits beside the table)")
    g.add_argument("--ra-column", default=None, metavar="NAME", help="right ascension, ICRS (default: ra); "
                                                                      "degrees, radians by its unit, or sexagesimal")
    g.add_argument("--dec-column", default=None, metavar="NAME", help="declination, ICRS (default: dec)")


def column_names(args: argparse.Namespace):
    """The ``catalogue_table.ColumnNames`` the catalogue options give (all None where a command has none)."""
    from galaxy_core.data.catalogue_table import ColumnNames

    return ColumnNames(*(getattr(args, f"{k}_column", None) for k in ("id", "file", "ra", "dec")))


def write_table(args: argparse.Namespace, frame, out: str, *, units: dict | None = None, model=None,
                source: str | None = None, sky: tuple[str, str] | None = None) -> str:
    """Write a command's table to ``out`` by its extension (``tables.write_table``: CSV, FITS, VOTable, Parquet,
    ECSV), atomically, with the provenance (this command line, the model and its weights' hash, the data); returns
    the words saying where it went."""
    from galaxy_core import tables
    from galaxy_core.predict import modelchoice

    meta = tables.provenance(source=source, **(modelchoice.provenance(model) if model is not None else {}))
    tables.write_table(frame, out, units=units, meta=meta, sky=sky)
    send_samp(args, out, Path(out).name)
    return f" -> {out}"


def cache_dir(sp: argparse.ArgumentParser) -> None:
    """``--cache-dir``, for the commands that prepare (or find) a data folder's cache: ``cli.main`` sets
    ``layout.CACHE_ENV`` from it for the command, so every stage, and a training it starts, looks there."""
    sp.add_argument("--cache-dir", default=None, metavar="DIR",
                    help=f"the folder caches are kept in, one folder per data folder (default: ${layout.CACHE_ENV}"
                         ", else $XDG_CACHE_HOME/galaxy_core or ~/.cache/galaxy_core); the dashboard finds them with "
                         "the same setting. Nothing is written into the data folder")


def source_fov(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--source-fov", type=float, default=None,
                    help="fraction of the 424 px Kaggle frame the images show (default: the folder's "
                         "galaxy_core.json, else 1.0 for 424 px originals; 0.6038 for the 96 px packs)")


def frame_arcsec(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--frame-arcsec", type=float, default=None, metavar="ARCSEC",
                    help="FITS cutouts: width of the 424 px GZ2 frame in arcsec (8.48 x petroR90), for files "
                         "without a PETROR90 card; with a WCS pixel scale each file is then cropped to the "
                         "model's field (default: the folder's galaxy_core.json)")


def samp_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--samp", action="store_true",
                    help="also send the table to TOPCAT/Aladin over SAMP (a hub must be running)")


def send_samp(args: argparse.Namespace, path_or_frame, name: str) -> list[str]:
    """With ``--samp`` (:func:`samp_option`), send the table a command has just written (its path, or the frame) to
    TOPCAT and Aladin as ``name``; say on stderr which clients took it, or why none did, and return their names
    (none without ``--samp``). A failed send does not fail the command, whose file is already written. Both lines go
    to stderr so that with ``--json`` the JSON object stays the last line of stdout."""
    if not getattr(args, "samp", False) or not main_process():
        return []
    from galaxy_core.show import samp

    try:
        reached = samp.send_table(path_or_frame, name)
    except (DataError, OSError, ValueError) as e:  # SampError is a DataError
        print(f"SAMP: {name} not sent: {e}", file=sys.stderr)
        return []
    print(f"SAMP: {name} sent to {', '.join(reached)}", file=sys.stderr)
    return reached


def command(sub: argparse._SubParsersAction, name: str, fn, help: str) -> argparse.ArgumentParser:
    """A subcommand running ``fn(args)``, with ``--json`` as every command has."""
    sp = sub.add_parser(name, help=help, description=help)
    sp.set_defaults(fn=fn)
    sp.add_argument("--json", action="store_true", help="also print one JSON object as the last line")
    return sp
