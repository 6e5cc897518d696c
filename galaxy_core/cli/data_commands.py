"""Commands that read a data folder: ``summary``, ``prepare`` (the cache) and ``demo`` (the synthetic set)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from galaxy_core.data import layout
from galaxy_core.data.cache import DEFAULT_SIZE, folder_caches
from galaxy_core.data.prepare import merge_shards, prepare
from galaxy_core.demo import demo_set
from galaxy_core.progress import TextProgress, format_bytes
from galaxy_core.show import explore

from .common import cache_dir, catalogue_options, column_names, command, data_folder, emit, frame_arcsec, source_fov

DATA_HELP = ("a data folder in the Kaggle layout, a plain folder of cutouts (JPEG, PNG, FITS; all unlabelled), or a "
             "catalogue table (.csv, .fits, .vot, .parquet) naming each galaxy's id and image file, with optional "
             "ra/dec (ICRS, degrees), labels and any other columns")


def cmd_summary(args: argparse.Namespace) -> int:
    s = explore.summarize(data_folder(args.data), args.source_fov, workers=args.workers,
                          frame_arcsec=args.frame_arcsec, names=column_names(args))
    tc = s["tree_check"]
    lines = [f"{s['root']}: {s['n_images']:,} images ({s['n_full']:,} fully labelled, {s['n_partial']:,} partially "
             f"labelled, {s['n_unlabelled']:,} unlabelled)",
             f"  sizes: {', '.join(f'{k} x{v:,}' for k, v in list(s['image_sizes'].items())[:4])}; "
             f"{format_bytes(s['disk_bytes'])} on disk",
             f"  in memory: {s['memory']['uint8_mib']:,.0f} MiB as uint8, {s['memory']['float32_mib']:,.0f} MiB as "
             f"float32",
             f"  decision tree: {explore.tree_check_text(tc)}"]
    lines += [f"  labels: {a}" for a in s["absent"]]
    lines += [f"  unreadable: {u['GalaxyID']}: {u['reason']}" for u in s["unreadable"][:10]]
    lines += [f"  note: {p}" for p in s["problems"]]
    emit(args, "\n".join(lines), s)
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
    options = dict(fov=args.fov, size=args.size, source_fov=args.source_fov, val_fraction=args.val_fraction,
                   seed=args.seed, frame_arcsec=args.frame_arcsec, names=column_names(args))
    started = time.time()
    if args.merge is not None:
        cache = merge_shards(data_folder(args.data), args.merge, args.out, **options)
    else:
        cache = prepare(data_folder(args.data), args.out, workers=args.workers, progress=TextProgress("prepare"),
                             force=args.force, shard=args.shard, **options)
    m = cache.meta
    # A cache that was up to date is returned as it was: its build time is not this command's.
    built = (cache.path / "meta.json").stat().st_mtime >= started
    human = (f"cache {cache.path}: {m['n']:,} galaxies at {m['size']} px, field {m['fov']:.3f} of the 424 px frame "
             f"({m['n_train']:,} train, {m['n_val']:,} validation, {m['n_unlabelled']:,} unlabelled) " +
             (f"built in {m['seconds']:.1f} s" if built else
              f"already up to date, nothing rebuilt (built {m.get('created', '')[:10]} in {m['seconds']:.1f} s; "
              f"--force rebuilds it)"))
    for s in m["skipped"][:20]:
        human += f"\n  skipped {s['GalaxyID']} ({s['path']}): {s['reason']}"
    for note in m["problems"][:10]:  # e.g. a FITS galaxy missing a band file, or images without a label row
        human += f"\n  note: {note}"
    emit(args, human, {"cache": str(cache.path), **{k: m[k] for k in ("n", "n_train", "n_val", "n_unlabelled",
                                                                      "size", "fov", "seconds")},
                       "skipped": len(m["skipped"]), "built": built})
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    # A remade demo makes its caches stale, and runs trained on it evaluate on them: rebuild them at once, with
    # their own settings, rather than leave the next command to find a cache that no longer matches its folder.
    old = folder_caches(args.out) if args.overwrite and Path(args.out).is_dir() else []
    out = demo_set.make_demo_dataset(args.out, n_labelled=args.n, n_unlabelled=args.n_unlabelled, size=args.size,
                                 seed=args.seed, overwrite=args.overwrite, progress=TextProgress("demo"))
    rebuilt = [prepare(out, c.path, fov=c.fov, size=c.size, val_fraction=c.meta["val_fraction"],
                            seed=c.meta["seed"], progress=TextProgress("cache")) for c in old]
    human = f"synthetic demo dataset in {out}"
    human += "".join(f"\n  its cache {c.path} was rebuilt from the new images ({len(c):,} galaxies at {c.size} px), "
                     f"for the runs trained on it" for c in rebuilt)
    emit(args, human, {"out": str(out), "n_labelled": args.n, "n_unlabelled": args.n_unlabelled,
                       "rebuilt": [str(c.path) for c in rebuilt]})
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the command line's ``sub``-parsers."""

    sp = command(sub, "summary", cmd_summary,
                 "counts, image sizes, memory needed and the decision-tree check of a folder")
    sp.add_argument("data", help=DATA_HELP)
    source_fov(sp)
    frame_arcsec(sp)
    catalogue_options(sp)
    sp.add_argument("--workers", type=int, default=None, help="processes reading image headers (default: every core)")

    sp = command(sub, "prepare", cmd_prepare, "decode every image once into a memory-mapped uint8 cache")
    sp.add_argument("data", help=DATA_HELP)
    sp.add_argument("--out", default=None, help="this cache folder (default: one in --cache-dir)")
    cache_dir(sp)
    catalogue_options(sp)
    parts = sp.add_mutually_exclusive_group()
    parts.add_argument("--shard", type=_shard, metavar="I/K",
                       help="prepare only the I-th of K parts (0-based), beside the cache as <cache>.shard-I-of-K; "
                            "run the K shards anywhere the folder is, then --merge K")
    parts.add_argument("--merge", type=int, metavar="K", help="join the K shards into the cache")
    sp.add_argument("--fov", type=float, default=layout.DEFAULT_FOV,
                    help=f"field to keep, as a fraction of the 424 px frame (default {layout.DEFAULT_FOV:.4f})")
    sp.add_argument("--size", type=int, default=DEFAULT_SIZE, help="output side in pixels (default 80)")
    source_fov(sp)
    frame_arcsec(sp)
    sp.add_argument("--val-fraction", type=float, default=0.1, help="share of labelled galaxies kept for validation "
                                                                     "(default 0.1)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    sp.add_argument("--workers", type=int, default=None, help="decoding processes (default: every core)")
    sp.add_argument("--force", action="store_true", help="rebuild even if an up-to-date cache exists")

    sp = command(sub, "demo", cmd_demo,
                 "write the built-in synthetic dataset in the Kaggle layout (made-up galaxies and labels, for trying "
                 "the tool)")
    sp.add_argument("--out", default=str(demo_set.DEFAULT_ROOT), help="folder to write (default data/demo, where the "
                                                                  "dashboard and data/ look for it)")
    sp.add_argument("--overwrite", action="store_true", help="replace the folder if it already holds files")
    sp.add_argument("--n", type=int, default=600, help="labelled galaxies (default 600)")
    sp.add_argument("--n-unlabelled", type=int, default=100, help="unlabelled galaxies (default 100)")
    sp.add_argument("--size", type=int, default=424, help="image side in px (default 424, as Kaggle's)")
    sp.add_argument("--seed", type=int, default=0, help="the same seed gives the same files")
