"""Polygon IoU and word similarity for text spotting: bounded, never NaN, never raising on odd shapes."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.errors import GEOSException
from shapely.geometry import Polygon

from perception_r1.tasks.text_metrics import normalized_edit_distance  # the framework's one NED

#: pixel coordinates are clipped here so areas stay finite; far outside any image, IoU is 0 anyway
COORD_LIMIT = 1e7


def polygon(points: np.ndarray) -> shapely.Geometry:
    """A valid (possibly empty) shapely geometry for ``(N, 2)`` pixel points; self-intersections repaired."""
    pts = np.clip(np.nan_to_num(points, nan=0.0), -COORD_LIMIT, COORD_LIMIT)
    try:
        geom = Polygon(pts)
        return geom if geom.is_valid else geom.buffer(0)
    except (GEOSException, ValueError):
        return Polygon()


def iou_matrix(preds: list[shapely.Geometry], gts: list[shapely.Geometry]) -> np.ndarray:
    """IoU of every (prediction, ground truth) pair -> ``(P, G)`` in [0, 1]."""
    out = np.zeros((len(preds), len(gts)))
    if not preds or not gts:
        return out
    p, g = np.array(preds, dtype=object), np.array(gts, dtype=object)
    pb, gb = shapely.bounds(p), shapely.bounds(g)  # NaN for empty geometries: compares False below
    # only pairs whose bounding boxes overlap can intersect: skip the rest cheaply
    overlap = (
        (pb[:, None, 0] <= gb[None, :, 2])
        & (gb[None, :, 0] <= pb[:, None, 2])
        & (pb[:, None, 1] <= gb[None, :, 3])
        & (gb[None, :, 1] <= pb[:, None, 3])
    )
    rows, cols = np.nonzero(overlap)
    if rows.size == 0:
        return out
    try:
        inter = shapely.area(shapely.intersection(p[rows], g[cols]))
    except GEOSException:  # rare robustness failure: fall back pair by pair, 0 where GEOS gives up
        inter = np.array([_safe_intersection_area(p[i], g[j]) for i, j in zip(rows, cols, strict=True)])
    union = shapely.area(p[rows]) + shapely.area(g[cols]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    out[rows, cols] = np.clip(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)
    return out


def _safe_intersection_area(a: shapely.Geometry, b: shapely.Geometry) -> float:
    try:
        return float(a.intersection(b).area)
    except GEOSException:
        return 0.0


def normalize_text(text: str) -> str:
    """Case and surrounding/duplicate whitespace do not count: ``" Hello  World"`` == ``"hello world"``."""
    return " ".join(text.lower().split())


def text_similarity(a: str, b: str) -> float:
    """1 - normalized edit distance of the normalized texts, in [0, 1]; two empty texts are equal."""
    return 1.0 - normalized_edit_distance(normalize_text(a), normalize_text(b))


def similarity_matrix(preds: list[str], gts: list[str]) -> np.ndarray:
    return np.array([[text_similarity(p, g) for g in gts] for p in preds]).reshape(len(preds), len(gts))
