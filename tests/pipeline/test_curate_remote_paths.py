"""align-curate with its input, evaluation images and every output on an in-memory file system
(TensorFlow's ram:// seen by Beam through tests/pipeline/ram_filesystem.py), as on gs://: the run
reads and writes only there, and nothing lands in the working directory."""
import io
import json
import os
import tarfile
import uuid

import pyarrow.parquet as pq
import pytest

tf = pytest.importorskip("tensorflow")  # ram:// is TensorFlow's file system

from pipeline import curate, reasons  # noqa: E402
from schemas.input_readers import read_webdataset  # noqa: E402
from tests.pipeline import ram_filesystem  # noqa: E402,F401  registers ram:// with Beam
from tests.pipeline.test_curate_dedup import kept_demo_pairs  # noqa: E402

gfile = tf.io.gfile


def put(path: str, data: bytes) -> None:
    gfile.makedirs(path.rsplit("/", 1)[0])
    with gfile.GFile(path, "wb") as f:
        f.write(data)


def get(path: str) -> bytes:
    with gfile.GFile(path, "rb") as f:
        return f.read()


def test_curation_with_dedup_reads_and_writes_only_the_remote_store(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    root = f"ram://align-curate-{uuid.uuid4().hex[:12]}"
    keys, members = kept_demo_pairs(6)
    shard = io.BytesIO()
    with tarfile.open(fileobj=shard, mode="w") as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    put(f"{root}/in/00000.tar", shard.getvalue())
    put(f"{root}/eval/copy.png", members[f"{keys[2]}.png"])
    out = f"{root}/out"

    stats = curate.run(["--input", f"{root}/in/*.tar", "--input_format", "webdataset",
                        "--output_dir", out, "--output_format", "webdataset", "--num_shards", "1",
                        "--vocab_size", "100", "--progress_interval_s", "0",
                        "--eval_images", f"{root}/eval", "--dedup_num_clusters", "2",
                        "--dedup_top_clusters", "2", "--dedup_clusters_per_bucket", "1"])

    assert (stats["input_pairs"], stats["kept_pairs"]) == (6, 5)
    assert stats["dropped"][reasons.NEAR_DUPLICATE_OF_EVAL] == 1
    assert json.loads(get(f"{out}/stats.json"))["kept_pairs"] == 5
    assert get(f"{out}/vocab.txt").startswith(b"[PAD]")
    assert b"near-duplicates" in get(f"{out}/report.html")
    near = [json.loads(line) for line in get(gfile.glob(f"{out}/near_duplicates*.jsonl")[0]).splitlines()]
    assert [(d["key"], d["eval_key"].rsplit("/", 1)[-1]) for d in near] == [(keys[2], "copy.png")]
    outcomes = b"".join(get(p) for p in gfile.glob(f"{out}/outcomes/*.jsonl")).splitlines()
    assert len(outcomes) == 6
    [tar_path] = gfile.glob(f"{out}/webdataset/*.tar")
    kept = sorted(p["key"] for p in read_webdataset(tar_path) if not p.get("read_error"))
    assert kept == sorted(k for k in keys if k != keys[2])
    [meta_path] = gfile.glob(f"{out}/kept_pairs/*.parquet")
    assert sorted(pq.read_table(io.BytesIO(get(meta_path))).column("key").to_pylist()) == kept
    assert os.listdir(cwd) == []
