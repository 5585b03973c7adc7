"""Tests of training.data, training.augment and training.synthtext."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from model.preprocessing import decode_image, resize_image
from model.regions import GRIDS, region_labels, region_rects
from training.augment import LUMA, augment_geometry, mix_images, photometric, rotation_matrix, transform_points
from training.config import AugmentConfig, DataConfig, SynthConfig, default_data_root
from training.data import (CROP, IMAGE, PATTERN, SYNTH, BalancedSampler, Item, Record, TextFilterDataset, batches,
                           load_records, samples, text_free_crops, thread_map)
from training.patterns import PATTERNS, render_pattern
from training.synthtext import TextRenderer, find_fonts

NO_AUG = AugmentConfig(flip_p=0, rotate_p=0, zoom_p=0, jpeg_p=0)
NO_SYNTH = SynthConfig(enabled=False)
REAL_ROOT = Path(default_data_root())


def mirror(labels: np.ndarray) -> np.ndarray:
    """Region labels of the horizontally flipped image."""
    out, start = [], 0
    for g in GRIDS:
        out.append(labels[start:start + g * g].reshape(g, g)[:, ::-1].reshape(-1))
        start += g * g
    return np.concatenate(out)


def write_image(path: Path, size, rect=None, colour=(255, 255, 255)) -> None:
    img = Image.new("RGB", size, (0, 0, 0))
    if rect is not None:
        ImageDraw.Draw(img).rectangle([rect[0], rect[1], rect[2] - 1, rect[3] - 1], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")


def rect_box(x0, y0, x1, y1) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def make_dataset(tmp_path: Path, records, augment=NO_AUG, train=True, **data_kwargs) -> TextFilterDataset:
    cfg = DataConfig(root=str(tmp_path), augment=augment, synth=NO_SYNTH, cache_bytes=True,
                     **{"crop_share": 0.0, **data_kwargs})
    return TextFilterDataset(records, cfg, train=train)


def region_pixel_fractions(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    fr = []
    for x0, y0, x1, y1 in region_rects(w, h):
        cell = mask[int(round(y0)):int(round(y1)), int(round(x0)):int(round(x1))]
        fr.append(cell.mean())
    return np.asarray(fr)


# --- augmentation keeps labels exact -------------------------------------------------------------


def test_flip_mirrors_region_labels_and_pixels(tmp_path):
    rect = (10, 12, 70, 50)  # top-left corner of a 320x240 image
    write_image(tmp_path / "a.png", (320, 240), rect)
    record = Record("a.png", 1, [rect_box(*rect)], [], "synthetic", "train")
    ds = make_dataset(tmp_path, [record], augment=dataclasses.replace(NO_AUG, flip_p=1.0))
    sample = ds[Item(IMAGE, 0, seed=1)]
    plain = region_labels(record.boxes, 320, 240)
    assert plain[0] == 1 and plain[4] == 0
    np.testing.assert_array_equal(sample.labels, mirror(plain))
    # The white box is now in the top-right corner of the resized image.
    h, w = sample.image.shape[:2]
    assert (h, w) == (256, 352)
    white = sample.image.mean(axis=2) > 127
    assert white[: h // 6, -w // 6:].mean() > 0.5 and not white[:, : w // 2].any()


def test_rotation_moves_box_with_pixels(tmp_path):
    rect = (120, 60, 260, 140)
    img = Image.new("RGB", (320, 240), (0, 0, 0))
    ImageDraw.Draw(img).rectangle([rect[0], rect[1], rect[2] - 1, rect[3] - 1], fill=(255, 255, 255))
    cfg = dataclasses.replace(NO_AUG, rotate_p=1.0, max_rotation=10.0)
    for seed in range(3):
        out, boxes, _ = augment_geometry(img, [rect_box(*rect)], [], np.random.default_rng(seed), cfg)
        assert out.size != img.size  # the canvas was expanded
        drawn = Image.new("L", out.size, 0)
        ImageDraw.Draw(drawn).polygon([tuple(p) for p in np.reshape(boxes[0], (-1, 2))], fill=255)
        predicted, actual = np.asarray(drawn) > 127, np.asarray(out.convert("L")) > 127
        iou = (predicted & actual).sum() / (predicted | actual).sum()
        assert iou > 0.95
        fractions = region_pixel_fractions(actual)
        labels = region_labels(boxes, out.width, out.height)
        clear = np.abs(fractions - 0.01) > 0.005  # regions not at the 1 % boundary
        np.testing.assert_array_equal(labels[clear], (fractions[clear] >= 0.01).astype(int))


def test_rotation_matrix_keeps_corners_on_canvas():
    m, (w, h) = rotation_matrix(300, 200, 10.0)
    corners = transform_points(np.array([[0, 0], [300, 0], [300, 200], [0, 200]], float), m)
    assert corners.min() > -1e-6 and corners[:, 0].max() <= w + 1e-6 and corners[:, 1].max() <= h + 1e-6


def test_train_sample_without_augmentation_matches_pipeline_decode(tmp_path):
    write_image(tmp_path / "b.png", (300, 200), (20, 20, 120, 80))
    record = Record("b.png", 1, [rect_box(20, 20, 120, 80)], [], "synthetic", "train")
    train = make_dataset(tmp_path, [record])[Item(IMAGE, 0, seed=3)]
    evaluation = make_dataset(tmp_path, [record], train=False)[Item(IMAGE, 0, -1)]
    expected = decode_image((tmp_path / "b.png").read_bytes())
    np.testing.assert_array_equal(train.image, expected)
    np.testing.assert_array_equal(evaluation.image, expected)
    np.testing.assert_array_equal(train.labels, evaluation.labels)
    np.testing.assert_array_equal(resize_image(Image.open(tmp_path / "b.png")), expected)


def test_ignore_boxes_give_ignore_labels_after_flip(tmp_path):
    write_image(tmp_path / "c.png", (320, 320))
    record = Record("c.png", 1, [rect_box(200, 200, 300, 300)], [rect_box(0, 0, 60, 60)], "s", "train")
    sample = make_dataset(tmp_path, [record], augment=dataclasses.replace(NO_AUG, flip_p=1.0))[Item(IMAGE, 0, 1)]
    assert sample.labels[4] == -1 and sample.labels[0] == 0  # the ignore box moved to the top-right
    assert sample.labels[20] == 1 and sample.labels[24] == 0


# --- photometric steps ----------------------------------------------------------------------------


def gradient_image(h=64, w=96) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], axis=2).astype(np.uint8)


def test_photometric_is_a_no_op_that_draws_nothing_when_off():
    img, rng = gradient_image(), np.random.default_rng(0)
    assert photometric(img, rng, NO_AUG) is img
    assert rng.random() == np.random.default_rng(0).random()  # the recipe's draws are untouched


def test_colour_jitter_matches_brightness_contrast_saturation_in_turn_and_copies():
    img = gradient_image()
    before = img.copy()
    cfg = dataclasses.replace(NO_AUG, colour_p=1.0, colour_strength=0.4)
    out = photometric(img, np.random.default_rng(3), cfg)
    np.testing.assert_array_equal(img, before)  # cached decodes are never changed in place
    rng = np.random.default_rng(3)
    rng.random()
    b, c, s = rng.uniform(0.6, 1.4, size=3)
    x = img.astype(np.float64) * b
    m = (x @ LUMA).mean()
    x = (x - m) * c + m
    g = (x @ LUMA)[..., None]
    expected = np.clip(g + (x - g) * s, 0, 255)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.abs(out - expected).max() <= 1.0
    assert not np.array_equal(out, img)


def test_grayscale_gives_equal_channels_and_blur_smooths_edges():
    img = gradient_image()
    grey = photometric(img, np.random.default_rng(0), dataclasses.replace(NO_AUG, gray_p=1.0))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert abs(float(grey[..., 0].mean()) - float((img @ LUMA).mean())) < 1.0
    edges = np.zeros((64, 96, 3), np.uint8)
    edges[:, 48:] = 255
    blurred = photometric(edges, np.random.default_rng(0), dataclasses.replace(NO_AUG, blur_p=1.0, max_blur_sigma=1.5))
    assert 0 < blurred[32, 47, 0] < 255 and 0 < blurred[32, 48, 0] < 255  # the step is spread over its neighbours
    assert blurred[32, 0, 0] == 0 and blurred[32, -1, 0] == 255


def test_photometric_steps_keep_region_labels_on_both_sample_paths(tmp_path):
    rect = (10, 12, 70, 50)
    write_image(tmp_path / "a.png", (320, 240), rect, colour=(200, 40, 40))
    record = Record("a.png", 1, [rect_box(*rect)], [], "synthetic", "train")
    cfg = dataclasses.replace(NO_AUG, colour_p=1.0, gray_p=1.0)
    plain = make_dataset(tmp_path, [record])[Item(IMAGE, 0, seed=1)]
    ds = make_dataset(tmp_path, [record], augment=cfg)
    for _ in range(2):  # decoded, then from the decode cache (which must stay in colour)
        sample = ds[Item(IMAGE, 0, seed=1)]
        np.testing.assert_array_equal(sample.labels, plain.labels)
        assert (sample.image[..., 0] == sample.image[..., 2]).all()  # grey: the steps ran
    assert ds.decoded and not (ds.decoded[0][0][..., 0] == ds.decoded[0][0][..., 2]).all()
    # the geometric path (a zoom) runs them too, after its resize
    zoom = make_dataset(tmp_path, [record], augment=dataclasses.replace(cfg, zoom_p=1.0))
    assert zoom.decoded is None
    sample = zoom[Item(IMAGE, 0, seed=2)]
    assert min(sample.image.shape[:2]) == 256 and (sample.image[..., 0] == sample.image[..., 2]).all()


# --- text-free crops ------------------------------------------------------------------------------


def test_text_free_crops_avoid_every_box(tmp_path):
    boxes = [rect_box(100, 100, 160, 130), rect_box(10, 200, 80, 230)]
    rects = text_free_crops(320, 240, boxes, np.random.default_rng(0), min_side=0.3, min_area=0.1)
    assert rects
    for x0, y0, x1, y1 in rects:
        assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 240
        assert min(x1 - x0, y1 - y0) >= 0.3 * 240 - 1 and (x1 - x0) * (y1 - y0) >= 0.1 * 320 * 240
        assert np.all(region_labels(boxes, 320, 240) >= 0)
        for b in boxes:
            pts = np.reshape(b, (-1, 2))
            assert pts[:, 0].max() <= x0 or pts[:, 0].min() >= x1 or pts[:, 1].max() <= y0 or pts[:, 1].min() >= y1


def test_crop_items_are_negative_everywhere(tmp_path):
    write_image(tmp_path / "d.png", (320, 240), (100, 100, 160, 130))
    record = Record("d.png", 1, [rect_box(100, 100, 160, 130)], [], "scene", "train")
    ds = make_dataset(tmp_path, [record], augment=AugmentConfig(), crop_share=0.5)
    assert 0 in ds.crops
    for seed in range(5):
        sample = ds[Item(CROP, 0, seed)]
        assert sample.label == 0 and sample.kind == CROP and (sample.labels == 0).all()
        assert (sample.image.mean(axis=2) < 100).all()  # the white text box is not in the crop


# --- class balance and shape batches --------------------------------------------------------------


def test_balanced_sampler_draws_classes_equally(tmp_path):
    records = [Record(f"t{i}.png", 1, [], [], "text", "train") for i in range(80)]
    records += [Record(f"n{i}.png", 0, [], [], "photo", "train") for i in range(20)]
    ds = make_dataset(tmp_path, records)
    sampler = BalancedSampler(ds, ds.cfg, seed=0)
    sampler.length = 4000
    items = list(sampler)
    negative = np.mean([records[it.index].label == 0 for it in items])
    assert 0.47 < negative < 0.53
    # Pools are walked without replacement: the first 80 text draws are all 80 text images.
    text_draws = [it.index for it in items if records[it.index].label == 1][:80]
    assert sorted(text_draws) == list(range(80))
    sampler.set_epoch(1)
    assert [it.index for it in sampler][:50] != [it.index for it in items][:50]


def test_balanced_sampler_mixes_in_crops_and_synthetic(tmp_path):
    records = [Record(f"t{i}.png", 1, [], [], "text", "train") for i in range(30)]
    records += [Record(f"n{i}.png", 0, [], [], "photo", "train") for i in range(30)]
    ds = make_dataset(tmp_path, records)
    ds.crops = {i: [(0, 0, 10, 10)] for i in range(30)}
    ds.renderer = object()  # only its presence matters to the sampler
    cfg = dataclasses.replace(ds.cfg, crop_share=0.4, synth=SynthConfig(share=0.2), epoch_size=5000)
    kinds = Counter(it.kind for it in BalancedSampler(ds, cfg, seed=1))
    assert abs(kinds[CROP] / 5000 - 0.5 * 0.4) < 0.03
    assert abs(kinds[SYNTH] / 5000 - 0.5 * 0.2) < 0.03
    assert kinds[PATTERN] == 0
    cfg = dataclasses.replace(cfg, pattern_share=0.25)
    items = list(BalancedSampler(ds, cfg, seed=1))
    kinds = Counter(it.kind for it in items)
    assert abs(kinds[CROP] / 5000 - 0.5 * 0.4) < 0.03 and abs(kinds[PATTERN] / 5000 - 0.5 * 0.25) < 0.03
    assert abs(kinds[IMAGE] / 5000 - (0.5 * 0.8 + 0.5 * 0.35)) < 0.03
    assert {ds.records[it.index].label for it in items if it.kind == PATTERN} == {0}  # over non-text photos
    with pytest.raises(ValueError, match="add up to more than 1"):
        BalancedSampler(ds, dataclasses.replace(cfg, pattern_share=0.7), seed=1)


def test_pool_share_sets_the_pools_part_of_the_non_text_draws(tmp_path):
    pool = (tmp_path / "pool").resolve()
    records = [Record(f"t{i}.png", 1, [], [], "text", "train") for i in range(30)]
    records += [Record(f"n{i}.png", 0, [], [], "photo", "train") for i in range(10)]
    records += [Record(str(pool / f"p{i}.jpg"), 0, [], [], "flowers", "train") for i in range(90)]
    ds = make_dataset(tmp_path, records, pools=(str(pool),), epoch_size=6000)
    pooled = lambda items: np.mean([ds.records[it.index].source == "flowers" for it in items  # noqa: E731
                                    if ds.records[it.index].label == 0])
    assert abs(pooled(list(BalancedSampler(ds, ds.cfg, seed=0))) - 0.9) < 0.03  # by their number
    items = list(BalancedSampler(ds, dataclasses.replace(ds.cfg, pool_share=0.5), seed=0))
    assert abs(pooled(items) - 0.5) < 0.03
    assert {it.kind for it in items} == {IMAGE}
    assert abs(np.mean([ds.records[it.index].label == 0 for it in items]) - 0.5) < 0.03  # classes still balanced
    with pytest.raises(ValueError, match="from both the root and --pools"):
        BalancedSampler(ds, dataclasses.replace(ds.cfg, pool_share=0.5, pools=()), seed=0)


def test_sampler_draws_the_unlabelled_share_on_top_of_balanced_draws(tmp_path):
    records = [Record(f"t{i}.png", 1, [], [], "text", "train") for i in range(30)]
    records += [Record(f"n{i}.png", 0, [], [], "photo", "train") for i in range(10)]
    records += [Record(f"u{i}.jpg", -1, [], [], "pets-rest", "train") for i in range(200)]
    ds = make_dataset(tmp_path, records, unlabelled_share=0.3)
    sampler = BalancedSampler(ds, ds.cfg, seed=0)
    assert len(sampler) == round(40 / 0.7)  # an epoch: the labelled records' draws plus the unlabelled share
    sampler.length = 6000
    items = list(sampler)
    drawn = [ds.records[it.index].label for it in items]
    assert abs(drawn.count(-1) / 6000 - 0.3) < 0.03
    assert abs(drawn.count(0) / (drawn.count(0) + drawn.count(1)) - 0.5) < 0.03  # the rest still balanced
    first = [it.index for it in items if ds.records[it.index].label == -1][:200]
    assert sorted(first) == list(range(40, 240))  # walked without replacement
    assert {it.kind for it in items} == {IMAGE}
    with pytest.raises(ValueError, match="no unlabelled training records"):
        BalancedSampler(make_dataset(tmp_path, records[:40], unlabelled_share=0.3), ds.cfg, seed=0)
    with pytest.raises(ValueError, match="would never be drawn"):
        BalancedSampler(ds, dataclasses.replace(ds.cfg, unlabelled_share=0.0), seed=0)
    with pytest.raises(ValueError, match="not in"):
        BalancedSampler(ds, dataclasses.replace(ds.cfg, unlabelled_share=1.0), seed=0)


def test_unlabelled_samples_have_every_region_ignored_and_are_not_cached(tmp_path):
    write_image(tmp_path / "t.png", (320, 240), (10, 10, 60, 40))
    write_image(tmp_path / "u.png", (320, 240), (10, 10, 60, 40))
    records = [Record("t.png", 1, [rect_box(10, 10, 60, 40)], [], "text", "train"),
               Record("u.png", -1, [], [], "pets-rest", "train")]
    flips = dataclasses.replace(NO_AUG, flip_p=0.5)
    ds = make_dataset(tmp_path, records, augment=flips, unlabelled_share=0.5)
    assert ds.decoded is not None  # flips only: labelled images are decoded once
    for seed in (1, 2, -1):
        sample = ds[Item(IMAGE, 1, seed)]
        assert sample.label == -1 and sample.labels.shape == (34,) and (sample.labels == -1).all()
    labelled = ds[Item(IMAGE, 0, 1)]
    assert labelled.label == 1 and labelled.labels.max() == 1
    assert list(ds.decoded) == [0] and list(ds.store.cache) == ["t.png"]  # the unlabelled image read from disk
    batch = next(batches(ds, [Item(IMAGE, 0, 1), Item(IMAGE, 1, 1)], batch_size=2))
    assert batch.image_labels.tolist() == [1, -1] and (batch.labels[1] == -1).all()


def test_unlabelled_views_augment_only_the_unlabelled_draws(tmp_path):
    write_image(tmp_path / "t.png", (320, 240), (10, 10, 60, 40))
    write_image(tmp_path / "u.png", (320, 240), (10, 10, 60, 40))
    records = [Record("t.png", 1, [rect_box(10, 10, 60, 40)], [], "text", "train"),
               Record("u.png", -1, [], [], "pets-rest", "train")]
    strong = dataclasses.replace(NO_AUG, zoom_p=1.0, min_zoom_side=0.5, colour_p=1.0, colour_strength=0.5)
    plain = make_dataset(tmp_path, records, unlabelled_share=0.5, unlabelled_augment=strong)
    views = make_dataset(tmp_path, records, unlabelled_share=0.5, unlabelled_augment=strong,
                         unlabelled_views=True)
    exact = views[Item(IMAGE, 1, -1)].image  # the pipeline's decode of the unlabelled image
    for seed in (1, 2, 3):
        # views off: unlabelled draws are augmented like labelled ones (here: not at all)
        assert np.array_equal(plain[Item(IMAGE, 1, seed)].image, exact)
        viewed = views[Item(IMAGE, 1, seed)]
        assert min(viewed.image.shape[:2]) == 256  # still a 256-pixel short edge
        assert viewed.image.shape != exact.shape or not np.array_equal(viewed.image, exact)
        assert (viewed.labels == -1).all()  # still no labels: only the teacher's soft labels learn from it
        assert np.array_equal(views[Item(IMAGE, 1, seed)].image, viewed.image)  # a draw's view is reproducible
        # labelled draws keep ``augment`` (none): same image as without views
        assert np.array_equal(views[Item(IMAGE, 0, seed)].image, plain[Item(IMAGE, 0, seed)].image)
    assert views.augment_of(IMAGE, records[1]) is strong and views.augment_of(IMAGE, records[0]) is views.cfg.augment


def test_mix_images_blends_or_pastes_and_resizes_the_other():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (256, 341, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (256, 341, 3), dtype=np.uint8)
    for seed in range(5):
        mixed = mix_images(a, b, np.random.default_rng(seed), "mixup")
        assert mixed.shape == a.shape and mixed.dtype == np.uint8
        lo, hi = np.minimum(a, b).astype(int), np.maximum(a, b).astype(int)
        assert ((mixed >= lo - 1) & (mixed <= hi + 1)).all()  # a convex blend, pixel by pixel
        cut = mix_images(a, b, np.random.default_rng(seed), "cutmix")
        from_b = (cut == b).all(axis=2) & (a != b).any(axis=2)
        assert ((cut == a).all(axis=2) | (cut == b).all(axis=2)).all()  # every pixel from one of the two
        ys, xs = np.nonzero(from_b)
        if len(ys):  # the pasted part is one window
            assert from_b[ys.min():ys.max() + 1, xs.min():xs.max() + 1].mean() > 0.99
        assert np.array_equal(cut, mix_images(a, b, np.random.default_rng(seed), "cutmix"))  # reproducible
    portrait = rng.integers(0, 256, (341, 256, 3), dtype=np.uint8)
    assert mix_images(a, portrait, np.random.default_rng(1), "mixup").shape == a.shape
    assert mix_images(a, portrait, np.random.default_rng(1), "cutmix").shape == a.shape
    with pytest.raises(ValueError, match="unknown mix"):
        mix_images(a, b, rng, "blend")


def test_unlabelled_mix_mixes_only_unlabelled_views(tmp_path):
    write_image(tmp_path / "t.png", (320, 240), (10, 10, 60, 40))
    write_image(tmp_path / "u.png", (320, 240), (10, 10, 60, 40))
    write_image(tmp_path / "v.png", (240, 320), None)  # a portrait partner: resized to the view's shape
    records = [Record("t.png", 1, [rect_box(10, 10, 60, 40)], [], "text", "train"),
               Record("u.png", -1, [], [], "pets-rest", "train"),
               Record("v.png", -1, [], [], "pets-rest", "train")]
    views = dict(unlabelled_share=0.5, unlabelled_views=True,
                 unlabelled_augment=dataclasses.replace(NO_AUG, colour_p=1.0, colour_strength=0.5))
    plain = make_dataset(tmp_path, records, **views)
    for kind in ("mixup", "cutmix"):
        mixed = make_dataset(tmp_path, records, unlabelled_mix=kind, unlabelled_mix_p=1.0, **views)
        assert mixed.unlabelled == [1, 2]
        changed = 0
        for seed in range(1, 7):
            sample = mixed[Item(IMAGE, 1, seed)]
            assert sample.image.shape == plain[Item(IMAGE, 1, seed)].image.shape
            assert (sample.labels == -1).all() and sample.label == -1
            assert np.array_equal(mixed[Item(IMAGE, 1, seed)].image, sample.image)  # reproducible per draw
            changed += not np.array_equal(sample.image, plain[Item(IMAGE, 1, seed)].image)
            # labelled draws are never mixed
            assert np.array_equal(mixed[Item(IMAGE, 0, seed)].image, plain[Item(IMAGE, 0, seed)].image)
        assert changed >= 5  # (a draw may pick itself as its partner with the same colours)
    off = make_dataset(tmp_path, records, unlabelled_mix_p=1.0, unlabelled_share=0.5)  # views off: no mixing
    assert off.unlabelled == []
    with pytest.raises(ValueError, match="unknown unlabelled_mix"):
        make_dataset(tmp_path, records, unlabelled_mix="blend", unlabelled_mix_p=0.5, **views)


def test_patterns_are_text_free_negatives_over_the_photo(tmp_path):
    write_image(tmp_path / "n.png", (320, 240), None)
    records = [Record("t.png", 1, [], [], "text", "train"), Record("n.png", 0, [], [], "photo", "train")]
    write_image(tmp_path / "t.png", (320, 240), (10, 10, 60, 40))
    ds = make_dataset(tmp_path, records)
    photo = np.asarray(Image.open(tmp_path / "n.png").convert("RGB"))
    changed = 0
    for seed in range(6):
        sample = ds[Item(PATTERN, 1, seed=seed + 1)]
        assert sample.kind == PATTERN and sample.label == 0 and (sample.labels == 0).all()
        assert sample.source == "pattern:photo"
        img = render_pattern(Image.fromarray(photo), np.random.default_rng(seed))
        assert img.size == (320, 240)
        changed += np.abs(np.asarray(img, dtype=int) - photo).sum(axis=2).mean() > 5
        again = render_pattern(Image.fromarray(photo), np.random.default_rng(seed))
        assert np.array_equal(np.asarray(img), np.asarray(again))
    assert changed == 6
    for make in PATTERNS:  # every kind fills its canvas with values in range
        arr = make(50, 30, np.random.default_rng(0))
        assert arr.shape == (30, 50, 3) and 0 <= arr.min() and arr.max() <= 255 and arr.std() > 1


def test_batches_share_one_shape(tmp_path):
    sizes = [(320, 240), (240, 320), (400, 240), (320, 240), (240, 320), (320, 240), (300, 300)] * 3
    records = []
    for i, size in enumerate(sizes):
        write_image(tmp_path / f"{i}.png", size, (10, 10, 60, 40))
        records.append(Record(f"{i}.png", i % 2, [rect_box(10, 10, 60, 40)] if i % 2 else [], [], "s", "train"))
    ds = make_dataset(tmp_path, records, augment=AugmentConfig(jpeg_p=0.5))
    items = [Item(IMAGE, i, seed=i + 1) for i in range(len(records))]
    out = list(batches(ds, items, batch_size=4))
    assert sum(len(b) for b in out) == len(records)
    for b in out:
        assert b.images.shape[0] == len(b) <= 4 and b.labels.shape == (len(b), 34)
        assert b.images.shape[1] == 3 and min(b.images.shape[2:]) == 256
        assert max(b.images.shape[2:]) % 32 == 0
        assert b.images.is_contiguous(memory_format=torch.channels_last)
    assert max(len(b) for b in out) == 4


# --- synthetic text -------------------------------------------------------------------------------


def test_synthetic_text_gives_positive_regions_where_drawn():
    fonts = find_fonts(SynthConfig().font_dirs, limit=4)
    if not fonts:
        pytest.skip("no TrueType fonts installed")
    renderer = TextRenderer(fonts, SynthConfig(max_angle=20.0))
    background = Image.new("RGB", (320, 240), (128, 128, 128))
    for seed in range(4):
        img, boxes = renderer.render(background, np.random.default_rng(seed))
        assert boxes and np.asarray(background).std() == 0  # the cached input is untouched
        changed = np.abs(np.asarray(img, dtype=int) - 128).sum(axis=2) > 30
        inside = Image.new("L", img.size, 0)
        for b in boxes:
            ImageDraw.Draw(inside).polygon([tuple(p) for p in np.reshape(b, (-1, 2))], fill=255, outline=255)
        inside = np.asarray(inside) > 0
        inside = inside | np.roll(inside, 2, 0) | np.roll(inside, -2, 0) | np.roll(inside, 2, 1) | np.roll(inside, -2, 1)
        assert changed.any() and (changed & ~inside).sum() <= 0.01 * changed.sum()
        labels = region_labels(boxes, img.width, img.height)
        fractions = region_pixel_fractions(changed)
        assert (labels == 1).any()
        # Background regions hold (almost) no ink; nearly all text regions hold some (a
        # word box also covers the gaps between letters and words).
        assert (fractions[labels == 0] < 0.02).all()
        assert (fractions[labels == 1] > 0).mean() >= 0.8


def _page_renderer(**overrides) -> TextRenderer:
    fonts = find_fonts(SynthConfig().font_dirs, limit=4)
    if not fonts:
        pytest.skip("no TrueType fonts installed")
    return TextRenderer(fonts, SynthConfig(**{"page_share": 1.0, **overrides}))


def test_pages_are_lines_of_small_text_with_a_box_each():
    renderer = _page_renderer(page_line_range=(0.02, 0.04))
    background = Image.new("RGB", (320, 240), (128, 128, 128))
    pages = 0
    for seed in range(6):
        img, boxes = renderer.render(background, np.random.default_rng(seed))
        assert img.size == background.size and np.asarray(background).std() == 0
        assert len(boxes) > renderer.cfg.max_strings  # a page, not a few strings
        quads = np.reshape(boxes, (len(boxes), 4, 2))
        assert (quads >= -1).all() and (quads[..., 0] <= 321).all() and (quads[..., 1] <= 241).all()
        heights = quads[:, 2, 1] - quads[:, 0, 1]
        # body lines at the configured height (ink boxes are a little smaller than the font size)
        assert 0.3 * 0.02 * 240 <= np.median(heights) <= 0.04 * 240
        arr = np.asarray(img, dtype=int)
        # The panel colour is the most common one besides the photo's grey; ink differs from both.
        colours, counts = np.unique(arr.reshape(-1, 3), axis=0, return_counts=True)
        counts[np.abs(colours - 128).sum(axis=1) < 30] = 0
        panel = colours[counts.argmax()]
        ys, xs = np.nonzero((arr == panel).all(axis=2))
        interior = np.zeros(arr.shape[:2], bool)  # the panel less its blurred edge
        interior[ys.min() + 2:ys.max() - 1, xs.min() + 2:xs.max() - 1] = True
        ink = interior & (np.abs(arr - panel).sum(axis=2) >= 30)
        inside = Image.new("L", img.size, 0)
        for q in quads:
            ImageDraw.Draw(inside).polygon([tuple(p) for p in q], fill=255, outline=255)
        inside = np.asarray(inside) > 0
        for shift in (1, 2):  # the 4x downscale spreads glyph edges by a pixel or two
            inside = inside | np.roll(inside, shift, 0) | np.roll(inside, -shift, 0) \
                | np.roll(inside, shift, 1) | np.roll(inside, -shift, 1)
        assert ink.any() and (ink & ~inside).sum() <= 0.02 * ink.sum(), seed
        labels = region_labels(boxes, img.width, img.height)
        pages += (labels == 1).mean() >= 0.3
    assert pages >= 4  # most pages fill most regions with text


def test_pages_are_reproducible_from_the_seed():
    renderer = _page_renderer()
    background = Image.new("RGB", (300, 200), (40, 90, 30))
    a, boxes_a = renderer.render(background, np.random.default_rng(7))
    b, boxes_b = renderer.render(background, np.random.default_rng(7))
    assert np.array_equal(np.asarray(a), np.asarray(b)) and boxes_a == boxes_b
    c, _ = renderer.render(background, np.random.default_rng(8))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_captions_of_every_kind_are_small_text_boxed_where_the_ink_is():
    from training.synthtext import CAPTION_KINDS
    renderer = _page_renderer(page_share=0.0, caption_share=1.0)
    background = Image.new("RGB", (400, 300), (128, 128, 128))
    for kind in CAPTION_KINDS:
        for seed in range(3):
            img, boxes = renderer.render_caption(background, np.random.default_rng(seed), kind=kind)
            assert np.asarray(background).std() == 0  # the cached input is untouched
            assert len(boxes) >= 1, (kind, seed)
            arr = np.asarray(img, dtype=int)
            if kind == "band":  # the photo keeps its pixels; a plain band holds the text
                assert img.width == 400 and 300 < img.height <= 300 + 0.045 * 300 * 2.2 + 1
                top = int(np.argmax(np.abs(arr[:, 0] - 128).sum(axis=1) < 3))  # first row of the photo
                assert (arr[top:top + 300] == 128).all()
            else:
                assert img.size == background.size
            quads = np.reshape(boxes, (len(boxes), 4, 2))
            assert (quads >= -1).all() and (quads[..., 0] <= img.width + 1).all() and (quads[..., 1] <= img.height + 1).all()
            sides = np.sort([np.ptp(q[:, 0]) for q in quads] + [np.ptp(q[:, 1]) for q in quads])
            assert sides[0] <= (0.14 if kind == "watermark" else 0.06) * 300  # small text (its height)
            inside = Image.new("L", img.size, 0)
            for q in quads:
                ImageDraw.Draw(inside).polygon([tuple(p) for p in q], fill=255, outline=255)
            inside = np.asarray(inside) > 0
            for shift in (1, 2, 3):
                inside = inside | np.roll(inside, shift, 0) | np.roll(inside, -shift, 0) \
                    | np.roll(inside, shift, 1) | np.roll(inside, -shift, 1)
            changed = np.abs(arr - 128).sum(axis=2) > 30
            if kind == "band":  # ink: what differs from the band's own shade, in the band
                band = np.ones(arr.shape[:2], bool)
                band[top:top + 300] = False
                shade = np.median(arr[band], axis=0)
                changed = band & (np.abs(arr - shade).sum(axis=2) > 30)
                assert changed.any()
            if kind == "corner":  # a panel behind the text is part of the caption: judge only plain ones
                changed &= ~(((arr == 255).all(axis=2)) | ((arr == 0).all(axis=2)))
            assert (changed & ~inside).sum() <= 0.02 * max(1, changed.sum()), (kind, seed)
            assert (region_labels(boxes, img.width, img.height) == 1).any()
    a = renderer.render(background, np.random.default_rng(5))
    b = renderer.render(background, np.random.default_rng(5))
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0])) and a[1] == b[1]  # reproducible from the seed


def test_an_unknown_caption_kind_is_an_error_naming_the_known_ones():
    renderer = _page_renderer(page_share=0.0, caption_share=1.0)
    with pytest.raises(ValueError, match="unknown caption kind 'banner'; known: band, corner"):
        renderer.render_caption(Image.new("RGB", (64, 48)), np.random.default_rng(0), kind="banner")


def test_caption_kinds_limit_the_kinds_drawn():
    background = Image.new("RGB", (200, 150), (128, 128, 128))
    grown = {kinds: [render.render_caption(background, np.random.default_rng(seed))[0].height > 150
                     for seed in range(12)]
             for kinds, render in ((("band",), _page_renderer(caption_share=1.0, caption_kinds=("band",))),
                                   (("corner", "date"), _page_renderer(caption_share=1.0, caption_kinds=("corner", "date"))),
                                   (None, _page_renderer(caption_share=1.0)))}
    assert all(grown[("band",)])  # only bands: every photo grows by its band
    assert not any(grown[("corner", "date")])  # no bands: none grows
    assert 0 < sum(grown[None]) < 12  # all five kinds, bands among them


def test_caption_kinds_are_checked_and_their_weights_renormalised():
    from training.synthtext import CAPTION_WEIGHTS, caption_choice
    kinds, p = caption_choice(("band", "date"))
    assert kinds == ("band", "date") and np.allclose(p, np.array([0.25, 0.15]) / 0.4)
    assert np.allclose(caption_choice(("band", "corner", "edge", "date", "watermark"))[1], CAPTION_WEIGHTS)
    for bad in (("band", "banner"), (), ("date", "date")):
        with pytest.raises(ValueError, match="give one or more distinct kinds of band, corner"):
            _page_renderer(caption_share=1.0, caption_kinds=bad)


def test_synthetic_text_is_skipped_without_fonts(tmp_path, caplog):
    assert TextRenderer.from_config(SynthConfig(font_dirs=(str(tmp_path),))) is None
    assert "no .ttf" in caplog.text
    assert TextRenderer.from_config(SynthConfig(enabled=False)) is None


# --- real images ----------------------------------------------------------------------------------


needs_data = pytest.mark.skipif(not (REAL_ROOT / "labels.jsonl").is_file(), reason="shared data folder missing")


@needs_data
def test_real_records_decode_like_the_pipeline():
    records = load_records(REAL_ROOT, split="dev")
    assert records and {r.label for r in records} == {0, 1}
    text = [r for r in records if r.label == 1 and r.boxes][:3]
    ds = TextFilterDataset(text, DataConfig(root=str(REAL_ROOT), augment=NO_AUG, synth=NO_SYNTH), train=False)
    for i, item in enumerate(ds.items()):
        sample = ds[item]
        np.testing.assert_array_equal(sample.image, decode_image((REAL_ROOT / text[i].path).read_bytes()))
        w, h = Image.open(REAL_ROOT / text[i].path).size
        np.testing.assert_array_equal(sample.labels, region_labels(text[i].boxes, w, h, text[i].ignore))


@needs_data
def test_real_flip_mirrors_labels_and_augmented_shapes_are_pipeline_shapes():
    records = [r for r in load_records(REAL_ROOT, split="dev") if r.label == 1 and r.boxes][:4]
    flip = TextFilterDataset(records, DataConfig(root=str(REAL_ROOT), augment=dataclasses.replace(NO_AUG, flip_p=1.0),
                                                 synth=NO_SYNTH, crop_share=0), train=True)
    full = TextFilterDataset(records, DataConfig(root=str(REAL_ROOT), synth=NO_SYNTH, crop_share=0), train=True)
    for i, r in enumerate(records):
        w, h = Image.open(REAL_ROOT / r.path).size
        np.testing.assert_array_equal(flip[Item(IMAGE, i, 7)].labels, mirror(region_labels(r.boxes, w, h, r.ignore)))
        sample = full[Item(IMAGE, i, 100 + i)]
        assert min(sample.image.shape[:2]) == 256 and max(sample.image.shape[:2]) % 32 == 0


# --- loaders ----------------------------------------------------------------------------------------

def test_thread_loader_gives_the_same_samples_in_order_as_in_process(tmp_path):
    sizes = [(320, 240), (240, 320), (400, 240), (300, 300)] * 3
    records = []
    for i, size in enumerate(sizes):
        write_image(tmp_path / f"{i}.png", size, (10, 10, 90, 40))
        records.append(Record(f"{i}.png", i % 2, [rect_box(10, 10, 90, 40)] if i % 2 else [], [], "s", "train"))
    full_aug = AugmentConfig(flip_p=0.5, rotate_p=0.5, zoom_p=0.5, jpeg_p=0.5)
    ds = make_dataset(tmp_path, records, augment=full_aug)
    items = [Item(IMAGE, i, seed=100 + i) for i in range(len(records))]
    expected = [ds[item] for item in items]
    threaded = list(samples(ds, items, num_workers=3, loader="thread"))
    assert [s.path for s in threaded] == [s.path for s in expected]
    for a, b in zip(threaded, expected):
        np.testing.assert_array_equal(a.image, b.image)  # each item's own seed: no dependence on scheduling
        np.testing.assert_array_equal(a.labels, b.labels)
    by_thread = [b.paths for b in batches(ds, items, 4, num_workers=3, loader="thread")]
    assert by_thread == [b.paths for b in batches(ds, items, 4)]
    with pytest.raises(ValueError, match="unknown loader"):
        list(samples(ds, items, num_workers=2, loader="fibre"))


def test_thread_map_keeps_order_and_a_bounded_window():
    import threading
    import time

    running, peak, lock = [0], [0], threading.Lock()

    def slow(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.002 * (i % 3))
        with lock:
            running[0] -= 1
        return i * i

    gen = thread_map(slow, range(40), workers=4, window=6)
    assert list(gen) == [i * i for i in range(40)]
    assert 1 <= peak[0] <= 4


def test_batch_to_moves_every_tensor_and_is_a_no_op_on_the_same_device(tmp_path):
    write_image(tmp_path / "0.png", (320, 240), (10, 10, 90, 40))
    ds = make_dataset(tmp_path, [Record("0.png", 1, [rect_box(10, 10, 90, 40)], [], "s", "train")])
    batch = next(iter(batches(ds, ds.items(), 1)))
    assert batch.to("cpu") is batch
    meta = batch.to("meta")
    assert {meta.images.device.type, meta.labels.device.type, meta.image_labels.device.type} == {"meta"}
    assert meta.paths == batch.paths and batch.images.device.type == "cpu"


def test_flip_and_zoom_without_rotation_skip_resampling_with_identical_pixels():
    from training.augment import flip_and_crop, hflip_matrix, resample_affine, translation, warp

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 161, 3), dtype=np.uint8))
    for matrix, size in ((hflip_matrix(161), (161, 120)), (translation(-13, -7), (140, 100)),
                         (translation(-20, -5) @ hflip_matrix(161), (130, 110))):
        fast = flip_and_crop(img, matrix, size)
        assert fast is not None and fast.size == size
        np.testing.assert_array_equal(np.asarray(fast), np.asarray(resample_affine(img, matrix, size, (0, 0, 0))))
        assert np.array_equal(np.asarray(warp(img, matrix, size, (0, 0, 0))), np.asarray(fast))
    rotation, size = rotation_matrix(161, 120, 5.0)
    assert flip_and_crop(img, rotation, size) is None  # rotations resample
    assert flip_and_crop(img, translation(-0.5, 0), (100, 100)) is None  # sub-pixel shift
    assert flip_and_crop(img, translation(-100, 0), (100, 100)) is None  # window leaves the image


def test_pages_and_patterns_on_a_large_photo_keep_its_size():
    big = Image.new("RGB", (2600, 1800), (90, 120, 150))
    img = render_pattern(big, np.random.default_rng(3))
    assert img.size == big.size and np.asarray(img).std() > 1
    renderer = _page_renderer()
    page, boxes = renderer.render(big, np.random.default_rng(4))
    assert page.size == big.size and boxes
    assert max(np.reshape(boxes, (-1, 2))[:, 0]) <= 2601
