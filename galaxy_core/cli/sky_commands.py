"""Commands on catalogues of sky positions: ``crossmatch`` (a second catalogue's columns by position)."""

from __future__ import annotations

import argparse
from pathlib import Path

from galaxy_core.errors import DataError

from .common import command, emit, samp_option, send_samp


def _in_degrees(units: dict | None, coords: tuple[str, str], which: str, path: str) -> None:
    """Refuse coordinate columns whose declared unit is not degrees (a FITS TUNIT or VOTable unit of ``h`` or
    ``rad`` would otherwise be matched as if degrees); a column without a unit is taken to be in degrees."""
    from astropy import units as u

    for name in coords:
        unit = (units or {}).get(name)
        if unit is None or str(unit).strip() == "":
            continue
        parsed = u.Unit(str(unit), parse_strict="silent")
        if parsed != u.deg:
            raise DataError(f"{path}: the {which} coordinate column {name!r} is in {unit!r}; crossmatch takes "
                            f"decimal degrees: convert it first")


def cmd_crossmatch(args: argparse.Namespace) -> int:
    from galaxy_core import tables
    from galaxy_core.data import crossmatch

    out = Path(args.out)
    for given in (args.left, args.right):
        if out.resolve() == Path(given).resolve():
            raise DataError(f"--out {args.out} is an input: write the joined table to a new file")
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    left, right = tables.read_table(args.left), tables.read_table(args.right)
    left_coords = tuple(crossmatch.column(left.frame, c, "left", axis)
                        for c, axis in ((args.left_ra, "RA"), (args.left_dec, "Dec")))
    right_coords = tuple(crossmatch.column(right.frame, c, "right", axis)
                         for c, axis in ((args.right_ra, "RA"), (args.right_dec, "Dec")))
    _in_degrees(left.units, left_coords, "left", args.left)
    _in_degrees(right.units, right_coords, "right", args.right)
    joined, report = crossmatch.crossmatch(left.frame, right.frame, args.max_sep, left_coords=left_coords,
                                           right_coords=right_coords, columns=columns, suffix=args.suffix)
    # Short keys stay plain FITS cards (8 characters); the counts let a reader check the file against the report.
    meta = tables.provenance(source=f"{args.left} x {args.right}", xmleft=str(args.left), xmright=str(args.right),
                             xmsep=report.max_sep_arcsec, xmmatch=report.matched, xmunmat=report.unmatched,
                             xmnopos=report.no_position, xmmulti=report.matched_more_than_once)
    tables.write_table(joined, out, units=crossmatch.joined_units(left.units, right.units, report), meta=meta,
                       sky=left_coords)
    send_samp(args, out, out.name)
    emit(args, f"{report.summary()}\n-> {out} ({len(joined):,} rows, {len(joined.columns)} columns)",
         {**report.as_dict(), "out": str(out)})
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    sp = command(sub, "crossmatch", cmd_crossmatch,
                 "bring a second catalogue's columns to every row of a first one by sky position (nearest within "
                 "--max-sep; every row of LEFT kept). Tables by extension: .csv, .fits, .vot/.xml, .parquet")
    sp.add_argument("left", metavar="LEFT", help="the catalogue whose every row is kept (RA, Dec in degrees, ICRS)")
    sp.add_argument("right", metavar="RIGHT", help="the catalogue whose columns are brought (e.g. redshifts)")
    sp.add_argument("--max-sep", default="1arcsec",
                    help="largest separation that matches, with its unit: 1arcsec (default), '0.5 arcsec', 2arcmin")
    sp.add_argument("--out", required=True, metavar="TABLE", help="the joined table to write (format by extension)")
    sp.add_argument("--columns", default=None, metavar="Z,ZERR",
                    help="RIGHT's columns to bring, comma-separated (default: all)")
    samp_option(sp)
    sp.add_argument("--suffix", default="_2", help="added to a RIGHT column whose name LEFT has (default _2)")
    for side in ("left", "right"):
        sp.add_argument(f"--{side}-ra", default="ra", help=f"{side.upper()}'s RA column, degrees (default ra)")
        sp.add_argument(f"--{side}-dec", default="dec", help=f"{side.upper()}'s Dec column, degrees (default dec)")
