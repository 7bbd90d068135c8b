"""The pluggable unsafe scorer: a user SavedModel through RunInference, a score field, or nothing."""
import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import reasons, unsafe
from schemas import image_decode as image_io
from pipeline.options import CurationConfig
from tests.pipeline import image_factory as f


class MeanRedScorer(tf.Module):
    """Stand-in classifier: [batch, 2] scores, column 1 = mean red value (1.0 for pure red)."""

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32, name="images")])
    def serve(self, images):
        red = tf.reduce_mean(images[..., 0], axis=[1, 2])
        return {"probabilities": tf.stack([1.0 - red, red], axis=1)}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("unsafe_model"))
    module = MeanRedScorer()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def candidate(key, rgb, score=None):
    jpeg = image_io.reencode_image(f.rgb(300, 300, rgb)).jpeg
    return {"key": key, "jpeg": jpeg, "unsafe_score": score}


def test_saved_model_scores_through_run_inference(model_path):
    config = CurationConfig(unsafe_model_path=model_path, unsafe_model_input_px=32,
                            unsafe_score_index=1, unsafe_threshold=0.5)
    with TestPipeline(runner=FnApiRunner()) as p:
        result = p | beam.Create([candidate("red", (255, 0, 0)), candidate("blue", (0, 0, 255)),
                                  candidate("pink", (255, 120, 120))]) | unsafe.ScoreUnsafe(config)
        assert_that(result["flags"], equal_to([("red", reasons.UNSAFE), ("pink", reasons.UNSAFE)]))
        assert_that(result["summary"] | beam.Map(
            lambda s: (s["applied"], s["mode"], s["scored_pairs"], s["unsafe_pairs"])),
            equal_to([(True, "saved_model", 3, 2)]), label="Summary")


def test_handler_picks_the_score_column(model_path):
    handler = unsafe.SavedModelScoreHandler(model_path, score_index=0)
    model = handler.load_model()
    batch = [np.full((32, 32, 3), 255, np.uint8), np.zeros((32, 32, 3), np.uint8)]
    assert handler.run_inference(batch, model) == pytest.approx([0.0, 1.0])


def test_score_field_threshold_is_inclusive_and_missing_scores_are_counted():
    config = CurationConfig(unsafe_score_field="punsafe", unsafe_threshold=0.5)
    rows = [{"key": "a", "unsafe_score": 0.5}, {"key": "b", "unsafe_score": 0.4999},
            {"key": "c", "unsafe_score": None}]
    with TestPipeline(runner=FnApiRunner()) as p:
        result = p | beam.Create(rows) | unsafe.ScoreUnsafe(config)
        assert_that(result["flags"], equal_to([("a", reasons.UNSAFE)]))
        assert_that(result["summary"] | beam.Map(
            lambda s: (s["applied"], s["scored_pairs"], s["unscored_pairs"])),
            equal_to([(True, 2, 1)]), label="Summary")


def test_summary_never_says_applied_without_scores():
    config = CurationConfig(unsafe_score_field="punsafe")
    assert unsafe.summarize("none", CurationConfig(), 0, 5, 0)["note"].startswith("NOT APPLIED")
    no_scores = unsafe.summarize("score_field", config, 0, 5, 0)
    assert (no_scores["applied"], no_scores["note"][:11]) == (False, "NOT APPLIED")
    assert unsafe.unsafe_mode(config) == "score_field"
