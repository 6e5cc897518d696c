"""The command line: ``python -m galaxy_core <command>``, a thin layer over the package's functions.

Every command prints a short human summary; with ``--json`` it also prints one JSON object as its last line, for
scripts (``python -m galaxy_core evaluate runs/x --json | tail -1``).

The commands are grouped by what they work on: ``data_commands`` (a data folder: summary, prepare, demo),
``train_commands`` (models: train, evaluate, benchmark, export, models, runs), ``predict_commands`` (answers for
galaxies: predict, mergers, morphology), ``discover_commands`` (embeddings: similar, anomalies, label) and
``sky_commands`` (catalogues of sky positions: crossmatch), over ``common`` (output, the data folder, the model,
shared options). Each command imports the stages it needs inside itself, so that ``--help`` and ``summary`` do not
wait for PyTorch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from galaxy_core.atomic import DiskFull
from galaxy_core.data.layout import CACHE_ENV
from galaxy_core.errors import DataError

from . import data_commands, discover_commands, predict_commands, sky_commands, train_commands


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m galaxy_core",
                                description="Galaxy Zoo morphology: prepare data, train, evaluate and predict the 37 "
                                            "Galaxy Zoo 2 answers.")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (data_commands, train_commands, predict_commands, discover_commands, sky_commands):
        group.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "out", None) is None and args.command == "train":
        args.out = "runs"
    before = os.environ.get(CACHE_ENV)
    if getattr(args, "cache_dir", None):  # through the environment, so that a child process (torchrun) sees it too
        os.environ[CACHE_ENV] = str(Path(args.cache_dir).expanduser().resolve())
    try:
        return args.fn(args)
    except (DataError, DiskFull, FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        # Bad input is the user's to fix: one clear line, no traceback.
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if before is None:  # main() called in-process (tests, scripts) leaves the environment as it found it
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = before
        if "galaxy_core.distributed" in sys.modules:  # under torchrun: leave the process group cleanly
            sys.modules["galaxy_core.distributed"].stop()
