#!/usr/bin/env bash
# The GPU half of issue 5 in one device call: throughput, the benchmark table, the default model (the better of
# galaxynet and galaxynet distilled onto the unlabelled pack) and its checkpoint, and prediction speed. First, here: `bash .ci/device/pack.sh`; then the device tool's run with
# carry [".data"], timeout_s 600 (the script is sized by estimate to fit) and the command
#
#   bash .ci/device/issue5.sh
#
# What comes back under $OUT (8 files at most, 16 MiB each): report.md (every table), log.txt, results.tar.gz (each
# run's config, metrics.csv, summary.json and log; no weights), and the exported checkpoint split into
# checkpoint.tar.part-* (join with `cat`, check with checkpoint.tar.sha256). The checkpoint is exported into
# .data/work, never into checkpoints/: only a reviewed GPU run's checkpoint goes there.
#
# QUICK=1 cuts every training to a few hundred galaxies and a few epochs, for a dry run of the plumbing on a CPU
# (OUT defaults to .data/out; pack only a few hundred unlabelled images for it: `bash .ci/device/pack.sh 300`).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT="${OUT:-.data/out}"
work=.data/work
mkdir -p "$OUT" "$work"
report="$OUT/report.md"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/log.txt" >&2; }
fov=0.6037735849056604  # the 96 px packs show the central 256 of 424 px
if [ "${QUICK:-0}" = 1 ]; then
    scale=0.02; cap="--max-train 256"; speed_cap="$cap"; speed_epochs=2; vary="batch=256"
    predict_args="--copies 1 --limit 300 --tta 1"; predict_views=1
else
    # staging=stream: the out-of-core path (issue 14), the images read ahead from the memory map by a thread
    scale=1; cap=""; speed_cap="--max-train 10704"; speed_epochs=4; vary="batch=512 compile=default staging=stream"
    predict_args="--copies 40 --tta 1,8"; predict_views=8
fi

log "unpack"
for t in .data/*.tar.gz; do tar xzf "$t" -C "$work"; done
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')" \
    | tee -a "$OUT/log.txt"

log "prepare"
python3 -m galaxy_core prepare "$work/gz2-kaggle-96" --source-fov $fov --out "$work/c96"
python3 -m galaxy_core prepare "$work/gz2-kaggle-96-unlabelled" --source-fov $fov --out "$work/cunl"

{ echo "# issue 5 device run, $(date -u +%Y-%m-%dT%H:%MZ)"; echo; } > "$report"

log "training throughput"
python3 benchmarks/bench_training.py "$work/c96" --batch 1024 --vary $vary --epochs $speed_epochs $speed_cap \
    --out "$work/speed" >> "$report"
echo >> "$report"

log "benchmark (mean, seed-cnn, resnet18, galaxynet, galaxynet distilled)"
python3 -m galaxy_core benchmark "$work/c96" --unlabelled "$work/cunl" --epochs-scale $scale $cap \
    --out "$work/bench" >> "$report"
echo >> "$report"

log "per-answer RMSE and export of the better galaxynet (plain or distilled, by 8-view validation RMSE)"
best=$(python3 -c "
from galaxy_core.predict import evaluation
runs = ['$work/bench/galaxynet', '$work/bench/galaxynet-distilled']
print(min(runs, key=lambda r: evaluation.evaluate(r, tta=8).rmse()))")
echo "default model: $best" >> "$report"
python3 -m galaxy_core evaluate "$best" --tta 8 --per-answer >> "$report"
python3 -m galaxy_core export "$best" --out "$work/checkpoints/default" >> "$report"
# The GPU model replaces the shipped (CPU-trained) one only if it scores better on the same validation galaxies.
python3 - "$work" >> "$report" <<'PY'
import sys
from galaxy_core.predict import evaluation
work = sys.argv[1]
new = evaluation.evaluate(f"{work}/checkpoints/default", f"{work}/c96", tta=8).rmse()
try:
    old = evaluation.evaluate("checkpoints/default", f"{work}/c96", tta=8).rmse()
except FileNotFoundError:
    old = float("inf")
print(f"8-view validation RMSE: GPU checkpoint {new:.4f}, shipped checkpoint {old:.4f}: "
      + ("replace the shipped one" if new < old else "keep the shipped one"))
PY
echo >> "$report"

log "prediction throughput from JPEG files"
python3 benchmarks/bench_predict.py --model "$work/checkpoints/default" --originals "$work/gz2-kaggle-424-sample" \
    --pack "$work/gz2-kaggle-96" $predict_args >> "$report"
python3 -m galaxy_core predict "$work/gz2-kaggle-424-sample" --model "$work/checkpoints/default" --tta $predict_views \
    --out "$work/sample-predictions.csv" > /dev/null
python3 - "$work" $predict_views >> "$report" <<'PY'
# The same galaxies from the users' format (424 px originals) and from the pack's cache: the predictions should
# agree, and on the galaxies of the validation split the RMSE says how well the checkpoint does on originals.
import sys
import numpy as np, pandas as pd
from galaxy_core import tree
from galaxy_core.data import cache as caches
from galaxy_core.predict import modelchoice, prediction
work, views = sys.argv[1], int(sys.argv[2])
orig = pd.read_csv(f"{work}/sample-predictions.csv", dtype={"GalaxyID": str}).set_index("GalaxyID")
cache = caches.open_cache(f"{work}/c96")
rows = np.array([cache.row_of(i) for i in orig.index])
model = modelchoice.load_model(f"{work}/checkpoints/default")
pack = prediction.predict_cache(model, cache, rows, tta=views)
o = orig[list(tree.COLUMNS)].to_numpy()
val = cache.split[rows] == caches.SPLIT_VAL
rmse = lambda p: float(np.sqrt(((p[val] - cache.labels[rows][val]) ** 2).mean()))
print(f"\n{len(orig)} galaxies as 424 px originals and as the 96 px pack ({views} view(s)): predictions differ by "
      f"{np.abs(o - pack).mean():.1e} on average, {np.abs(o - pack).max():.1e} at most; on the {val.sum()} of them "
      f"in the validation split, RMSE {rmse(o):.4f} from the originals and {rmse(pack):.4f} from the pack")
PY

log "collect"
tar czf "$OUT/results.tar.gz" --exclude='*.safetensors' --exclude='*.npz' -C "$work" bench speed
tar cf "$work/checkpoint.tar" -C "$work" checkpoints/default
sha256sum "$work/checkpoint.tar" | sed "s|$work/||" > "$OUT/checkpoint.tar.sha256"
split -b 15M "$work/checkpoint.tar" "$OUT/checkpoint.tar.part-"
log "done"
cat "$report"
