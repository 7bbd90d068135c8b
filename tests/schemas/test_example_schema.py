import tensorflow as tf

import schemas


def test_round_trip_through_tf_data(tmp_path):
    example = schemas.make_example(
        image_jpeg=b"\xff\xd8jpeg", height=240, width=320, text="a red bus",
        raw_text="A  red&nbsp;bus", key="000000042", url="http://x/y.jpg",
        original_height=480, original_width=640, image_sha256="ab" * 32)
    path = str(tmp_path / "one.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(example.SerializeToString())
    parsed = next(iter(tf.data.TFRecordDataset(path).map(schemas.parse_example)))
    assert parsed[schemas.IMAGE_ENCODED].numpy() == b"\xff\xd8jpeg"
    assert parsed[schemas.IMAGE_HEIGHT].numpy() == 240
    assert parsed[schemas.IMAGE_WIDTH].numpy() == 320
    assert parsed[schemas.TEXT].numpy().decode() == "a red bus"
    assert parsed[schemas.RAW_TEXT].numpy().decode() == "A  red&nbsp;bus"
    assert parsed[schemas.KEY].numpy() == b"000000042"
    assert parsed[schemas.ORIGINAL_WIDTH].numpy() == 640
    plain = schemas.parse_example_dict(example.SerializeToString())
    assert plain[schemas.URL] == b"http://x/y.jpg"
    assert plain[schemas.IMAGE_SHA256] == b"ab" * 32
