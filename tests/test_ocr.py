"""The OCR stage: RapidOCR on text images, whole-image and region-guided."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import pipeline.ocr
from pipeline.ocr import ocr_image
from pipeline.region_boxes import mask_rectangles, merge_overlapping, region_boxes, text_mask
from pipeline.run import run
from tests.images import encode
from tests.pipeline_helpers import assert_conserved, read_outputs

RUNNER = ["--runner=FnApiRunner"]


def text_image(size=(600, 400), lines=(((30, 40), "HELLO WORLD"),)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=40)
    for xy, text in lines:
        draw.text(xy, text, fill="black", font=font)
    return img


def grids(cells5=(), cells3=()):
    g5, g3 = np.zeros((5, 5)), np.zeros((3, 3))
    for r, c in cells5:
        g5[r, c] = 0.9
    for r, c in cells3:
        g3[r, c] = 0.9
    return g5.tolist(), g3.tolist()


def test_text_cells_merge_into_rectangles():
    g5, g3 = grids(cells5=[(0, 0), (0, 1), (4, 4)])
    assert mask_rectangles(text_mask(g5, g3, 0.5)) == [(0, 0, 6, 3), (12, 12, 15, 15)]
    assert region_boxes(g5, g3, 0.5, 1500, 1500, margin=0.0) == [(0, 0, 600, 300), (1200, 1200, 1500, 1500)]
    g5, g3 = grids(cells5=[(0, 0)], cells3=[(0, 0)])  # the 3x3 cell holds the 5x5 one
    assert region_boxes(g5, g3, 0.5, 300, 300, margin=0.0) == [(0, 0, 100, 100)]
    assert merge_overlapping([(0, 0, 10, 10), (5, 5, 20, 20), (30, 30, 40, 40)]) == [(0, 0, 20, 20), (30, 30, 40, 40)]
    assert region_boxes(*grids(), 0.5, 100, 100) == []


def test_region_ocr_maps_boxes_back_to_the_image():
    img = np.asarray(text_image(lines=(((330, 300), "OPEN"),)))
    whole = ocr_image(pipeline.ocr.make_engine(1), img)
    g5, g3 = grids(cells5=[(3, 2), (3, 3), (4, 2), (4, 3)])  # the cells the word (x 330-444, y 300-350) touches
    record = {"regions_5x5": g5, "regions_3x3": g3}
    regions = ocr_image(pipeline.ocr.make_engine(1, "regions"), img, "regions", record, threshold=0.5)
    assert whole["text"] == regions["text"] == ["OPEN"] and regions["mode"] == "regions"
    assert np.allclose(whole["boxes"], regions["boxes"], atol=4)


def test_pipeline_ocr_stage(student_checkpoint, tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "sign.png").write_bytes(encode(text_image(), "PNG"))
    (folder / "plain.png").write_bytes(encode(Image.new("RGB", (300, 200), (40, 120, 60)), "PNG"))
    out = str(tmp_path / "out")
    args = [*RUNNER, "--input", str(folder), "--model_path", student_checkpoint, "--threshold", "0", "--ocr", "rapidocr"]
    run([*args, "--output", out])
    text = {r["uri"].rsplit("/", 1)[-1]: r for r in read_outputs(out)["text"]}
    assert text["sign.png"]["ocr"]["text"] == ["HELLO WORLD"] and text["sign.png"]["ocr"]["mode"] == "whole"
    assert len(text["sign.png"]["ocr"]["boxes"]) == len(text["sign.png"]["ocr"]["scores"]) == 1
    assert text["plain.png"]["ocr"]["text"] == []

    class Broken:
        def __call__(self, img, **flags):
            raise RuntimeError("onnxruntime exploded")

    monkeypatch.setattr(pipeline.ocr, "make_engine", lambda num_threads=1, mode="whole": Broken())
    out2 = str(tmp_path / "out2")
    summary = run([*args, "--output", out2, "--ocr_mode", "regions"])
    outputs = read_outputs(out2)
    assert_conserved(outputs, [str(folder / "sign.png"), str(folder / "plain.png")])
    assert outputs["text"] == [] and {r["stage"] for r in outputs["failed"]} == {"ocr"}
    assert "exploded" in outputs["failed"][0]["error"]
    assert summary["text"] == 0 and summary["failed"] == 2
