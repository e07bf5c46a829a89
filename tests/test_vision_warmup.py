"""The tiny model's vision warm-up targets: per-token letters (base_build trains on them, tests/test_base_build.py)."""

from __future__ import annotations

import torch

from perception_r1.recipe.vision_warmup import LETTERS, letter_targets
from perception_r1.tasks.text_render import char_spans, render_text


def test_char_spans_follow_the_rendered_ink():
    text = "fox dog"
    spans = char_spans(text)
    assert [c for c, _, _ in spans] == list(text)
    assert all(a < b for _, a, b in spans) and all(spans[i][2] <= spans[i + 1][1] + 1e-6 for i in range(len(text) - 1))
    ink = [x for x in range(224) if any(render_text(text).getpixel((x, y))[0] < 128 for y in range(56))]
    assert spans[0][1] - 3 <= ink[0] and ink[-1] <= spans[-1][2] + 3  # spans cover the drawn pixels


def test_letter_targets_mark_the_columns_a_letter_covers():
    target = letter_targets("ab c", 224, rows=2, cols=8).view(2, 8, len(LETTERS))
    assert torch.equal(target[0], target[1])  # a word spans every row of its columns
    cols = {c: set(target[0, :, LETTERS.index(c)].nonzero().flatten().tolist()) for c in "abc"}
    assert all(cols.values()) and max(cols["a"]) <= min(cols["b"]) and max(cols["b"]) <= min(cols["c"])
    others = [i for i, c in enumerate(LETTERS) if c not in "abc"]
    assert target[..., others].sum() == 0  # the space and absent letters mark nothing
