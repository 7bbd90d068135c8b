"""align-dedup calibrate with its eval images and its --output_json on a remote file system.

TensorFlow's in-memory ram:// stands in for gs://: Beam has no file system for it, so
schemas/input_files.py reaches it through tf.io.gfile (as it does gs:// without apache-beam[gcp]).
"""
import json
import os
import uuid

import pytest

tf = pytest.importorskip("tensorflow")

from dedup.cli import main  # noqa: E402
from tests.dedup import fixtures  # noqa: E402


def test_calibrate_reads_and_writes_under_ram(tmp_path, monkeypatch, capsys):
    gfile = tf.io.gfile
    root = f"ram://dedup-test-{uuid.uuid4().hex[:12]}"
    gfile.makedirs(f"{root}/imgs")
    for i in range(6):
        with gfile.GFile(f"{root}/imgs/{i}.png", "wb") as f:
            f.write(fixtures.encode(fixtures.make_image(700 + i)))
    monkeypatch.chdir(tmp_path)
    try:
        for _ in range(2):  # the second run replaces the table
            assert main(["calibrate", "--eval_images", f"{root}/imgs", "--families", "jpeg_30_90",
                         "--thresholds", "0.975", "--output_json", f"{root}/out/cal.json"]) == 0
        with gfile.GFile(f"{root}/out/cal.json", "rb") as f:
            table = json.loads(f.read())
        assert table["images"] == 6 and table["rows"][0]["recall_by_family"] == {"jpeg_30_90": 1.0}
        assert os.listdir(tmp_path) == []
    finally:
        try:
            gfile.rmtree(root)  # only frees memory: ram:// lives as long as the process
        except tf.errors.NotFoundError:
            pass
    capsys.readouterr()
