"""align-curate with --eval_images: dedup/ (appendix A) flags near_duplicate_of_eval by key."""
import csv
import io
import json
import os
import tarfile

from pipeline import curate, reasons

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "demo_data")


def kept_demo_pairs(count):
    with open(os.path.join(DEMO, "MANIFEST.tsv"), newline="", encoding="utf-8") as handle:
        kept = [r["key"] for r in csv.DictReader(handle, delimiter="\t") if r["expected"] == "kept"]
    wanted, members = set(kept[:count]), {}
    for shard in sorted(os.listdir(os.path.join(DEMO, "webdataset"))):
        with tarfile.open(os.path.join(DEMO, "webdataset", shard)) as tar:
            for member in tar:
                if member.name.split(".")[0] in wanted:
                    members[member.name] = tar.extractfile(member).read()
    return sorted(wanted), members


def test_eval_near_duplicates_are_dropped_and_listed(tmp_path):
    keys, members = kept_demo_pairs(6)
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "copy.png").write_bytes(members[f"{keys[2]}.png"])
    out = tmp_path / "out"
    stats = curate.run(["--input", str(tmp_path / "*.tar"), "--input_format", "webdataset",
                        "--output_dir", str(out), "--vocab_size", "100",
                        "--eval_images", str(tmp_path / "eval"), "--dedup_num_clusters", "2",
                        "--dedup_top_clusters", "2", "--dedup_clusters_per_bucket", "1"])
    assert (stats["input_pairs"], stats["kept_pairs"]) == (6, 5)
    assert stats["dropped"][reasons.NEAR_DUPLICATE_OF_EVAL] == 1
    assert stats["filters"][reasons.NEAR_DUPLICATE_OF_EVAL]["applied"] is True
    lines = [json.loads(line) for line in (out / "near_duplicates.jsonl").read_text().splitlines()]
    assert [(d["key"], os.path.basename(d["eval_key"])) for d in lines] == [(keys[2], "copy.png")]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"train {keys[2]}" in html
    # Side by side: the training thumbnail and the evaluation image re-read from its folder.
    section = html[html.index('id="near-duplicates"'):]
    assert section.count('alt="train"') == 1 and section.count('alt="eval"') == 1
