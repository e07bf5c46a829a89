"""Boxes and points: the ONE place in the code base that converts, scales or compares them.

Ground truth lives in original-image pixels, ``xyxy`` (x1, y1, x2, y2), continuous coordinates: pixel
``i`` covers ``[i, i + 1)``, so a box around pixels 0..9 is ``[0, 0, 10, 10]``. A completion's numbers
are in one of these spaces (the sample's ``coords``):

============  =====================================================================================
``pixels``    original-image pixels
``norm1000``  0..1000 of the original width / height (Qwen2-VL)
``norm1``     0..1 of the original width / height
``resized``   pixels of the image the processor fed the model (Qwen2.5-VL), ``resized_size`` = (w, h)
============  =====================================================================================

Everything is vectorised numpy and returns float64. Values may be ``(N, 4)`` boxes or ``(N, 2)``
points (the last dimension decides); a single 1-D box or point keeps its 1-D shape.

Invalid boxes: a box with ``x2 < x1`` or ``y2 < y1`` is *not* reordered; it has zero area, so its IoU
with anything is 0. Reordering would silently reward swapped corners, a format error the policy
should unlearn. Boxes with non-finite coordinates also get IoU 0 (GIoU -1); no function here
returns NaN or inf for finite inputs, and IoU / GIoU never do for any input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from perception_r1.contract import MODEL_COORD_SPACES as SPACES  # the spaces boxes are written in

#: the resolution the numbers of each space are written with: Qwen writes integers in pixels,
#: norm1000 and resized; norm1 answers are written (and rendered) with 3 decimals.
GRID_UNIT = {"pixels": 1.0, "norm1000": 1.0, "norm1": 0.001, "resized": 1.0}

Size = Sequence[float] | np.ndarray


def _size(size: Size | None, what: str) -> np.ndarray:
    if size is None:
        raise ValueError(f"{what} is required")
    arr = np.asarray(size, dtype=np.float64).reshape(-1)
    if arr.shape != (2,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{what} must be two positive numbers (w, h), got {size!r}")
    return arr


def pixel_scale(space: str, image_size: Size, resized_size: Size | None = None) -> np.ndarray:
    """Pixels of the original image per unit of ``space``, as ``[sx, sy]``."""
    wh = _size(image_size, "image_size")
    if space == "pixels":
        return np.ones(2)
    if space == "norm1000":
        return wh / 1000.0
    if space == "norm1":
        return wh.copy()
    if space == "resized":
        return wh / _size(resized_size, "resized_size (for coords 'resized')")
    raise ValueError(f"unknown coordinate space '{space}' (one of {', '.join(SPACES)})")


def _per_column(scale: np.ndarray, last: int) -> np.ndarray:
    if last == 4:
        return np.tile(scale, 2)
    if last == 2:
        return scale
    raise ValueError(f"expected boxes (..., 4) or points (..., 2), got last dimension {last}")


def _values(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def to_pixels(values: object, space: str, image_size: Size, resized_size: Size | None = None) -> np.ndarray:
    """Boxes ``(N, 4)`` or points ``(N, 2)`` in ``space`` -> original-image pixels."""
    arr = _values(values)
    scale = pixel_scale(space, image_size, resized_size)
    if arr.size == 0:
        return arr.copy()
    return arr * _per_column(scale, arr.shape[-1])


def from_pixels(values: object, space: str, image_size: Size, resized_size: Size | None = None) -> np.ndarray:
    """Original-image pixels -> boxes ``(N, 4)`` or points ``(N, 2)`` in ``space``."""
    arr = _values(values)
    scale = pixel_scale(space, image_size, resized_size)
    if arr.size == 0:
        return arr.copy()
    return arr / _per_column(scale, arr.shape[-1])


def grid_tolerance(space: str, image_size: Size, resized_size: Size | None = None) -> np.ndarray:
    """Half a grid unit of ``space`` in original pixels, ``[tx, ty]``.

    A model writing integers cannot express a box more precisely than this; rewards use it as a dead
    zone so the ground truth rounded to the answer grid still earns the maximum reward.
    """
    scale = pixel_scale(space, image_size, resized_size)  # raises on an unknown space
    return 0.5 * GRID_UNIT[space] * scale


def snap(values: object, target: object, tolerance: object) -> np.ndarray:
    """``values`` with every coordinate within ``tolerance`` of ``target`` replaced by the target's.

    Shapes broadcast; ``tolerance`` is per column (``[tx, ty]`` for points, tiled for boxes).
    """
    v, t = _values(values), _values(target)
    tol = _values(tolerance)
    if tol.shape == (2,) and v.shape[-1:] == (4,):
        tol = np.tile(tol, 2)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(v - t) <= tol * (1 + 1e-9)
    return np.where(close, t, v)


def point_distances(a: object, b: object, tolerance: object = (0.0, 0.0)) -> np.ndarray:
    """Euclidean distance of every point of ``a`` ``(N, 2)`` to every point of ``b`` ``(M, 2)``.

    Each axis difference first shrinks by ``tolerance`` ``[tx, ty]`` (never below 0): the answer-grid
    dead zone of :func:`grid_tolerance`. Non-finite or overflowing distances become ``inf``.
    """
    pa = _values(a).reshape(-1, 2)[:, None, :]
    pb = _values(b).reshape(-1, 2)[None, :, :]
    tol = _values(tolerance).reshape(2) * (1 + 1e-9)  # slack: a value rounded at exactly .5 stays inside
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.clip(np.abs(pa - pb) - tol, 0.0, None)
        out = np.hypot(diff[..., 0], diff[..., 1])
    return np.where(np.isfinite(out), out, np.inf)


def xywh_to_xyxy(boxes: object) -> np.ndarray:
    """COCO ``[x, y, w, h]`` -> ``[x1, y1, x2, y2]``."""
    b = _values(boxes)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:4]], axis=-1)


def xyxy_to_xywh(boxes: object) -> np.ndarray:
    """``[x1, y1, x2, y2]`` -> COCO ``[x, y, w, h]``."""
    b = _values(boxes)
    return np.concatenate([b[..., :2], b[..., 2:4] - b[..., :2]], axis=-1)


def box_centers(boxes: object) -> np.ndarray:
    """``(N, 4)`` boxes -> ``(N, 2)`` centres."""
    b = _values(boxes).reshape(-1, 4)
    return (b[:, :2] + b[:, 2:4]) / 2.0


def center_inside(box: object, truth: object) -> bool:
    """Whether the centre of ``box`` lies inside ``truth`` (edges included): grounding's official Center_ACC."""
    cx, cy = box_centers(np.asarray(box, dtype=np.float64).reshape(1, 4))[0]
    x1, y1, x2, y2 = np.asarray(truth, dtype=np.float64).reshape(4)
    return bool(x1 <= cx <= x2 and y1 <= cy <= y2)


