#!/usr/bin/env bash
# Rebuild models/ and docs/gallery/ from nothing, with the project's own commands — what the cards record.
#
#     bash scripts/train_default_models.sh            # after `make run` or `make test` made .venv
#
# Needs the Debian package mirror (scripts/open_images.py downloads .deb files) and, on the 2-core CPU
# the shipped models were made on, 2–3 hours; on a GPU, minutes. Set STAGE to keep the trained
# folders elsewhere (default runs/default-models). The three trainings are independent: run them in
# parallel on a machine with the cores for it (OMP_NUM_THREADS=1 each on 2 cores is how they were made).
#
# For real quality, retrain with pretrained encoders and real datasets instead; each card's
# provenance.retrain says how.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SN=.venv/bin/stylenorm
STAGE=${STAGE:-runs/default-models}
mkdir -p "$STAGE"

# ---- data: open images from Debian packages (content photos; patterns, wallpapers, paintings as styles)
[ -f data/open/manifest.json ] || $PY scripts/open_images.py --out data/open
$PY scripts/galleries.py --open data/open        # data/open/eight-styles, data/open/adain-gallery
$PY -c "from stylenorm.data.scenes import write_scenes; write_scenes('data/scenes-heldout', 6, 64, seed=7)"

# ---- colour transfer: no weights
$PY scripts/make_color_model.py --models-dir models

# ---- AdaIN: random VGG-19 cut at relu3_1, per-layer style weights, SANet identity loss
$SN train adain --content data/open/content/train --style data/open/style/train \
    --out "$STAGE/adain-open" --run-dir "$STAGE/runs/adain-open" \
    --encoder random --encoder-layer relu3_1 --lr 3e-4 --image-size 128 --load-size 256 --batch-size 4 \
    --steps 2400 --style-layer-weights 1,2,4 --identity-weight 5 --workers 0 \
    --sample-every 200 --checkpoint-every 200

# ---- multi-style (CIN): random VGG-16 loss net, linear output, deeper style layers weighted up;
#      phase 1: a high content weight, so the net first learns to keep the photo
$SN train multistyle --content data/open/content/train --style data/open/eight-styles \
    --out "$STAGE/eight-styles" --run-dir "$STAGE/runs/eight-styles" \
    --encoder random --image-size 128 --style-size 256 --batch-size 4 --steps 3000 \
    --output linear --style-layer-weights 1,3,10,30 --content-weight 5e5 --workers 0 \
    --sample-every 250 --checkpoint-every 250
# phase 2: the net keeps the photo by now; a lower content weight lets the styles in
$SN train multistyle --content data/open/content/train --style data/open/eight-styles \
    --out "$STAGE/eight-styles" --run-dir "$STAGE/runs/eight-styles" --resume latest \
    --encoder random --image-size 128 --style-size 256 --batch-size 4 --steps 5500 \
    --output linear --style-layer-weights 1,3,10,30 --content-weight 1e5 --workers 0 \
    --sample-every 250 --checkpoint-every 250

# ---- SPADE on synthetic scenes (generated on the fly; the web page paints with their palette)
$SN train spade --layout scenes --out "$STAGE/scenes" --name scenes --run-dir "$STAGE/runs/scenes" \
    --crop-size 64 --ngf 16 --spade-hidden 32 --ndf 32 --batch-size 4 --steps 5000 \
    --encoder random --vgg-weight 0 --ema 0.99 --workers 0 --sample-every 250 --checkpoint-every 250

# ---- evidence on held-out images, then ship (fp16 weights, gallery, card with the numbers)
G=data/open/adain-gallery
ADAIN_STYLES="$G/bark.png $G/pastel.png $G/cluster.png $G/wood.png $G/analog-pattern.png"
# shellcheck disable=SC2086
$SN sheet --model "$STAGE/adain-open" --content data/open/content/heldout --style $ADAIN_STYLES --size 192 \
    --out docs/gallery/adain-open.jpg --metrics-json docs/gallery/adain-open.json
$SN sheet --model "$STAGE/eight-styles" --content data/open/content/heldout \
    --style brick elephants fluent-color honeywave leopard lightning painting-colors pink-marble --size 160 \
    --out docs/gallery/eight-styles.jpg --metrics-json docs/gallery/eight-styles.json
$SN sheet --model "$STAGE/scenes" --content data/scenes-heldout/labels \
    --reference data/scenes-heldout/images --size 192 \
    --out docs/gallery/scenes.jpg --metrics-json docs/gallery/scenes.json
$SN sheet --model color-transfer --content data/open/content/heldout --style desert forest neon ocean sunset \
    --size 192 --out docs/gallery/color-transfer.jpg --metrics-json docs/gallery/color-transfer.json

# shellcheck disable=SC2086
$PY scripts/ship_model.py "$STAGE/adain-open" adain-open --styles $ADAIN_STYLES \
    --sheet-json docs/gallery/adain-open.json --sheet docs/gallery/adain-open.jpg \
    --retrain "$(cat scripts/retrain/adain-open.txt)"
$PY scripts/ship_model.py "$STAGE/eight-styles" eight-styles --styles data/open/eight-styles/*.png \
    --sheet-json docs/gallery/eight-styles.json --sheet docs/gallery/eight-styles.jpg \
    --retrain "$(cat scripts/retrain/eight-styles.txt)"
$PY scripts/ship_model.py "$STAGE/scenes" scenes \
    --sheet-json docs/gallery/scenes.json --sheet docs/gallery/scenes.jpg \
    --retrain "$(cat scripts/retrain/scenes.txt)"
$PY scripts/ship_model.py models/color-transfer color-transfer \
    --sheet-json docs/gallery/color-transfer.json --sheet docs/gallery/color-transfer.jpg \
    --retrain "$(cat scripts/retrain/color-transfer.txt)"
$SN models
