"""Dense per-token targets for the vision warm-up of the embedded base: what each image token should know.

On synthetic shape scenes (``perception_r1.tasks.scenes``), every merged image token predicts through
throw-away linear heads: the share of its cell covered by shapes, how many shape centres of each (class,
colour) fall in it, the colour and class of the shape owning it, the offset from its cell centre to that
shape's centre, the shape's extents and its box in image coordinates, and the token's own position; on
rendered words, the letters it covers (``vision_warmup.letter_targets``). Relative targets teach *what*
and *which way*; the absolute ones (own position, owner box) put *where* into the token content, which
the tiny language model's M-RoPE barely carries across image columns.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F

from perception_r1.recipe.vision_warmup import LETTERS, letter_targets, vision_grids
from perception_r1.tasks.scenes import COLORS, SHAPES, object_mask, place_objects
from perception_r1.tasks.text_render import random_text, render_text

KINDS = [(s, c) for s in SHAPES for c in COLORS]
COLOR_NAMES = list(COLORS)
# layout of the shape head's outputs
_COVER, _CENTRES = 0, slice(1, 1 + len(KINDS))
_COLOR = slice(_CENTRES.stop, _CENTRES.stop + len(COLORS))
_SHAPE = slice(_COLOR.stop, _COLOR.stop + len(SHAPES))
_OFFSET = slice(_SHAPE.stop, _SHAPE.stop + 2)
_EXTENT = slice(_OFFSET.stop, _OFFSET.stop + 4)
_ABSBOX = slice(_EXTENT.stop, _EXTENT.stop + 4)  # the owner's box in 0-1 image coordinates
SHAPE_OUT = _ABSBOX.stop
#: a token is owned by a shape when the shape covers at least this share of its cell
MIN_COVER = 0.08


def shape_targets(scene, rows: int, cols: int) -> torch.Tensor:
    """(rows * cols, SHAPE_OUT + 1): dense per-token targets of a scene; the last column is the owner mask."""
    w, h = scene.image.size
    cw, ch = w / cols, h / rows
    t = torch.zeros(rows, cols, SHAPE_OUT + 1)
    cover = np.zeros((len(scene.objects), rows, cols), dtype=np.float32)
    for k, obj in enumerate(scene.objects):
        m = np.asarray(object_mask(obj, (w, h)), dtype=np.float32)
        cover[k] = m.reshape(rows, h // rows, cols, w // cols).mean(axis=(1, 3))
        x1, y1, x2, y2 = obj.box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        r, c = min(rows - 1, int(cy / ch)), min(cols - 1, int(cx / cw))
        t[r, c, _CENTRES.start + KINDS.index((obj.shape, obj.color))] += 1.0
    if scene.objects:
        t[:, :, _COVER] = torch.from_numpy(cover.sum(0).clip(0, 1))
        owner = cover.argmax(0)
        for r in range(rows):
            for c in range(cols):
                k = owner[r, c]
                if cover[k, r, c] < MIN_COVER:
                    continue
                obj = scene.objects[k]
                x1, y1, x2, y2 = obj.box
                ccx, ccy = (c + 0.5) * cw, (r + 0.5) * ch
                t[r, c, _COLOR.start] = COLOR_NAMES.index(obj.color)  # class indices stored as floats
                t[r, c, _SHAPE.start] = SHAPES.index(obj.shape)
                t[r, c, _OFFSET] = torch.tensor([((x1 + x2) / 2 - ccx) / cw, ((y1 + y2) / 2 - ccy) / ch])
                t[r, c, _EXTENT] = torch.tensor([(x1 - ccx) / w, (y1 - ccy) / h, (x2 - ccx) / w, (y2 - ccy) / h]) * 4
                t[r, c, _ABSBOX] = torch.tensor([x1 / w, y1 / h, x2 / w, y2 / h]) * 4
                t[r, c, SHAPE_OUT] = 1.0
    return t.reshape(rows * cols, SHAPE_OUT + 1)


def random_warmup_scene(rng: random.Random):
    """Scenes spanning the built-in tasks' distributions: 0-7 objects, small (counting) to large (grounding)."""
    n = rng.randint(0, 7)
    lo, hi = rng.choice([(14, 26), (18, 40), (14, 40)])
    kinds = [rng.choice(KINDS) for _ in range(n)]
    if n and rng.random() < 0.5:  # repeated kinds, as in counting
        kinds = [kinds[0]] * rng.randint(1, n) + kinds[1:]
        kinds = kinds[:n]
    return place_objects(rng, kinds, min_size=lo, max_size=hi)