def _pairwise(
    a: object, b: object, paired: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Intersection, union and enclosing-box areas of every pair, plus a mask of valid pairs.

    Every box of ``a`` with every box of ``b`` (``(N, M)`` results), or with ``paired`` row ``i`` of
    ``a`` with row ``i`` of ``b`` only (``(N,)`` results; same arithmetic, element by element).
    """
    a = _values(a).reshape(-1, 4)
    b = _values(b).reshape(-1, 4)
    if paired:
        if len(a) != len(b):
            raise ValueError(f"paired boxes need the same number of rows, got {len(a)} and {len(b)}")
    else:
        a, b = a[:, None, :], b[None, :, :]
    finite = np.all(np.isfinite(a), axis=-1) & np.all(np.isfinite(b), axis=-1)
    with np.errstate(invalid="ignore", over="ignore"):
        area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
        area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
        iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
        ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
        # an inverted box has zero area, and must not intersect anything either
        inverted = (a[..., 2] < a[..., 0]) | (a[..., 3] < a[..., 1]) | (b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])
        inter = np.where(inverted, 0.0, iw * ih)
        union = area_a + area_b - inter
        cw = np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 0], b[..., 0])
        ch = np.maximum(a[..., 3], b[..., 3]) - np.minimum(a[..., 1], b[..., 1])
        enclose = np.clip(cw, 0, None) * np.clip(ch, 0, None)
    return inter, union, enclose, finite


def iou_matrix(a: object, b: object) -> np.ndarray:
    """IoU of every box of ``a`` ``(N, 4)`` with every box of ``b`` ``(M, 4)`` -> ``(N, M)`` in [0, 1]."""
    inter, union, _, finite = _pairwise(a, b)
    return _iou(inter, union, finite)


def paired_iou(a: object, b: object) -> np.ndarray:
    """IoU of box ``i`` of ``a`` ``(N, 4)`` with box ``i`` of ``b`` ``(N, 4)`` -> ``(N,)`` in [0, 1].

    The diagonal of :func:`iou_matrix` (same arithmetic and edge cases, bit for bit) without computing
    the other ``N * (N - 1)`` pairs.
    """
    inter, union, _, finite = _pairwise(a, b, paired=True)
    return _iou(inter, union, finite)


def _iou(inter: np.ndarray, union: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """IoU from :func:`_pairwise`'s areas: 0 for an empty union or a non-finite pair, clipped to [0, 1]."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    out = np.where(finite & np.isfinite(out), out, 0.0)
    return np.clip(out, 0.0, 1.0)


def giou_matrix(a: object, b: object) -> np.ndarray:
    """Generalised IoU (Rezatofighi et al. 2019) of every pair -> ``(N, M)`` in [-1, 1].

    GIoU = IoU - (C - U) / C with C the smallest enclosing box. A pair with C = 0 (both degenerate)
    gets IoU; a pair with a non-finite coordinate gets -1, the worst value.
    """
    inter, union, enclose, finite = _pairwise(a, b)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        penalty = np.where(enclose > 0, (enclose - union) / np.where(enclose > 0, enclose, 1.0), 0.0)
        out = iou - penalty
    out = np.where(finite & np.isfinite(out), out, -1.0)
    return np.clip(out, -1.0, 1.0)


def iou(a: object, b: object) -> float:
    """IoU of two single boxes."""
    return float(iou_matrix(a, b)[0, 0])


def smart_resize(
    w: int, h: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """The Qwen2-VL / Qwen2.5-VL processor resize: ``(w, h)`` -> ``(w2, h2)``, both multiples of
    ``factor``, ``min_pixels <= w2 * h2 <= max_pixels``, aspect ratio kept as closely as possible.

    Same arithmetic as ``transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize``
    (which takes and returns ``(height, width)``; this one is ``(w, h)`` like the rest of this module).
    """
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {w}x{h}")
    if max(h, w) / min(h, w) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(h, w) / min(h, w)}")
    h_bar = round(h / factor) * factor
    w_bar = round(w / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((h * w) / max_pixels)
        h_bar = max(factor, math.floor(h / beta / factor) * factor)
        w_bar = max(factor, math.floor(w / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        h_bar = math.ceil(h * beta / factor) * factor
        w_bar = math.ceil(w * beta / factor) * factor
    return w_bar, h_bar
