"""--eval_images inputs: folder trees, webdataset shards, TFRecords. Configuration errors raise when
the pipeline is built; bad or damaged content becomes named, keyed error records (issue #10)."""
import logging
import struct
import tarfile

import pytest

from dedup.eval_inputs import (EvalInputError, EvalSource, expand_eval_sources, iter_eval_images,
                               load_eval_image, read_eval_source)
from tests.dedup import fixtures
from tests.pipeline.image_factory import bomb_png_header


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    return fixtures.write_eval_set(str(tmp_path_factory.mktemp("eval")))


def png(seed: int) -> bytes:
    return fixtures.encode(fixtures.make_image(seed), "PNG")


def read(path: str, kind: str):
    """(good keys, [(eval_key, file, error)]) of one source; every error has a detail."""
    items = list(read_eval_source(EvalSource(kind, path)))
    errors = [item for item in items if isinstance(item, dict)]
    assert all(error["detail"] for error in errors)
    return ([item[0] for item in items if not isinstance(item, dict)],
            [(e["eval_key"], e["file"], e["error"]) for e in errors])


def three_member_tar(path: str) -> list:
    """a.png, b.png, c.png; returns their TarInfos (header offset, data offset, size)."""
    fixtures.write_tar(path, {"a.png": png(1), "b.png": png(2), "c.png": png(3)})
    with tarfile.open(path) as tar:
        return tar.getmembers()


def test_all_three_kinds_give_keyed_images(eval_set):
    got = dict(iter_eval_images(eval_set["globs"]))
    assert sorted(got) == sorted(eval_set["keys"].values())
    assert got[eval_set["keys"]["e0"]] == fixtures.encode(eval_set["images"]["e0"])
    assert got[eval_set["keys"]["e2"]] == fixtures.encode(eval_set["images"]["e2"])  # .txt skipped
    for name in ("e1", "e3", "e5"):
        assert load_eval_image(eval_set["keys"][name]) == got[eval_set["keys"][name]]


def test_a_file_matched_twice_is_indexed_once(eval_set):
    tar = eval_set["globs"][1]
    assert len(expand_eval_sources([tar, tar])) == 1


def test_missing_glob(tmp_path):
    with pytest.raises(EvalInputError, match="matches no file or folder"):
        expand_eval_sources([str(tmp_path / "val/*.JPEG")])
    with pytest.raises(EvalInputError, match="no --eval_images"):
        expand_eval_sources([])


def test_folder_without_images_and_unknown_kinds(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "empty_dir" / "notes.txt").write_text("x")
    with pytest.raises(EvalInputError, match="contains no image files"):
        expand_eval_sources([str(tmp_path / "empty_dir")])
    (tmp_path / "data.csv").write_text("a,b")
    with pytest.raises(EvalInputError, match="unknown kind"):
        expand_eval_sources([str(tmp_path / "data.csv")])
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(EvalInputError, match="empty"):
        expand_eval_sources([str(tmp_path / "zero.png")])


def test_bad_image_files_are_named_errors_not_failures(tmp_path, caplog):
    (tmp_path / "a_good.png").write_bytes(png(1))
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    (tmp_path / "bomb.png").write_bytes(bomb_png_header(20000, 20000))  # 400 Mpx > 89.5 Mpx cap
    (tmp_path / "cut.jpg").write_bytes(fixtures.encode(fixtures.make_image(2), "JPEG")[:1000])
    (tmp_path / "z_good.png").write_bytes(png(3))
    folder = str(tmp_path)
    skipped = []
    with caplog.at_level(logging.WARNING):
        good = [key for key, _ in iter_eval_images([folder], skipped)]
    assert good == [f"{folder}/a_good.png", f"{folder}/z_good.png"]
    assert [(e["eval_key"], e["file"], e["error"]) for e in skipped] == [
        (f"{folder}/bad.png", f"{folder}/bad.png", "not_an_image"),
        (f"{folder}/bomb.png", f"{folder}/bomb.png", "decompression_bomb"),
        (f"{folder}/cut.jpg", f"{folder}/cut.jpg", "truncated_image")]
    warning, = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "3 EVAL IMAGE(S) COULD NOT BE READ" in warning and "may remain in the training" in warning
    assert f"{folder}/bad.png, {folder}/bomb.png, {folder}/cut.jpg" in warning
    # Without a `skipped` list: no exception either, the same good images and the same warning.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert [key for key, _ in iter_eval_images([folder])] == good
    assert "3 EVAL IMAGE(S)" in caplog.text


