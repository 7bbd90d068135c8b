"""The export is written to a temporary sibling and renamed into place (issue #10): a failure or a
kill during the export never leaves a half-written export/ and keeps the previous one."""
import json
import os

import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401 - registers the tokenizer ops the export's graph uses

from tests.trainer import standins
from trainer import export


@pytest.fixture(scope="module")
def model_and_cfg(tmp_path_factory):
    return standins.tiny_model_for_export(tmp_path_factory.mktemp("vocab"))


def export_at(model_and_cfg, export_dir, step):
    model, cfg, vocab = model_and_cfg
    return export.export_model(model, cfg, vocab_path=vocab, export_dir=str(export_dir),
                               config_name="tiny_cpu", step=step)


def exported_step(export_dir) -> int:
    with open(os.path.join(export_dir, export.EXPORT_INFO_FILE)) as f:
        return json.load(f)["step"]


def test_export_lands_in_place_and_replaces_the_previous_one(model_and_cfg, tmp_path):
    export_dir = tmp_path / "export"
    assert export_at(model_and_cfg, export_dir, 7) == str(export_dir)
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no tmp sibling left
    export_at(model_and_cfg, str(export_dir) + "/", 8)  # a trailing slash names the same export
    assert sorted(os.listdir(tmp_path)) == ["export"]  # nor the previous export, moved aside
    assert exported_step(export_dir) == 8
    loaded = tf.saved_model.load(str(export_dir))
    embedding = loaded.signatures["embed_text"](texts=tf.constant(["a cat"]))["embedding"]
    assert embedding.shape == (1, 8)


def test_failure_while_writing_keeps_the_previous_export(model_and_cfg, tmp_path, monkeypatch):
    export_dir = tmp_path / "export"
    export_at(model_and_cfg, export_dir, 7)
    before = sorted(os.listdir(export_dir))
    written = []

    def save_then_fail(obj, path, signatures=None, **kwargs):  # a crash mid-write
        os.makedirs(os.path.join(path, "variables"))
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        written.append(path)
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export_at(model_and_cfg, export_dir, 8)
    assert written and written[0] != str(export_dir)  # it wrote elsewhere than export/
    assert sorted(os.listdir(tmp_path)) == ["export"]  # and removed what it wrote
    assert sorted(os.listdir(export_dir)) == before and exported_step(export_dir) == 7
    monkeypatch.undo()
    assert "embed_image" in tf.saved_model.load(str(export_dir)).signatures


def test_failed_rename_puts_the_previous_export_back(model_and_cfg, tmp_path, monkeypatch):
    export_dir = tmp_path / "export"
    export_at(model_and_cfg, export_dir, 7)
    rename = tf.io.gfile.rename

    def rename_fails_for_the_new_export(src, dst, overwrite=False):
        if ".tmp-" in src:
            raise OSError("rename failed")
        return rename(src, dst, overwrite)

    monkeypatch.setattr(tf.io.gfile, "rename", rename_fails_for_the_new_export)
    with pytest.raises(OSError, match="rename failed"):
        export_at(model_and_cfg, export_dir, 8)
    assert sorted(os.listdir(tmp_path)) == ["export"] and exported_step(export_dir) == 7


def test_leftovers_of_a_killed_export_with_the_same_pid_are_replaced(model_and_cfg, tmp_path):
    export_dir = tmp_path / "export"
    export_at(model_and_cfg, export_dir, 7)
    for suffix in ("tmp", "old"):  # a killed run of the same pid (pid 1 in containers)
        stale = tmp_path / f"export.{suffix}-{os.getpid()}"
        os.makedirs(stale / "variables")
        (stale / "saved_model.pb").write_bytes(b"stale")
    export_at(model_and_cfg, export_dir, 8)
    assert sorted(os.listdir(tmp_path)) == ["export"] and exported_step(export_dir) == 8
    assert "embed_image" in tf.saved_model.load(str(export_dir)).signatures
