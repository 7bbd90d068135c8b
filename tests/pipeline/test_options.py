"""align-curate's flags: ours make a CurationConfig, Beam's pass untouched, others exit 2."""
import pytest
from apache_beam.options.pipeline_options import (DebugOptions, DirectOptions, PipelineOptions,
                                                  StandardOptions)

from pipeline.options import CurationConfig, build_parser, parse_all, parse_args

BASE = ["--input", "x/*.tar", "--input_format", "webdataset", "--output_dir", "out"]


class _UserOptions(PipelineOptions):  # a user's own options, as Beam's docs define them
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--test_options_user_flag")
        parser.add_value_provider_argument("--test_options_vp_flag")


class _UserSubOptions(_UserOptions):  # a subclass of a subclass: view_as() accepts its flags too
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--test_options_sub_flag", type=int)


def rejected(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_all(BASE + argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, named", [(["--min_word", "1"], "--min_word 1"),
                                         (["--min_word=1"], "--min_word=1")])
def test_misspelled_flag_is_an_error_naming_it_and_the_close_match(argv, named, capsys):
    assert rejected(argv, capsys) == (
        f"align-curate: error: unrecognized arguments: {named} (not an align-curate flag and not a "
        "Beam pipeline option); did you mean --min_words instead of --min_word?")


@pytest.mark.parametrize("argv, named", [(["--no_such_flag", "1"], "--no_such_flag 1"),
                                         (["--no_such_flag"], "--no_such_flag"),
                                         (["stray"], "stray"),
                                         (["--runner", "DirectRunner", "-x"], "-x")])
def test_flag_unknown_to_us_and_to_beam_is_an_error(argv, named, capsys):
    assert rejected(argv, capsys) == (f"align-curate: error: unrecognized arguments: {named} (not "
                                      "an align-curate flag and not a Beam pipeline option)")


def test_bad_value_of_a_beam_flag_is_an_error(capsys):
    assert "--direct_running_mode: invalid choice: 'bogus'" in rejected(
        ["--direct_running_mode", "bogus"], capsys)


def test_beam_flags_pass_through_untouched():
    beam = ["--runner", "DirectRunner", "--direct_num_workers", "2", "--experiments=x",
            "--experiments", "y", "--direct_running_mode=multi_processing", "--project", "p",
            "--region", "r", "--temp_location=gs://b/tmp", "--setup_file", "./setup.py",
            "--num_workers", "4", "--sdk_container_image", "img:1", "--save_main_session"]
    config, beam_args = parse_args(BASE[:2] + beam[:4] + BASE[2:] + ["--min_words", "1"] + beam[4:])
    assert config.min_words == 1 and beam_args == beam
    options = PipelineOptions(beam_args)
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert options.view_as(DirectOptions).direct_num_workers == 2
    assert options.view_as(DebugOptions).experiments == ["x", "y"]


def test_options_of_user_pipeline_options_subclasses_pass_through():
    beam = ["--test_options_user_flag", "u", "--test_options_vp_flag=v",
            "--test_options_sub_flag", "3"]
    assert parse_args(BASE + beam)[1] == beam


def test_our_flags_and_the_dedup_flags_parse():
    config, dedup_config, beam_args = parse_all(BASE + [
        "--min_words", "1", "--max_caption_bytes", "100", "--max_image_bytes", "2048",
        "--image_read_timeout_s", "2.5", "--no-write_outcomes", "--eval_images", "e/*.tar",
        "--eval_images", "f", "--dedup_num_clusters", "8", "--dedup_cosine_threshold", "0.9"])
    assert (config.min_words, config.max_caption_bytes, config.max_image_bytes,
            config.image_read_timeout_s, config.write_outcomes) == (1, 100, 2048, 2.5, False)
    assert dedup_config.eval_image_globs == ("e/*.tar", "f") and dedup_config.num_clusters == 8
    assert dedup_config.cosine_threshold == 0.9 and beam_args == []


def test_protection_defaults_and_help():
    config = CurationConfig()
    assert (config.max_caption_bytes, config.max_image_bytes, config.image_read_timeout_s) == (
        65536, 64 * 1024 * 1024, 60.0)
    help_text = " ".join(build_parser().format_help().split())
    assert "caption_too_long" in help_text
    assert "image_file_too_large errors, never read into memory" in help_text
    assert "image_read_timeout errors" in help_text
