"""Header inspection, conversions and named errors of pipeline/image_io.py, on generated images."""
import pytest

from schemas import image_decode as image_io
from tests.pipeline import image_factory as f


def test_header_of_plain_png_needs_no_decoding():
    header = image_io.inspect_image(f.rgb(640, 480))
    assert (header.format, header.width, header.height, header.mode) == ("PNG", 640, 480, "RGB")
    assert header.shorter_side_px == 480 and header.aspect_ratio == pytest.approx(640 / 480)


def test_header_of_truncated_image_is_readable_but_decoding_fails():
    data = f.truncated(f.noisy_png(300, 300), 0.5)
    assert image_io.inspect_image(data).width == 300
    assert image_io.reencode_image(data) == image_io.TRUNCATED_IMAGE


def test_truncated_jpeg_is_a_truncated_image_error():
    data = f.truncated(f.encode(f.decode(f.noisy_png(300, 300)), "JPEG"), 0.4)
    assert image_io.reencode_image(data) == image_io.TRUNCATED_IMAGE


@pytest.mark.parametrize("data, error", [
    (b"", image_io.EMPTY_IMAGE),
    (b"<html><body>404 not found</body></html>", image_io.NOT_AN_IMAGE),
    (f.bomb_png_header(), image_io.DECOMPRESSION_BOMB),
    (f.bomb_png_header(10_000, 10_000), image_io.DECOMPRESSION_BOMB),  # 100 Mpx > 89.5 Mpx cap
])
def test_unreadable_bytes_are_named_errors(data, error):
    assert image_io.inspect_image(data) == error
    assert image_io.reencode_image(data) == error


def test_pixel_cap_is_a_flag():
    data = f.rgb(300, 300)
    assert image_io.inspect_image(data, max_image_pixels=300 * 300).width == 300
    assert image_io.inspect_image(data, max_image_pixels=300 * 300 - 1) == image_io.DECOMPRESSION_BOMB


def test_cmyk_jpeg_is_converted_to_rgb():
    result = image_io.reencode_image(f.cmyk_jpeg())
    assert result.conversions == (image_io.CMYK_TO_RGB,)
    red, green, blue = f.decode(result.jpeg).convert("RGB").getpixel((150, 150))
    assert red > 200 and green < 50 and blue < 50


def test_16_bit_grayscale_is_scaled_to_8_bit_not_clipped():
    result = image_io.reencode_image(f.gray16_png(value=32896))  # 32896 / 257 = 128
    assert result.conversions == (image_io.SIXTEEN_BIT_TO_8BIT,)
    assert f.decode(result.jpeg).convert("L").getpixel((10, 10)) in (127, 128, 129)


def test_16_bit_rgb_is_counted():
    result = image_io.reencode_image(f.rgb16_png())
    assert result.conversions == (image_io.SIXTEEN_BIT_TO_8BIT,)
    red, green, blue = f.decode(result.jpeg).getpixel((10, 10))
    assert red > 240 and green < 15 and blue < 15


def test_palette_with_alpha_is_composited_on_white():
    result = image_io.reencode_image(f.palette_alpha_png())
    assert result.conversions == (image_io.ALPHA_ON_WHITE,)
    image = f.decode(result.jpeg)
    assert all(c > 245 for c in image.getpixel((10, 150)))  # transparent -> white
    red, green, blue = image.getpixel((290, 150))
    assert blue > 230 and red < 25 and green < 25


def test_exif_orientation_swaps_header_size_and_rotates_pixels():
    data = f.exif_rotated_jpeg(400, 300, orientation=6)
    header = image_io.inspect_image(data)
    assert (header.width, header.height, header.exif_orientation) == (300, 400, 6)
    result = image_io.reencode_image(data, max_shorter_side_px=1000)
    assert result.conversions == (image_io.EXIF_ROTATED,)
    assert (result.width, result.height) == (300, 400)
    assert (result.original_width, result.original_height) == (300, 400)


def test_animated_gif_keeps_the_first_frame():
    data = f.animated_gif()
    assert image_io.inspect_image(data).n_frames == 2
    result = image_io.reencode_image(data)
    assert result.conversions[0] == image_io.ANIMATED_FIRST_FRAME
    red, green, blue = f.decode(result.jpeg).getpixel((150, 150))
    assert red > 230 and blue < 25  # first frame is red, the second blue


def test_shorter_side_is_capped_and_aspect_kept():
    result = image_io.reencode_image(f.rgb(1000, 500), max_shorter_side_px=346)
    assert (result.width, result.height) == (692, 346)
    assert (result.original_width, result.original_height) == (1000, 500)
    assert result.conversions == (image_io.RESIZED,)
    assert f.decode(result.jpeg).format == "JPEG"


def test_large_jpeg_uses_reduced_decoding_and_reports_the_source_size():
    result = image_io.reencode_image(f.rgb(2000, 1000, fmt="JPEG"), max_shorter_side_px=346)
    assert (result.width, result.height) == (692, 346)
    assert (result.original_width, result.original_height) == (2000, 1000)


def test_small_rgb_image_is_not_resized():
    result = image_io.reencode_image(f.rgb(300, 250))
    assert (result.width, result.height, result.conversions) == (300, 250, ())


def test_grayscale_and_rgba_are_converted():
    gray = f.encode(f.decode(f.rgb(300, 300)).convert("L"))
    assert image_io.reencode_image(gray).conversions == (image_io.GRAYSCALE_TO_RGB,)
    rgba = f.encode(f.decode(f.rgb(300, 300)).convert("RGBA"))
    assert image_io.reencode_image(rgba).conversions == (image_io.ALPHA_ON_WHITE,)


def test_sha256_identifies_the_encoded_bytes():
    assert image_io.sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
