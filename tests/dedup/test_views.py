"""Eval-side views (count, geometry), uniform-border trimming and the aligned check, hand-made."""
import dataclasses
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from dedup import pixel_embedder
from dedup.beam_stage import (FULL_VIEW, MIRROR_VIEW, eval_detail_of, eval_views, verify_candidates,
                              view_geometries, view_geometry)
from dedup.config import DedupConfig
from dedup.images import content_box, content_box_once, trim_uniform_borders
from tests.dedup import fixtures


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def drawing(size=(200, 150), box=(40, 30, 140, 110)) -> Image.Image:
    """Clip art: shapes on a white page, with white margins around `box` (the content)."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    # red lines from corner to corner: the content reaches every edge of `box` without framing
    # it (content_box trims a uniform frame too, as another margin)
    draw.line((x0, y0, x1 - 1, y1 - 1), fill=(200, 20, 20), width=1)
    draw.line((x0, y1 - 1, x1 - 1, y0), fill=(200, 20, 20), width=1)
    draw.ellipse((x0 + 10, y0 + 10, x0 + 50, y0 + 45), fill=(20, 120, 200))
    draw.polygon([(x1 - 40, y1 - 10), (x1 - 10, y1 - 10), (x1 - 25, y0 + 15)], fill=(240, 200, 0))
    return image


def test_default_views_are_the_whole_image_and_15_offset_crops():
    views = view_geometries(DedupConfig())
    assert len(views) == 16 and views[0] == (FULL_VIEW, (0.0, 0.0, 1.0, 1.0, False))
    # every side cut by 0 or 7 %, independently: 2^4 combinations
    cuts = {(round(l, 4), round(t, 4), round(1 - l - w, 4), round(1 - t - h, 4))
            for _, (l, t, w, h, _) in views}
    assert cuts == {(l, t, r, b) for l in (0, 0.07) for t in (0, 0.07) for r in (0, 0.07)
                    for b in (0, 0.07)}
    assert not any(mirrored for _, (*_, mirrored) in views)


def test_view_count_grows_as_one_plus_n_to_the_fourth_plus_extras():
    config = DedupConfig(eval_view_cut_fractions=(0.05, 0.1), eval_view_mirror=True,
                         eval_crop_fractions=(0.8,))
    views = view_geometries(config)
    assert len(views) == 3 ** 4 + 1 + 1  # offset crops (whole image included), centre crop, mirror
    assert views[-1] == (MIRROR_VIEW, (0.0, 0.0, 1.0, 1.0, True))
    assert views[-2] == ("crop0.8", pytest.approx((0.1, 0.1, 0.8, 0.8, False)))
    assert len(view_geometries(DedupConfig(eval_view_cut_fractions=()))) == 1
    for name, geometry in views:  # names round-trip to their geometry
        assert view_geometry(name) == pytest.approx(geometry)


def box_of(name, size):
    """The pixel box a view name describes (fractions rounded to 4 decimals in the name)."""
    left, top, width, height, _ = view_geometry(name)
    w, h = size
    return (round(left * w), round(top * h), round((left + width) * w), round((top + height) * h))


def test_eval_views_are_exact_crops_of_a_full_bleed_image():
    image = fixtures.make_image(3, size=(160, 120))  # a colour field: no uniform margin, no trim
    assert content_box(np.asarray(image)) == (0, 0, 160, 120)
    data = fixtures.encode(image)
    views = list(eval_views(("e", data), DedupConfig(eval_view_mirror=True)))
    assert [key for (key, _), _ in views] == ["e"] * 17
    assert views[0] == (("e", FULL_VIEW), data)  # the whole view is the image's own bytes
    assert views[-1][0] == ("e", MIRROR_VIEW)
    assert np.array_equal(np.asarray(decode(views[-1][1])), np.asarray(ImageOps.mirror(image)))
    boxes = set()
    for (_, name), view_bytes in views[1:-1]:
        box = box_of(name, image.size)
        assert np.array_equal(np.asarray(decode(view_bytes)), np.asarray(image.crop(box))), name
        boxes.add(box)
    # each side cut by 0 or 7 %, independently: 15 crops + the whole view (rounded to pixels:
    # 7 % of 120 px is 8 px, 86 % is 103 px)
    assert len(boxes) == 15
    assert {(11, 0, 160, 112), (0, 8, 160, 120), (11, 8, 149, 111)} <= boxes


def test_pixel_views_are_cut_from_the_image_without_its_margins():
    image = drawing()
    views = dict(eval_views(("e", fixtures.encode(image)), DedupConfig()))
    content = image.crop((40, 30, 140, 110))  # 100 x 80
    assert 1 < len(views) <= 16
    trimming, plain = pixel_embedder.PixelEmbedder(), pixel_embedder.PixelEmbedder(trim_borders=False)
    for (_, name), view_bytes in views.items():
        if name != FULL_VIEW:  # crops of the content, never of the white page; each view is named
            # by the part its embedding is made of (after the embedder trims the crop)
            box = box_of(name, content.size)
            view = decode(view_bytes)
            np.testing.assert_allclose(trimming.embed_image(view),
                                       plain.embed_image(content.crop(box)), atol=1e-6)
    # A SavedModel sees training images as they are: its views keep the margins.
    model_views = dict(eval_views(("e", fixtures.encode(image)),
                                  DedupConfig(embedder="/some/export")))
    assert {decode(b).size for b in model_views.values()} >= {(172, 129), (200, 150)}
    # ... unless it is given them trimmed: then its views are crops of the content, as the pixel one's.
    trimmed_views = dict(eval_views(("e", fixtures.encode(image)),
                                    DedupConfig(embedder="/some/export", savedmodel_trim_borders=True)))
    assert {decode(b).size for k, b in trimmed_views.items() if k[1] != FULL_VIEW} >= {(93, 74), (100, 74)}
    assert all(decode(b).size[0] <= 100 for k, b in trimmed_views.items() if k[1] != FULL_VIEW)


def test_views_are_named_by_the_crop_left_after_the_embedder_trims_them():
    # A stray mark in the top margin: the whole image's content box reaches up to it, and the view
    # that cuts the top 7 % off (the mark) is trimmed again, down to the drawing, as the pixel
    # embedder will trim it. The view's name says so: the aligned check starts from that crop.
    image = drawing(size=(200, 200), box=(40, 60, 140, 140))
    ImageDraw.Draw(image).line((40, 2, 140, 2), fill=(90, 90, 90), width=1)
    assert content_box(np.asarray(image)) == (40, 2, 141, 140)  # the base: 101 x 138
    views = dict(eval_views(("e", fixtures.encode(image)), DedupConfig()))
    tight = [name for _, name in views if box_of(name, (101, 138)) == (0, 58, 100, 138)]
    assert len(tight) == 1  # the view cutting the top 7 % (10 px, the mark): the drawing alone
    assert decode(views[("e", tight[0])]).size == (101, 128)  # what is indexed: the crop itself
    assert len(views) == 16


def test_trimming_a_hand_made_drawing():
    image = drawing()
    assert content_box(np.asarray(image)) == (40, 30, 140, 110)
    assert trim_uniform_borders(image).size == (100, 80)
    # A darker, JPEG-compressed copy on a grey page padded differently keeps the same content.
    copy = ImageOps.expand(image.crop((25, 5, 180, 140)), border=(9, 3, 0, 12), fill="white")
    copy = Image.eval(copy, lambda v: int(v * 0.92))
    copy = decode(fixtures.encode(copy, "JPEG", quality=70))
    left, top, right, bottom = content_box(np.asarray(copy))
    assert (right - left, bottom - top) == pytest.approx((100, 80), abs=2)
    assert (left, top) == pytest.approx((40 - 25 + 9, 30 - 5 + 3), abs=1)
    # Faint light-grey line art stays content; a blank page or a photo-like image is not trimmed.
    faint = Image.new("RGB", (120, 90), "white")
    ImageDraw.Draw(faint).line((30, 20, 90, 70), fill=(225, 225, 225), width=1)
    assert content_box(np.asarray(faint)) == (30, 20, 91, 71)
    assert content_box(np.asarray(Image.new("RGB", (50, 40), "white"))) == (0, 0, 50, 40)
    assert content_box(np.asarray(fixtures.make_image(5))) == (0, 0, 160, 120)


def test_a_coloured_border_around_a_drawing_on_white_is_trimmed_with_the_white_margin():
    image = drawing()  # content (40, 30, 140, 110) on a 200 x 150 white page
    bordered = ImageOps.expand(image, border=(17, 9, 23, 12), fill=(200, 30, 90))
    assert content_box_once(np.asarray(bordered)) == (17, 9, 217, 159)  # the page, margin and all
    assert content_box(np.asarray(bordered)) == (17 + 40, 9 + 30, 17 + 140, 9 + 110)
    # Each round trims the margins of one colour: a frame inside the page is a third round.
    framed = ImageOps.expand(ImageOps.expand(image, border=6, fill="black"), border=10, fill="white")
    assert content_box(np.asarray(framed)) == (16 + 40, 16 + 30, 16 + 140, 16 + 110)
    embedder = pixel_embedder.PixelEmbedder()
    assert float(embedder.embed_image(image) @ embedder.embed_image(bordered)) > 0.999
    # A round that does not cut all four sides is the last: a tricolour keeps two of its stripes
    # (one round cuts the first as a margin; a second would leave the white stripe alone).
    flag = Image.new("RGB", (90, 60), "white")
    ImageDraw.Draw(flag).rectangle((0, 0, 29, 59), fill=(0, 146, 70))
    ImageDraw.Draw(flag).rectangle((60, 0, 89, 59), fill=(206, 43, 55))
    assert content_box(np.asarray(flag)) == content_box_once(np.asarray(flag)) == (30, 0, 90, 60)


def test_trimming_keeps_the_content_when_only_one_side_has_a_margin():
    image = fixtures.make_image(6, size=(120, 100))
    padded = ImageOps.expand(image, border=(0, 0, 0, 30), fill=(0, 0, 0))  # black band at the bottom
    assert content_box(np.asarray(padded)) == (0, 0, 120, 100)


def test_pixel_embedding_of_a_padded_copy_matches_the_original():
    image = drawing()
    padded = ImageOps.expand(image, border=40, fill="white")
    embedder = pixel_embedder.PixelEmbedder()
    cosine = float(embedder.embed_image(image) @ embedder.embed_image(padded))
    assert cosine > 0.999
    untrimmed = pixel_embedder.PixelEmbedder(trim_borders=False)
    assert float(untrimmed.embed_image(image) @ untrimmed.embed_image(padded)) < 0.9


def test_aligned_check_lines_up_an_offset_crop_and_rejects_another_drawing():
    original = fixtures.make_image(11, size=(240, 180))
    config = DedupConfig()
    details = {"e": eval_detail_of(fixtures.encode(original), config),
               "other": eval_detail_of(fixtures.encode(fixtures.make_image(12, (240, 180))), config)}
    # 9 % off the left, 4 % off the top, 2 % off the right, 8 % off the bottom, rescaled, JPEG
    crop = original.crop((22, 7, 235, 166)).resize((300, 225), Image.BICUBIC)
    copy = fixtures.encode(crop, "JPEG", quality=80)
    aligned = verify_candidates(copy, [("e", "cut l0.07 t0 r0 b0.07", 0.9)], details, config)
    assert aligned[0] == "e" and aligned[1] > 0.99
    start_only = pixel_embedder._Aligner(details["e"].pixels,
                                         pixel_embedder.training_detail(decode(copy))).score(
        pixel_embedder.start_cuts(details["e"], (0.07, 0.0, 0.93, 0.93)))
    assert start_only < aligned[1] - 0.01  # the edge search is what lines the copy up
    other = verify_candidates(copy, [("other", FULL_VIEW, 0.9)], details, config)
    assert other[1] < 0.9
    # Candidates at or below verify_candidates_above, or beyond verify_max_candidates, are not run.
    one = dataclasses.replace(config, verify_candidates_above=0.85, verify_max_candidates=1)
    assert verify_candidates(copy, [("e", FULL_VIEW, 0.85)], details, one) is None
    assert verify_candidates(copy, [("other", FULL_VIEW, 0.95), ("e", FULL_VIEW, 0.9)], details,
                             one)[0] == "other"
    # The defaults align the best three above 0.7: the own original wins though it ranks second.
    assert (config.verify_candidates_above, config.verify_max_candidates) == (0.7, 3)
    assert verify_candidates(copy, [("e", FULL_VIEW, 0.7)], details, config) is None
    best = verify_candidates(copy, [("other", FULL_VIEW, 0.95), ("e", "cut l0.07 t0 r0 b0.07", 0.9)],
                             details, config)
    assert best[0] == "e" and best[1] == aligned[1]


def test_mirror_view_is_checked_on_the_mirror_image():
    original = fixtures.make_image(21, size=(200, 150))
    config = DedupConfig(eval_view_mirror=True)
    details = {"e": eval_detail_of(fixtures.encode(original), config)}
    copy = fixtures.encode(ImageOps.mirror(original), "JPEG", quality=85)
    assert verify_candidates(copy, [("e", MIRROR_VIEW, 0.95)], details, config)[1] > 0.99
    assert verify_candidates(copy, [("e", FULL_VIEW, 0.95)], details, config)[1] < 0.9


def test_worst_window_residual_is_the_largest_squared_difference_in_a_12_px_window():
    side = pixel_embedder.DETAIL_SIDE_PX
    assert (side, pixel_embedder.LOCAL_WINDOW_PX) == (48, 12)
    index = lambda row, channel, column: (row * 3 + channel) * side + column  # [row, channel, column]
    training, crop = np.zeros(side * 3 * side, np.float32), np.zeros(side * 3 * side, np.float32)
    # two unit vectors, one pixel each, far apart: no window holds both, each holds 1
    training[index(5, 0, 5)], crop[index(30, 1, 40)] = 1.0, 1.0
    assert pixel_embedder.worst_window_residual(training, crop) == pytest.approx(1.0)
    # 0.1 everywhere: 3 channels x 144 pixels x 0.01 in every window
    assert pixel_embedder.worst_window_residual(
        np.zeros_like(crop), np.full_like(crop, 0.1)) == pytest.approx(4.32, rel=1e-5)
    # the same squared difference in two pixels of one window (rows 13-14: windows at 6 and 12)
    training[:], crop[:] = 0.0, 0.0
    training[index(13, 2, 20)], crop[index(14, 2, 20)] = 1.0, 1.0
    assert pixel_embedder.worst_window_residual(training, crop) == pytest.approx(2.0)


def test_local_weight_caps_a_difference_in_one_place_not_a_copy():
    """A variant of a drawing (an 8 px dot added, like a wink for a smile) lines up as well as a
    copy (cosine > 0.98), but its difference sits in one window; a rescaled, cropped JPEG copy
    differs a little everywhere and keeps its score. Off by default."""
    config = DedupConfig(verify_local_weight=2.0)
    original = drawing(size=(240, 200), box=(20, 20, 220, 180))
    detail = eval_detail_of(fixtures.encode(original), config)
    variant = original.copy()
    ImageDraw.Draw(variant).ellipse((146, 56, 154, 64), fill=(40, 40, 40))
    training = pixel_embedder.training_detail(decode(fixtures.encode(variant, "JPEG", quality=85)))
    cosine = pixel_embedder.aligned_cosine(detail, training)
    score = pixel_embedder.aligned_score(detail, training, local_weight=2.0)
    assert cosine > config.cosine_threshold > 0.975 > score
    assert pixel_embedder.aligned_score(detail, training) == cosine  # weight 0: no cap
    copy = original.crop((8, 5, 235, 196)).resize((300, 260), Image.BICUBIC)
    training = pixel_embedder.training_detail(decode(fixtures.encode(copy, "JPEG", quality=80)))
    assert (pixel_embedder.aligned_score(detail, training, local_weight=2.0)
            == pixel_embedder.aligned_cosine(detail, training) > 0.995)
    # the stage decides on the score: with the weight the variant is no near-duplicate
    details = {"e": detail}
    variant_bytes = fixtures.encode(variant, "JPEG", quality=85)
    assert verify_candidates(variant_bytes, [("e", FULL_VIEW, 0.95)], details, config)[1] == score
    assert verify_candidates(variant_bytes, [("e", FULL_VIEW, 0.95)], details,
                             DedupConfig())[1] == cosine


def light_drawing() -> Image.Image:
    """Clip art in light fills (a yellow, a skin tone, a light grey) that brightening saturates."""
    image = Image.new("RGB", (240, 200), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 120, 180), fill=(250, 215, 60))
    draw.ellipse((100, 40, 220, 160), fill=(245, 205, 170))
    draw.rectangle((60, 130, 200, 180), fill=(225, 225, 225))
    draw.line((20, 20, 220, 180), fill=(60, 60, 60), width=3)
    return image


def test_a_brightened_copy_is_scored_against_the_eval_crop_brightened_and_clipped():
    """Brightening by 8 % clips every channel above 236 at white: no longer a gain, so the centred
    cosine drops; the check also scores the crop brightened by BRIGHTENING_GAINS and clipped.
    Darkening is a gain (no clipping) and needs none of it."""
    from PIL import ImageEnhance

    assert pixel_embedder.BRIGHTENING_GAINS == (1.025, 1.05, 1.075, 1.1)
    original = light_drawing()
    detail = eval_detail_of(fixtures.encode(original), DedupConfig())
    brighter = pixel_embedder.training_detail(ImageEnhance.Brightness(original).enhance(1.08))
    cosine = pixel_embedder.aligned_cosine(detail, brighter)
    score = pixel_embedder.aligned_score(detail, brighter)
    assert cosine < 0.995 and score > 0.999  # 1 - cosine: 0.0056 -> 0.0005
    # the gain that explains it is the one in the grid nearest 1.08
    pixels = detail.pixels.astype(np.float32)
    by_gain = {gain: pixel_embedder.aligned_cosine(
        dataclasses.replace(detail, pixels=np.minimum(pixels * gain, 255.0)), brighter)
        for gain in pixel_embedder.BRIGHTENING_GAINS}
    assert max(by_gain, key=by_gain.get) == 1.075
    darker = pixel_embedder.training_detail(ImageEnhance.Brightness(original).enhance(0.92))
    assert (pixel_embedder.aligned_score(detail, darker)
            == pixel_embedder.aligned_cosine(detail, darker) > 0.999)
    # a recolouring is not a brightening: the yellow turned orange stays apart
    orange = original.copy()
    ImageDraw.Draw(orange).rectangle((20, 20, 120, 180), fill=(250, 140, 20))
    ImageDraw.Draw(orange).line((20, 20, 220, 180), fill=(60, 60, 60), width=3)
    recoloured = pixel_embedder.training_detail(orange)
    assert pixel_embedder.aligned_score(detail, recoloured) < 0.95
