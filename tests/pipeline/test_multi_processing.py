"""align-curate with --runner=DirectRunner --direct_running_mode=multi_processing (worker processes)."""
import io
import json
import tarfile

from pipeline import curate
from tests.pipeline import image_factory as f


def test_multi_processing_run_writes_the_same_outcomes(tmp_path):
    members = []
    for i, (size, text) in enumerate([((300, 300), "a red bus on the street"),
                                      ((300, 300), "two words"),
                                      ((150, 300), "a small red bus here"),
                                      ((400, 300), "a blue bus on the street")]):
        members += [(f"{i:03d}.png", f.rgb(*size, (i * 40, 10, 10))), (f"{i:03d}.txt", text.encode())]
    members += [("004.png", b""), ("004.txt", b"empty image bytes here")]
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    stats = curate.run(["--input", str(tmp_path / "*.tar"), "--input_format", "webdataset",
                        "--output_dir", str(out), "--vocab_size", "100",
                        "--runner=DirectRunner", "--direct_running_mode=multi_processing",
                        "--direct_num_workers=2"])
    assert stats == json.loads((out / "stats.json").read_text())
    assert (stats["input_pairs"], stats["kept_pairs"]) == (5, 2)
    assert {r: n for r, n in stats["dropped"].items() if n} == {"too_few_words": 1,
                                                                 "image_too_small": 1}
    assert {e: n for e, n in stats["errors"].items() if n} == {"empty_image": 1}
    assert list((out / "tfrecords").glob("train-*-of-*.tfrecord"))
