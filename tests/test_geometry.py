"""tasks.geometry: space conversion round trips, hand-computed IoU / GIoU, the Qwen resize rule."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_r1.tasks import geometry as g
from perception_r1.tasks.scenes import COLORS, SHAPES, place_objects, random_scene

SIZES = st.tuples(st.integers(1, 4000), st.integers(1, 4000))
COORD = st.floats(-5000, 5000, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    src=st.sampled_from(g.SPACES),
    dst=st.sampled_from(g.SPACES),
    size=SIZES,
    resized=SIZES,
    n=st.integers(0, 5),
    last=st.sampled_from([2, 4]),
    data=st.data(),
)
def test_round_trip_every_pair_of_spaces(src, dst, size, resized, n, last, data):
    values = np.array(data.draw(st.lists(st.lists(COORD, min_size=last, max_size=last), min_size=n, max_size=n)))
    values = values.reshape(n, last)
    px = g.to_pixels(values, src, size, resized)
    there = g.from_pixels(px, dst, size, resized)
    back = g.to_pixels(there, dst, size, resized)
    assert px.shape == values.shape and px.dtype == np.float64
    np.testing.assert_allclose(back, px, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(g.from_pixels(back, src, size, resized), values, rtol=1e-9, atol=1e-7)


def test_hand_computed_conversions():
    size, resized = (640, 480), (644, 476)
    np.testing.assert_allclose(g.to_pixels([[500, 500, 1000, 1000]], "norm1000", size), [[320, 240, 640, 480]])
    np.testing.assert_allclose(g.to_pixels([[0.25, 0.5]], "norm1", size), [[160, 240]])
    np.testing.assert_allclose(g.to_pixels([[644, 476]], "resized", size, resized), [[640, 480]])
    np.testing.assert_allclose(g.from_pixels([160, 120, 320, 240], "norm1000", size), [250, 250, 500, 500])
    np.testing.assert_allclose(g.to_pixels([[3, 4, 5, 6]], "pixels", size), [[3, 4, 5, 6]])
    assert g.to_pixels([], "norm1000", size).size == 0


def test_bad_space_and_sizes_raise_naming_them():
    with pytest.raises(ValueError, match="'abs'"):
        g.to_pixels([[1, 2]], "abs", (10, 10))
    with pytest.raises(ValueError, match="resized_size"):
        g.to_pixels([[1, 2]], "resized", (10, 10))
    with pytest.raises(ValueError, match="image_size"):
        g.from_pixels([[1, 2]], "norm1", (0, 10))
    with pytest.raises(ValueError, match="last dimension 3"):
        g.to_pixels([[1, 2, 3]], "norm1", (10, 10))


def test_box_format_conversions():
    np.testing.assert_allclose(g.xywh_to_xyxy([[10, 20, 5, 7]]), [[10, 20, 15, 27]])
    np.testing.assert_allclose(g.xyxy_to_xywh([[10, 20, 15, 27]]), [[10, 20, 5, 7]])
    np.testing.assert_allclose(g.box_centers([[0, 0, 10, 20], [4, 4, 6, 6]]), [[5, 10], [5, 5]])


def giou(a, b) -> float:
    """GIoU of one pair, through the matrix form the detection reward uses."""
    return float(g.giou_matrix(a, b)[0, 0])


def test_hand_computed_iou_and_giou():
    a, b = [0, 0, 10, 10], [5, 5, 15, 15]
    assert g.iou(a, b) == pytest.approx(25 / 175)
    # enclosing box 15x15 = 225, union 175
    assert giou(a, b) == pytest.approx(25 / 175 - 50 / 225)
    assert g.iou(a, a) == 1.0 and giou(a, a) == 1.0
    # disjoint: IoU 0, GIoU = -(C - U)/C with C = 3x3, U = 2
    assert g.iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert giou([0, 0, 1, 1], [2, 2, 3, 3]) == pytest.approx(-7 / 9)
    # contained: 4 / 100
    assert g.iou([0, 0, 10, 10], [2, 2, 4, 4]) == pytest.approx(0.04)
    m = g.iou_matrix([[0, 0, 10, 10], [0, 0, 5, 10]], [[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(m, [[1, 0.5, 0], [0.5, 0, 0]])
    assert g.iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_degenerate_inverted_and_non_finite_boxes_never_nan():
    assert g.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    assert giou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    assert g.iou([5, 5, 5, 9], [0, 0, 10, 10]) == 0.0
    # inverted corners: zero area, no reordering
    assert g.iou([10, 10, 0, 0], [0, 0, 10, 10]) == 0.0
    assert g.iou([0, 10, 10, 0], [0, 0, 10, 10]) == 0.0
    assert g.iou([np.nan, 0, 1, 1], [0, 0, 1, 1]) == 0.0
    assert giou([np.inf, 0, 1, 1], [0, 0, 1, 1]) == -1.0
    assert g.iou([-1e308, -1e308, 1e308, 1e308], [0, 0, 1, 1]) == 0.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=8, max_size=8))
def test_iou_and_giou_are_bounded_and_symmetric(v):
    a, b = v[:4], v[4:]
    i, gi = g.iou(a, b), giou(a, b)
    assert 0.0 <= i <= 1.0 and -1.0 <= gi <= 1.0
    assert i == g.iou(b, a)
    if all(math.isfinite(x) and abs(x) < 1e6 for x in v):
        assert gi <= i + 1e-12


def test_grid_tolerance_and_snap():
    np.testing.assert_allclose(g.grid_tolerance("norm1000", (200, 100)), [0.1, 0.05])
    np.testing.assert_allclose(g.grid_tolerance("pixels", (200, 100)), [0.5, 0.5])
    np.testing.assert_allclose(g.grid_tolerance("norm1", (200, 100)), [0.1, 0.05])
    np.testing.assert_allclose(g.grid_tolerance("resized", (200, 100), (100, 100)), [1.0, 0.5])
    snapped = g.snap([10.05, 20.2, 30.0, 40.04], [10.0, 20.0, 30.1, 40.0], [0.1, 0.05])
    np.testing.assert_allclose(snapped, [10.0, 20.2, 30.1, 40.0])  # 20.2 is 0.2 > 0.05 away


@pytest.mark.parametrize(
    "w,h", [(112, 112), (640, 480), (1, 1), (50, 9000), (4000, 3000), (28, 56), (13, 7), (1920, 1080)]
)
def test_smart_resize_matches_transformers(w, h):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf

    for kw in ({}, {"min_pixels": 100 * 28 * 28, "max_pixels": 200 * 28 * 28}):
        h2, w2 = hf(h, w, **kw)
        assert g.smart_resize(w, h, **kw) == (w2, h2)


def test_smart_resize_hand_values():
    assert g.smart_resize(112, 112) == (112, 112)  # the embedded model's 4x4 grid of 28-pixel cells
    assert g.smart_resize(640, 480) == (644, 476)
    with pytest.raises(ValueError):
        g.smart_resize(1, 300)


def test_scene_boxes_are_tight_disjoint_and_deterministic():
    scene = random_scene(random.Random(3), n_objects=(4, 6))
    again = random_scene(random.Random(3), n_objects=(4, 6))
    assert [o.box for o in scene.objects] == [o.box for o in again.objects]
    assert scene.image.tobytes() == again.image.tobytes()
    pixels = np.asarray(scene.image)
    for o in scene.objects:
        x1, y1, x2, y2 = (int(v) for v in o.box)
        color = np.array(COLORS[o.color])
        inside = np.all(pixels[y1:y2, x1:x2] == color, axis=-1)
        # every edge row and column of the box touches the shape: the box is tight
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert o.shape in SHAPES
    boxes = np.array([o.box for o in scene.objects])
    overlap = g.iou_matrix(boxes, boxes) - np.eye(len(boxes))
    assert np.all(overlap == 0)


def test_crowded_request_gives_fewer_objects_not_a_hang():
    scene = place_objects(random.Random(0), [("square", "red")] * 60, min_size=20, max_size=30)
    assert 0 < len(scene.objects) < 60


def test_point_distances_with_dead_zone():
    d = g.point_distances([[0, 0], [3, 4]], [[0, 0], [6, 8], [np.nan, 0]])
    np.testing.assert_allclose(d, [[0, 10, np.inf], [5, 5, np.inf]])
    # dead zone shrinks each axis difference: (3 - 1, 4 - 1) -> sqrt(4 + 9)
    np.testing.assert_allclose(g.point_distances([[3, 4]], [[0, 0]], [1, 1]), [[np.sqrt(13)]])
    np.testing.assert_allclose(g.point_distances([[0.5, 0.2]], [[0, 0]], [0.5, 0.5]), [[0.0]])
    assert g.point_distances(np.zeros((0, 2)), [[1, 1]]).shape == (0, 1)


def _same_bits(x: np.ndarray, y: np.ndarray) -> bool:
    return x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()


def test_paired_iou_hand_values_and_shapes():
    a = [[0, 0, 10, 10], [0, 0, 5, 10], [0, 0, 0, 0], [10, 10, 0, 0], [np.nan, 0, 1, 1], [0, 0, 1, 1]]
    b = [[5, 5, 15, 15], [0, 0, 10, 10], [0, 0, 0, 0], [0, 0, 10, 10], [0, 0, 1, 1], [0, 0, 1, 1]]
    np.testing.assert_array_equal(g.paired_iou(a, b), [25 / 175, 0.5, 0.0, 0.0, 0.0, 1.0])
    assert g.paired_iou(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)
    assert g.paired_iou([0, 0, 2, 2], [1, 1, 3, 3]).shape == (1,)  # a single 1-D box is one row
    with pytest.raises(ValueError, match="same number of rows"):
        g.paired_iou([[0, 0, 1, 1]], [[0, 0, 1, 1], [0, 0, 2, 2]])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=8, max_size=8), max_size=6))
def test_paired_iou_is_the_diagonal_of_iou_matrix_any_floats(rows):
    """Bit for bit, including NaN / inf / overflowing / inverted boxes (all 0, never NaN)."""
    v = np.asarray(rows, dtype=np.float64).reshape(-1, 8)
    a, b = v[:, :4], v[:, 4:]
    out = g.paired_iou(a, b)
    assert _same_bits(out, np.diagonal(g.iou_matrix(a, b)).copy())
    assert np.all((out >= 0) & (out <= 1))


def test_paired_iou_is_the_diagonal_of_iou_matrix_random_boxes():
    """Seeded random boxes, many near-duplicates and touching edges, as matching produces them."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        xy = rng.uniform(0, 500, (n, 2)).round(int(rng.integers(0, 3)))
        wh = rng.uniform(-5, 150, (n, 2)).round(int(rng.integers(0, 3)))  # some inverted boxes
        a = np.concatenate([xy, xy + wh], axis=1)
        b = a + rng.normal(0, rng.choice([0.0, 1.0, 20.0]), a.shape).round(1)
        assert _same_bits(g.paired_iou(a, b), np.diagonal(g.iou_matrix(a, b)).copy())
        assert all(g.paired_iou(a, b)[i] == g.iou(a[i], b[i]) for i in range(n))
