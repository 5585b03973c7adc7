import numpy as np
import pytest

from model.regions import (
    IGNORE, NUM_REGIONS, SCORE_RULES, clipped_area, image_score, region_labels, region_rects, split_grids,
)


def box(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def test_grid_layout():
    rects = region_rects(500, 300)
    assert rects.shape == (NUM_REGIONS, 4) == (34, 4)
    assert np.allclose(rects[0], [0, 0, 100, 60])  # 5x5 first cell
    assert np.allclose(rects[24], [400, 240, 500, 300])  # 5x5 last cell
    assert np.allclose(rects[25], [0, 0, 500 / 3, 100])  # 3x3 first cell
    areas = (rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])
    assert areas[:25].sum() == pytest.approx(500 * 300)
    assert areas[25:].sum() == pytest.approx(500 * 300)


def test_one_percent_edge():
    # 500x500 image: a 5x5 cell is 100x100 = 10000 px, 1% = 100 px; a 3x3 cell is ~27778 px.
    exactly = region_labels([box(0, 0, 10, 10)], 500, 500)
    below = region_labels([box(0, 0, 10, 9.9)], 500, 500)
    assert exactly[0] == 1 and below[0] == 0
    assert exactly[25] == 0  # 100 px is only 0.36% of the 3x3 cell
    assert exactly.sum() == 1 and below.sum() == 0


def test_box_across_cells_counts_each_part():
    # 40x40 box centred on the corner between the first four 5x5 cells: 400 px in each.
    labels = region_labels([box(80, 80, 120, 120)], 500, 500)
    assert [labels[i] for i in (0, 1, 5, 6)] == [1, 1, 1, 1]
    assert labels[25] == 1  # the whole 1600 px lies in the first 3x3 cell (5.8%)
    assert labels[:25].sum() == 4


def test_rotated_quadrilateral_area():
    diamond = np.array([[50, 0], [100, 50], [50, 100], [0, 50]], float)
    assert clipped_area(diamond, (0, 0, 100, 100)) == pytest.approx(5000)
    assert clipped_area(diamond, (0, 0, 50, 50)) == pytest.approx(1250)
    assert clipped_area(diamond, (200, 200, 300, 300)) == 0.0


def test_ignore_boxes_are_neither():
    labels = region_labels([box(0, 0, 20, 20)], 500, 500, ignore=[box(400, 400, 500, 500), box(0, 0, 50, 50)])
    assert labels[0] == 1 and labels[25] == 1  # text wins over ignore (400 px = 1.44% of a 3x3 cell)
    assert labels[24] == IGNORE
    assert labels[25 + 8] == IGNORE
    assert (labels == 0).sum() == NUM_REGIONS - 2 - 2


def test_no_boxes_and_degenerate_boxes():
    assert region_labels([], 300, 200).tolist() == [0] * NUM_REGIONS
    assert region_labels([[1, 2, 3, 4]], 300, 200).sum() == 0  # two points: no area


def test_image_score_is_max_and_grids_split():
    probs = np.linspace(0, 1, NUM_REGIONS)
    assert image_score(probs) == 1.0
    grids = split_grids(probs)
    assert len(grids["5x5"]) == 5 and len(grids["5x5"][0]) == 5
    assert len(grids["3x3"]) == 3 and grids["3x3"][2][2] == 1.0


def test_both_grids_rule_needs_text_at_both_scales():
    probs = np.full((2, NUM_REGIONS), 0.04)
    probs[0, 7] = 0.81  # one 5x5 cell only (a texture spike)
    probs[1, [7, 30]] = (0.81, 0.64)  # the same cell and the 3x3 cell over it
    np.testing.assert_allclose(image_score(probs, "both_grids"), [np.sqrt(0.81 * 0.04), np.sqrt(0.81 * 0.64)])
    np.testing.assert_allclose(image_score(probs, "max"), [0.81, 0.81])
    # never above the largest region: a text decision always has a region at the threshold
    rng = np.random.default_rng(0)
    many = rng.uniform(size=(100, NUM_REGIONS))
    for rule in SCORE_RULES:
        assert (image_score(many, rule) <= many.max(1) + 1e-12).all()


def test_score_rules_agree_on_numpy_and_torch():
    import torch

    probs = np.random.default_rng(1).uniform(size=(3, NUM_REGIONS))
    for rule in SCORE_RULES:
        np.testing.assert_allclose(image_score(torch.from_numpy(probs), rule).numpy(), image_score(probs, rule))
        assert float(image_score(probs[0], rule)) == pytest.approx(image_score(probs, rule)[0])


def test_unknown_score_rule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown score rule 'mean'.*max, both_grids"):
        image_score(np.zeros(NUM_REGIONS), "mean")
