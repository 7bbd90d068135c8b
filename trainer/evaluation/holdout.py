"""Hold out an evaluation split of curated TFRecords by key (stable hash), optionally by group.

    python -m trainer.evaluation.holdout --input 'OUT/tfrecords/train-*.tfrecord' --out_dir SPLIT \
        [--heldout_percent 10] [--meta 'corpus/webdataset/*.tar' --group_field near_duplicate_of_code \
         --class_field category]

writes SPLIT/train-SSSSS-of-NNNNN.tfrecord (what align-train reads), SPLIT/heldout-00000-of-00001.tfrecord
(what `align-eval retrieval --tfrecords` reads), SPLIT/split.json (counts, the rule) and, with
--class_field, SPLIT/heldout_classes/<class>/<key>.jpg (what `align-eval zeroshot` reads) and, with
--train_classes too, SPLIT/train_classes/<class>/<key>.jpg (the k-NN index / linear-probe training set).
A pair is held out when SHA-256("<group>") mod 100 < heldout_percent, where group = the first
non-empty of the --group_field fields (comma-separated) in the pair's webdataset json, else its
key. On the shared real corpus `near_duplicate_of_code,code` puts every emoji skin-tone variant in
the group of its base emoji, so near-duplicates never straddle the split.
"""
import argparse
import hashlib
import json
import re
import sys
from typing import Dict, Iterator, List, Optional

from trainer.evaluation import files


def is_heldout(group: str, heldout_percent: float) -> bool:
    return int(hashlib.sha256(group.encode("utf-8")).hexdigest(), 16) % 100 < heldout_percent


def group_of(key: str, info: dict, group_fields: Optional[str]) -> str:
    for field in (group_fields or "").split(","):
        if field and info.get(field):
            return str(info[field])
    return key


def read_meta(pattern: str) -> Dict[str, dict]:
    """key -> webdataset json of the source corpus (for groups and classes)."""
    from trainer.evaluation.datasets import read_webdataset

    return {pair.key: pair.meta for pair in read_webdataset(pattern)}


def _records(path: str, skipped: List[dict]) -> Iterator[bytes]:
    """The intact records of one TFRecord file (schemas/tfrecord_reader.py, not tf.data, which stops
    the whole split at the first bad CRC); corrupt records and damaged files go to `skipped`."""
    from schemas import input_files, tfrecord_reader

    try:
        with input_files.open_file(path) as handle:
            for record in tfrecord_reader.iter_records(handle, path.lower().endswith(".gz")):
                if isinstance(record, tfrecord_reader.CorruptRecord):
                    skipped.append({"file": path, "error": "corrupt_record", "detail": record.reason})
                else:
                    yield record
    except Exception as error:  # noqa: BLE001  damaged framing, unreadable file: named, counted
        skipped.append({"file": path, "error": "unreadable_file", "detail": f"{path}: {error}"})


def class_dir_name(name: str) -> str:
    return re.sub(r"[/\\\x00]", "_", name).strip() or "unknown"


def split(input_glob: str, out_dir: str, heldout_percent: float, meta: Optional[Dict[str, dict]] = None,
          group_field: Optional[str] = None, class_field: Optional[str] = None, num_train_shards: int = 4,
          train_classes: bool = False) -> dict:
    import tensorflow as tf

    from schemas import example_schema as es
    from trainer.evaluation.datasets import expand_glob

    meta = meta or {}
    files.makedirs(out_dir)  # local or gs:// (TFRecordWriter and trainer/evaluation/files write both)
    train_writers = [tf.io.TFRecordWriter(files.join(out_dir, f"train-{i:05d}-of-{num_train_shards:05d}.tfrecord"))
                     for i in range(num_train_shards)]
    heldout_writer = tf.io.TFRecordWriter(files.join(out_dir, "heldout-00000-of-00001.tfrecord"))
    counts = {"train": 0, "heldout": 0, "heldout_with_class": 0}
    classes: Dict[str, int] = {}
    skipped: List[dict] = []
    made = set()
    for path in expand_glob(input_glob):
        for record in _records(path, skipped):
            try:
                ex = es.parse_example_dict(record)
                key = ex[es.KEY].decode("utf-8")
            except Exception as error:  # noqa: BLE001  not an Example of schemas/: named, counted
                skipped.append({"file": path, "error": "malformed_example", "detail": str(error)[:200]})
                continue
            info = meta.get(key, {})
            group = group_of(key, info, group_field)
            heldout = is_heldout(group, heldout_percent)
            if heldout:
                heldout_writer.write(record)
                counts["heldout"] += 1
            else:
                train_writers[counts["train"] % num_train_shards].write(record)
                counts["train"] += 1
            if class_field and info.get(class_field) and (heldout or train_classes):
                name = class_dir_name(str(info[class_field]))
                folder = files.join(out_dir, "heldout_classes" if heldout else "train_classes", name)
                if folder not in made:  # once per folder: a request each on an object store
                    files.makedirs(folder)
                    made.add(folder)
                files.write_bytes(files.join(folder, f"{key}.jpg"), ex[es.IMAGE_ENCODED])
                if heldout:
                    classes[name] = classes.get(name, 0) + 1
                    counts["heldout_with_class"] += 1
    for writer in train_writers + [heldout_writer]:
        writer.close()
    summary = {"input": input_glob, "heldout_percent": heldout_percent, "group_field": group_field,
               "class_field": class_field, **counts, "heldout_classes": dict(sorted(classes.items())),
               "skipped_records": len(skipped), "skipped": skipped[:100]}
    if skipped:
        print(f"align-eval split: warning: {len(skipped)} record(s) or file(s) unreadable and left out "
              f"(listed in split.json): {skipped[0]['detail']}", file=sys.stderr)
    files.write_text(files.join(out_dir, "split.json"), json.dumps(summary, indent=2))
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", required=True, help="glob of curated TFRecords")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--heldout_percent", type=float, default=10.0)
    p.add_argument("--meta", help="webdataset glob of the source corpus (json per key)")
    p.add_argument("--group_field", help="json field(s), comma-separated, first non-empty groups near-duplicates (default: the key)")
    p.add_argument("--class_field", help="json field with the class, for a held-out class folder")
    p.add_argument("--train_classes", action="store_true", help="with --class_field: also SPLIT/train_classes/")
    p.add_argument("--num_train_shards", type=int, default=4)
    args = p.parse_args(argv)
    if (args.group_field or args.class_field) and not args.meta:
        p.error("--group_field and --class_field need --meta")
    meta = read_meta(args.meta) if args.meta else None
    summary = split(args.input, args.out_dir, args.heldout_percent, meta, args.group_field, args.class_field,
                    args.num_train_shards, args.train_classes)
    print(json.dumps({k: v for k, v in summary.items() if k != "heldout_classes"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
