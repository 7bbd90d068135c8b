#!/usr/bin/env bash
# `pip install '.[curate]'` is the light, TensorFlow-free set a Dataflow worker gets: install it into
# a fresh virtualenv with constraints.txt, prove TensorFlow is absent, and curate the demo sample
# with it (the same align-curate command as scripts/demo.sh, step 1).
#   CURATE_VENV  where the virtualenv goes (default: a new temporary directory, removed at exit)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/align-curate-light.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
VENV=${CURATE_VENV:-$WORK/venv}

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# Non-editable: the worker-like install of the package, from a copy (no build files left in the tree).
cp -r setup.py pipeline dedup schemas trainer "$WORK/"
"$VENV/bin/python" -m pip install -q -c constraints.txt "$WORK[curate]"
"$VENV/bin/python" -m pip check

if "$VENV/bin/python" -c 'import tensorflow' 2>/dev/null; then
  echo "curate_light: FAIL: [curate] installed TensorFlow" >&2; exit 1
fi
for dist in tensorflow tensorflow-text keras keras-hub; do
  if "$VENV/bin/python" -m pip show -q "$dist" >/dev/null 2>&1; then
    echo "curate_light: FAIL: [curate] installed $dist" >&2; exit 1
  fi
done
echo "curate_light: [curate] installed without TensorFlow"

# Run from a directory outside the repository, so that the installed package is what runs.
DEMO=$(pwd)/demo_data
(cd "$WORK" && rm -rf pipeline dedup schemas trainer setup.py && \
  "$VENV/bin/align-curate" --input "$DEMO/webdataset/*.tar" --input_format webdataset \
    --output_dir "$WORK/curated" --vocab_size 2000 --vocab_min_piece_count 2 --top_n_tokens 100000000)
"$VENV/bin/python" - "$WORK/curated" <<'PY'
import json, os, sys
out = sys.argv[1]
stats = json.load(open(os.path.join(out, "stats.json")))
assert stats["kept_pairs"] > 0, stats
assert os.path.getsize(os.path.join(out, "vocab.txt")) > 0
assert "tensorflow" not in sys.modules
shards = os.listdir(os.path.join(out, "tfrecords"))
assert shards, "no TFRecords written"
print(f"curate_light: OK, {stats['input_pairs']} input pairs -> {stats['kept_pairs']} kept, "
      f"{len(shards)} TFRecord shard(s), without TensorFlow")
PY

# The weight-free near-duplicate stage (default pixel embedder, faiss k-means, pHash) with the same
# install: one demo tar as the corpus, the other as "evaluation images".
(cd "$WORK" && "$VENV/bin/align-curate" --input "$DEMO/webdataset/00000.tar" --input_format webdataset \
    --output_dir "$WORK/curated_dedup" --vocab_size 2000 --vocab_min_piece_count 2 \
    --eval_images "$DEMO/webdataset/00001.tar" --dedup_num_clusters 8)
"$VENV/bin/python" - "$WORK/curated_dedup" <<'PY'
import json, os, sys
out = sys.argv[1]
stats = json.load(open(os.path.join(out, "stats.json")))
assert stats["kept_pairs"] > 0, stats
assert os.path.exists(os.path.join(out, "near_duplicates.jsonl"))
print(f"curate_light: OK, dedup stage ran without TensorFlow ({stats['input_pairs']} pairs -> "
      f"{stats['kept_pairs']} kept; near_duplicate_of_eval: "
      f"{stats['dropped'].get('near_duplicate_of_eval', 0)})")
PY