def dense_batch(policy, rng: random.Random, n_scenes: int, n_texts: int):
    """Vision inputs for ``n_scenes`` scenes then ``n_texts`` words, with their per-token targets."""
    scenes = [random_warmup_scene(rng) for _ in range(n_scenes)]
    texts = [random_text(rng) for _ in range(n_texts)]
    images = [s.image for s in scenes] + [render_text(x) for x in texts]
    inputs, grids = vision_grids(policy, images)
    shape_t = [shape_targets(s, r, c) for s, (r, c) in zip(scenes, grids[:n_scenes], strict=True)]
    letter_t = [letter_targets(x, im.width, r, c) for x, im, (r, c) in
                zip(texts, images[n_scenes:], grids[n_scenes:], strict=True)]
    n_shape_tokens = sum(r * c for r, c in grids[:n_scenes])
    return inputs, n_shape_tokens, torch.cat(shape_t), torch.cat(letter_t), torch.cat([own_position(r, c) for r, c in grids])


def own_position(rows: int, cols: int) -> torch.Tensor:
    """(rows * cols, 2): each token's own cell centre (x, y) in 0-4 image coordinates, row-major."""
    ys, xs = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing="ij")
    return torch.stack([xs, ys], -1).reshape(rows * cols, 2) * 4


class DenseHeads(torch.nn.Module):
    """The throw-away heads: one for shape scenes, one for letters (both on merged image tokens)."""

    def __init__(self, width: int):
        super().__init__()
        self.shape = torch.nn.Linear(width, SHAPE_OUT)
        self.letter = torch.nn.Linear(width, len(LETTERS))
        self.position = torch.nn.Linear(width, 2)

    def loss(self, features, n_shape_tokens: int, shape_t, letter_t, pos_t):
        out = self.shape(features[:n_shape_tokens])
        owned = shape_t[:, SHAPE_OUT] > 0
        parts = {
            "cover": F.binary_cross_entropy_with_logits(out[:, _COVER], shape_t[:, _COVER]),
            "centres": F.mse_loss(out[:, _CENTRES], shape_t[:, _CENTRES]) * len(KINDS),
        }
        if owned.any():
            parts["color"] = F.cross_entropy(out[owned, _COLOR], shape_t[owned, _COLOR.start].long())
            parts["shape"] = F.cross_entropy(out[owned, _SHAPE], shape_t[owned, _SHAPE.start].long())
            parts["offset"] = F.smooth_l1_loss(out[owned, _OFFSET], shape_t[owned, _OFFSET])
            parts["extent"] = F.smooth_l1_loss(out[owned, _EXTENT], shape_t[owned, _EXTENT])
            parts["absbox"] = F.smooth_l1_loss(out[owned, _ABSBOX], shape_t[owned, _ABSBOX])
        parts["position"] = F.smooth_l1_loss(self.position(features), pos_t)
        parts["letter"] = F.binary_cross_entropy_with_logits(self.letter(features[n_shape_tokens:]), letter_t) * 4
        return sum(parts.values()), {k: v.item() for k, v in parts.items()}


def dense_loss(policy, heads: DenseHeads, rng: random.Random, n_scenes: int, n_texts: int):
    inputs, n_shape, shape_t, letter_t, pos_t = dense_batch(policy, rng, n_scenes, n_texts)
    features = policy.image_features(policy.model, inputs, 1, repeat=False)
    return heads.loss(torch.cat(features.pooler_output), n_shape, shape_t, letter_t, pos_t)
