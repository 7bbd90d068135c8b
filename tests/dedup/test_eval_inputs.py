"""--eval_images inputs: folder trees, webdataset shards, TFRecords; bad inputs get clear errors."""
import pytest

from dedup.eval_inputs import (EvalInputError, expand_eval_sources, iter_eval_images,
                               load_eval_image)
from tests.dedup import fixtures


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    return fixtures.write_eval_set(str(tmp_path_factory.mktemp("eval")))


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


def test_corrupt_image_in_folder(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(EvalInputError, match=r"corrupt eval image .*bad\.png"):
        list(iter_eval_images([str(tmp_path)]))


def test_truncated_tar_and_tar_without_images(tmp_path):
    good = tmp_path / "good.tar"
    fixtures.write_tar(str(good), {"a.png": fixtures.encode(fixtures.make_image(1), "PNG")})
    data = good.read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[:700])
    with pytest.raises(EvalInputError, match=r"cut\.tar"):
        list(iter_eval_images([str(tmp_path / "cut.tar")]))
    fixtures.write_tar(str(tmp_path / "text.tar"), {"a.txt": b"only text"})
    with pytest.raises(EvalInputError, match="holds no image members"):
        list(iter_eval_images([str(tmp_path / "text.tar")]))


def test_corrupt_tfrecord(tmp_path, eval_set):
    data = open(eval_set["globs"][2], "rb").read()
    (tmp_path / "cut.tfrecord").write_bytes(data[: len(data) // 2])
    with pytest.raises(EvalInputError, match=r"corrupt eval TFRecord .*cut\.tfrecord"):
        list(iter_eval_images([str(tmp_path / "cut.tfrecord")]))
