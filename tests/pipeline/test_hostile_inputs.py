"""align-curate on hostile files in all three formats: the job never fails, and every input pair
gets exactly its named fate in stats.json and one outcomes line (tests/pipeline/hostile_corpus.py
lists each class and its fate; docs/PIPELINE.md "Bad input" is the same table)."""
import glob
import json
import os

import pytest

from pipeline import curate
from tests.pipeline import hostile_corpus


def run_curate(tmp_path, input_format, pattern, *extra):
    out = str(tmp_path / "out")
    stats = curate.run(["--input", pattern, "--input_format", input_format, "--output_dir", out,
                        "--vocab_size", "50", "--vocab_min_piece_count", "1",
                        "--max_image_bytes", str(hostile_corpus.MAX_IMAGE_BYTES), *extra])
    lines = []
    for path in sorted(glob.glob(os.path.join(out, "outcomes", "*.jsonl"))):
        with open(path, encoding="utf-8") as handle:
            lines += handle.read().splitlines()  # splitlines: U+2028 in a key must not split
    outcomes = [json.loads(line) for line in lines]
    return stats, outcomes


def check(stats, outcomes, expected, prefix_fates=()):
    """One outcome per input pair, each with its exact fate; stats count the same."""
    assert len(outcomes) == stats["input_pairs"]
    by_key = {}
    for outcome in outcomes:
        assert outcome["key"] not in by_key, f"two outcomes for {outcome['key']!r}"
        by_key[outcome["key"]] = outcome
    got = {k: (o["status"], o["reason"]) for k, o in by_key.items()}
    for prefix, fate in prefix_fates:
        matched = {k for k in got if k.startswith(prefix)}
        assert matched and all(got.pop(k) == fate for k in matched), prefix
    assert got == expected
    counted = {("kept", None): stats["kept_pairs"]}
    counted.update({("dropped", r): n for r, n in stats["dropped"].items() if n})
    counted.update({("error", e): n for e, n in stats["errors"].items() if n})
    tally = {}
    for outcome in outcomes:
        fate = (outcome["status"], outcome["reason"])
        tally[fate] = tally.get(fate, 0) + 1
    assert {k: v for k, v in counted.items() if v} == tally
    for outcome in outcomes:
        assert outcome["file"], outcome  # every outcome names its input file
        if outcome["reason"] == "unreadable_file":
            assert outcome["detail"].startswith(outcome["file"] + ": ")
    return by_key


def test_hostile_webdataset_never_fails_the_job_and_names_every_pair(tmp_path):
    (tmp_path / "in").mkdir()
    expected = hostile_corpus.write_webdataset(str(tmp_path / "in"))
    stats, outcomes = run_curate(tmp_path, "webdataset", str(tmp_path / "in" / "*.tar"))
    by_key = check(stats, outcomes, expected)
    assert by_key["g0"]["file"] == str(tmp_path / "in" / "good.tar")
    assert "end-of-archive" in by_key[f"{tmp_path}/in/cut.tar#unreadable_file"]["detail"]
    assert "invalid header" in by_key[f"{tmp_path}/in/checksum.tar#unreadable_file"]["detail"]


def test_hostile_tsv_paths_and_compressed_files(tmp_path):
    (tmp_path / "in").mkdir()
    expected = hostile_corpus.write_tsv(str(tmp_path / "in"))
    stats, outcomes = run_curate(tmp_path, "tsv", str(tmp_path / "in" / "*.tsv*"))
    check(stats, outcomes, expected,
          prefix_fates=[("cut.tsv.gz-", ("error", "image_not_found"))])


def test_hostile_parquet_files_and_columns(tmp_path):
    (tmp_path / "in").mkdir()
    expected = hostile_corpus.write_parquet(str(tmp_path / "in"))
    stats, outcomes = run_curate(tmp_path, "parquet", str(tmp_path / "in" / "*.parquet"))
    check(stats, outcomes, expected)


@pytest.mark.parametrize("flag", ["--min_word", "--no_such_flag"])
def test_a_misspelled_flag_is_an_error_naming_it(tmp_path, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        curate.run(["--input", "x", "--input_format", "tsv", "--output_dir", str(tmp_path),
                    flag, "1"])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err
