import glob
import json
import os

from tests.trainer.evaluation import fixtures_data as fd
from trainer.evaluation import holdout
from trainer.evaluation.datasets import read_tfrecord_pairs


def test_is_heldout_is_a_stable_hash():
    import hashlib

    assert holdout.is_heldout("k3", 50) == (int(hashlib.sha256(b"k3").hexdigest(), 16) % 100 < 50)
    assert not holdout.is_heldout("anything", 0) and holdout.is_heldout("anything", 100)


def test_split_keeps_groups_together_and_writes_classes(tmp_path):
    pairs = [(f"k{i}", ("red", "blue")[i % 2], f"text {i}") for i in range(40)]
    records = fd.write_tfrecords(tmp_path / "in.tfrecord", pairs)
    # k0..k9 all derive from one "emoji": they must land on the same side.
    # k0 is the base emoji (code "wave"), k1..k9 its variants (near_duplicate_of "wave").
    meta = {f"k{i}": {"near_duplicate_of": "wave" if 0 < i < 10 else None, "code": "wave" if i == 0 else None,
                      "category": ("Warm", "Cool")[i % 2]} for i in range(40)}
    summary = holdout.split(records, str(tmp_path / "out"), 30, meta, "near_duplicate_of,code", "category",
                            num_train_shards=2, train_classes=True)
    heldout = [p.key for p in read_tfrecord_pairs(str(tmp_path / "out" / "heldout-*.tfrecord"))]
    train = [p.key for p in read_tfrecord_pairs(str(tmp_path / "out" / "train-*.tfrecord"))]
    assert sorted(heldout + train) == sorted(k for k, _, _ in pairs)
    group_side = {k in heldout for k in (f"k{i}" for i in range(10))}
    assert group_side == {holdout.is_heldout("wave", 30)}
    expected = [f"k{i}" for i in range(10, 40) if holdout.is_heldout(f"k{i}", 30)]
    assert [k for k in heldout if int(k[1:]) >= 10] == expected
    assert summary["heldout"] == len(heldout) and summary["train"] == len(train)
    written = sorted(os.path.relpath(p, tmp_path / "out" / "heldout_classes")
                     for p in glob.glob(str(tmp_path / "out" / "heldout_classes" / "*" / "*.jpg")))
    assert written == sorted(f"{('Warm', 'Cool')[int(k[1:]) % 2]}/{k}.jpg" for k in heldout)
    assert json.loads((tmp_path / "out" / "split.json").read_text())["heldout_with_class"] == len(heldout)
    assert len(glob.glob(str(tmp_path / "out" / "train_classes" / "*" / "*.jpg"))) == len(train)


def test_split_skips_and_counts_a_corrupted_record(tmp_path):
    from tests.trainer.evaluation.fixtures_damaged import corrupt_record

    pairs = [(f"k{i}", "red", f"text {i}") for i in range(5)]
    records = fd.write_tfrecords(tmp_path / "in.tfrecord", pairs)
    offset = corrupt_record(records, 2)
    summary = holdout.split(records, str(tmp_path / "out"), 50, num_train_shards=1)
    assert summary["train"] + summary["heldout"] == 4  # k2 left out, named, not the whole split
    assert summary["skipped_records"] == 1
    assert summary["skipped"] == [{"file": records, "error": "corrupt_record",
                                   "detail": f"corrupted record at byte {offset} (data CRC)"}]
