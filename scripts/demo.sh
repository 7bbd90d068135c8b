#!/usr/bin/env bash
# `make demo`: curate the bundled sample (demo_data/, public domain) end to end.
set -euo pipefail
OUT=${1:-demo_output}
PY=.venv/bin/python
rm -rf "$OUT"
$PY -m pipeline.curate \
  --input 'demo_data/webdataset/*.tar' --input_format webdataset \
  --output_dir "$OUT/curated" --vocab_size 2000 --top_n_tokens 100000000
echo
echo "Curated TFRecords: $OUT/curated/tfrecords/"
echo "Vocabulary:        $OUT/curated/vocab.txt"
echo "Stats:             $OUT/curated/stats.json"
echo "Audit report:      $OUT/curated/report.html"
