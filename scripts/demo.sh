#!/usr/bin/env bash
# `make demo`: the whole system on the bundled sample (demo_data/, public domain; ATTRIBUTION.md):
# curate -> train tiny_cpu briefly -> export -> build a search index -> answer a text query.
# About 5 minutes on 2 CPU cores. DEMO_STEPS=0 stops after the curation.
set -euo pipefail
OUT=${1:-demo_output}
STEPS=${DEMO_STEPS:-200}
PY=.venv/bin/python
export TF_CPP_MIN_LOG_LEVEL=2
rm -rf "$OUT"

echo "== 1/4 align-curate: demo_data/ -> $OUT/curated"
# --vocab_min_piece_count 2: on a few hundred pairs the learner's default (10) leaves ~100 pieces.
$PY -m pipeline.curate \
  --input 'demo_data/webdataset/*.tar' --input_format webdataset \
  --output_dir "$OUT/curated" --vocab_size 2000 --vocab_min_piece_count 2 --top_n_tokens 100000000
if [ "$STEPS" = "0" ]; then
  echo "Report: $OUT/curated/report.html"; exit 0
fi

echo "== 2/4 align-train --config tiny_cpu ($STEPS steps) + export"
$PY -m trainer.train --config tiny_cpu \
  --data "$OUT/curated/tfrecords/train-*.tfrecord" --vocab "$OUT/curated/vocab.txt" \
  --workdir "$OUT/train" --steps "$STEPS" 2>&1 | grep -v -E '^(I|W)0000|oneDNN|cuda' || true
test -f "$OUT/train/export/saved_model.pb" || { echo "training/export failed" >&2; exit 1; }

echo "== 3/4 align-search build: index the curated pairs"
$PY -m trainer.search.cli build --model "$OUT/train/export" \
  --input "$OUT/curated/tfrecords/train-*.tfrecord" --input_format tfrecord \
  --index_dir "$OUT/index" 2>&1 | grep -v -E '^(I|W)0000|oneDNN|cuda' || true

echo "== 4/4 align-search query: \"a red flag\""
$PY -m trainer.search.cli query --index_dir "$OUT/index" --text "a red flag" --k 5 \
  2>&1 | grep -v -E '^(I|W)0000|oneDNN|cuda'

echo
echo "Curated TFRecords: $OUT/curated/tfrecords/"
echo "Vocabulary:        $OUT/curated/vocab.txt"
echo "Stats:             $OUT/curated/stats.json"
echo "Audit report:      $OUT/curated/report.html"
echo "Pair outcomes:     $OUT/curated/outcomes/  (key, status, reason of every pair)"
echo "Model export:      $OUT/train/export/  (TensorBoard logs: $OUT/train/tensorboard)"
echo "Search index:      $OUT/index/  (browse: .venv/bin/align-search serve --index_dir $OUT/index)"