def test_tar_cut_short_keeps_the_members_before_the_cut(tmp_path):
    path = str(tmp_path / "cut.tar")
    a, b, c = three_member_tar(path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:c.offset_data + 100])  # inside c.png's data
    assert read(path, "tar") == ([f"{path}#a.png", f"{path}#b.png"],
                                 [(path, path, "unreadable_file")])
    open(path, "wb").write(data[:c.offset])  # exactly at a member boundary: no end marker
    assert read(path, "tar") == ([f"{path}#a.png", f"{path}#b.png"],
                                 [(path, path, "unreadable_file")])
    with pytest.raises(EvalInputError, match="unreadable_file"):
        load_eval_image(f"{path}#c.png")


def test_tar_with_a_bad_header_checksum_mid_archive(tmp_path):
    path = str(tmp_path / "flipped.tar")
    a, b, c = three_member_tar(path)
    data = bytearray(open(path, "rb").read())
    data[b.offset] ^= 0x01  # first byte of b.png's name: the header checksum no longer matches
    open(path, "wb").write(bytes(data))
    items = list(read_eval_source(EvalSource("tar", path)))
    assert [item[0] for item in items[:1]] == [f"{path}#a.png"]
    error, = items[1:]
    assert (error["eval_key"], error["file"], error["error"]) == (path, path, "unreadable_file")
    assert f"invalid header at byte {b.offset}" in error["detail"]


def test_bad_members_of_a_tar_are_keyed_by_member(tmp_path):
    path = str(tmp_path / "shard.tar")
    fixtures.write_tar(path, {"a.png": png(1), "bomb.png": bomb_png_header(20000, 20000),
                              "junk.jpg": b"\xff\xd8 junk", "c.png": png(3), "c.txt": b"caption"})
    assert read(path, "tar") == ([f"{path}#a.png", f"{path}#c.png"], [
        (f"{path}#bomb.png", path, "decompression_bomb"),
        (f"{path}#junk.jpg", path, "not_an_image")])
    assert load_eval_image(f"{path}#c.png") == png(3)
    with pytest.raises(EvalInputError, match="not found"):
        load_eval_image(f"{path}#missing.png")


def test_files_without_images(tmp_path):
    path = str(tmp_path / "text.tar")
    fixtures.write_tar(path, {"a.txt": b"only text"})
    assert read(path, "tar") == ([], [(path, path, "no_images_in_file")])
    tfrecord = str(tmp_path / "none.tfrecord")
    open(tfrecord, "wb").write(b"\x00" * 5)  # not even a record header
    assert read(tfrecord, "tfrecord") == ([], [(tfrecord, tfrecord, "unreadable_file")])


def record_offsets(data: bytes) -> list:
    """Byte offset of each record: uint64 length, 4 bytes length CRC, data, 4 bytes data CRC."""
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        offset += 16 + struct.unpack("<Q", data[offset:offset + 8])[0]
    return offsets


def test_tfrecord_with_one_corrupted_record(tmp_path):
    path = str(tmp_path / "eval.tfrecord")
    fixtures.write_tfrecord(path, {f"k{i}": fixtures.make_image(i) for i in range(3)})
    data = bytearray(open(path, "rb").read())
    first, second, third = record_offsets(bytes(data))
    data[second + 12 + 40] ^= 0xFF  # inside the second record's payload: its data CRC fails
    open(path, "wb").write(bytes(data))
    assert read(path, "tfrecord") == ([f"{path}#k0", f"{path}#k2"],
                                      [(f"{path}@{second}", path, "corrupt_record")])


def test_tfrecord_cut_short_and_gzip_without_its_trailer(tmp_path):
    import gzip

    path = str(tmp_path / "cut.tfrecord")
    fixtures.write_tfrecord(path, {f"k{i}": fixtures.make_image(i) for i in range(3)})
    data = open(path, "rb").read()
    third = record_offsets(data)[2]
    open(path, "wb").write(data[:third + 30])  # inside the third record
    assert read(path, "tfrecord") == ([f"{path}#k0", f"{path}#k1"], [(path, path, "unreadable_file")])
    gz = str(tmp_path / "cut.tfrecord.gz")
    open(gz, "wb").write(gzip.compress(data)[:-4])  # the gzip size trailer is missing
    assert read(gz, "tfrecord") == ([f"{gz}#k0", f"{gz}#k1", f"{gz}#k2"], [(gz, gz, "unreadable_file")])


def test_load_eval_image_of_a_path_with_a_hash(tmp_path):
    (tmp_path / "a#b.png").write_bytes(png(4))
    assert load_eval_image(str(tmp_path / "a#b.png")) == png(4)
    with pytest.raises(EvalInputError, match="image_not_found"):
        load_eval_image(str(tmp_path / "gone.png"))


def test_cli_prints_the_count_of_unreadable_images(tmp_path, capsys):
    from dedup.cli import main

    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(png(10 + i))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert main(["fit-centroids", "--images", str(tmp_path), "--output", str(tmp_path / "c.npy"),
                 "--dedup_num_clusters", "2"]) == 0
    err = capsys.readouterr().err
    assert "1 unreadable images skipped" in err and f"{tmp_path}/bad.png: not_an_image" in err
