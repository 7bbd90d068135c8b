"""`ReadRawPairs` (pipeline/readers.py): the Beam wrapper of schemas/input_readers.py."""

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import readers
from tests.pipeline import image_factory as f
from tests.pipeline.hostile_corpus import write_tar

PNG = f.rgb(8, 8)



def test_read_raw_pairs_transform_reads_every_matched_file(tmp_path):
    for shard in range(2):
        write_tar(tmp_path / f"{shard:05d}.tar",
                  [(f"{shard}{i}.{ext}", data) for i in range(3)
                   for ext, data in (("png", PNG), ("txt", b"t"))])
    write_tar(tmp_path / "sorted.tar", [])
    with TestPipeline(runner=FnApiRunner()) as p:
        keys = (p | readers.ReadRawPairs(str(tmp_path / "0*.tar"), "webdataset")
                | beam.Map(lambda r: r["key"]))
        assert_that(keys, equal_to(["00", "01", "02", "10", "11", "12"]))


def test_read_raw_pairs_fetches_named_images_after_a_reshuffle(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "c.tsv").write_bytes(b"one two three\ta.png\nfour five six\tnope.png\n")
    with TestPipeline(runner=FnApiRunner()) as p:
        pairs = (p | readers.ReadRawPairs(str(tmp_path / "*.tsv"), "tsv")
                 | beam.Map(lambda r: (r["key"], r["image"] == PNG, r["read_error"])))
        assert_that(pairs, equal_to([("c.tsv-000000000", True, None),
                                     ("c.tsv-000000001", False, readers.IMAGE_NOT_FOUND)]))
