#!/usr/bin/env bash
# Run HERE (not on the device) before a device call: packs the real data the device run needs into .data/ (ignored by
# git), sized so that the working tree that travels stays under the device tool's 64 MiB.
#
#   bash .ci/device/pack.sh [N_UNLABELLED]      # default 17000 of the 21,543 unlabelled training-set images
#
# Then call the device tool with carry [".data"] and the command in .ci/device/issue5.sh's header.
set -euo pipefail
cd "$(dirname "$0")/../.."
shared="${GALAXY_SHARED_DATA:-../shared/data}"
n_unlabelled="${1:-17000}"
# Everything in .data travels: clear what a QUICK=1 dry run left there.
rm -rf .data/work .data/out
mkdir -p .data
tar czf .data/gz2-kaggle-96.tar.gz -C "$shared" gz2-kaggle-96
tar czf .data/gz2-kaggle-424-sample.tar.gz -C "$shared" gz2-kaggle-424-sample
# The first N unlabelled images in name order (a fixed subset, so two packs of the same N are the same).
(cd "$shared" && find gz2-kaggle-96-unlabelled/images_training_rev1 -name '*.jpg' | sort | sed -n "1,${n_unlabelled}p") \
    > .data/unlabelled.list
tar czf .data/gz2-kaggle-96-unlabelled.tar.gz -C "$shared" -T .data/unlabelled.list
rm .data/unlabelled.list
du -k --apparent-size .data/*.tar.gz
total=$(( $(du -sk .data | cut -f1) + $(git ls-files -z | xargs -0 du -ck | tail -1 | cut -f1) ))
echo "travelling: about $((total / 1024)) MiB of the 64 MiB allowed"
if [ "$total" -gt $((62 * 1024)) ]; then
    echo "too big for the device tool: pass a smaller N_UNLABELLED" >&2
    exit 1
fi
