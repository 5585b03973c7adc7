"""The label check of text-free crops (benchmarks.crop_text): crops stay clear of the
labelled boxes, and text the labels miss is found in them by OCR."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageFont

from benchmarks.crop_text import check_crops, contact_sheet, sample_crops
from training.data import Record

LABELLED = [10.0, 10.0, 200.0, 10.0, 200.0, 60.0, 10.0, 60.0]  # one box in the top-left corner


def save_image(path, unlabelled_text: bool):
    img = Image.new("RGB", (600, 400), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=40)
    draw.text((15, 12), "SHOP", fill="black", font=font)  # inside LABELLED
    if unlabelled_text:  # lines of text over the rest of the image that no box covers
        for y in range(80, 400, 55):
            draw.text((5, y), "OPEN DAILY CAFE BAR", fill="black", font=font)
    img.save(path)


def records(tmp_path, unlabelled_text: bool, n: int = 3) -> list[Record]:
    out = []
    for i in range(n):
        save_image(tmp_path / f"img{i}.png", unlabelled_text)
        out.append(Record(f"img{i}.png", 1, [LABELLED], [], "toy", "train"))
    return out


def test_crops_stay_clear_of_the_labelled_boxes(tmp_path):
    crops = list(sample_crops(records(tmp_path, False), tmp_path, n=3))
    assert len(crops) == 3
    for _, (x0, y0, x1, y1), rgb in crops:
        assert rgb.shape[:2] == (y1 - y0, x1 - x0)
        assert x0 >= 204 or y0 >= 64  # margin of 4 px around the box's rectangle
        assert min(x1 - x0, y1 - y0) >= 0.4 * 400


def test_check_counts_crops_that_hold_text_the_labels_miss(tmp_path):
    pytest.importorskip("rapidocr")
    from pipeline.ocr import make_engine

    engine = make_engine(num_threads=1)
    for name, unlabelled_text, legible in (("clean", False, 0), ("dirty", True, 2)):
        folder = tmp_path / name
        folder.mkdir()
        check = check_crops(engine, records(folder, unlabelled_text), folder, "toy", n=2)
        assert (check.crops, check.legible) == (2, legible), check.as_dict()
        assert check.any_box >= legible and (check.any_box == 0 or unlabelled_text)
        assert len(check.read) == legible and all(texts for _, _, texts in check.read)
        assert len(check.boxed) == check.any_box
    assert contact_sheet(check.boxed, cell=100, columns=4).size == (400, 100)
    assert check.as_dict()["legible_share"] == 1.0
