"""Letter targets for the embedded tiny model's vision warm-up: teach its vision tower to see letters.

A 2.5M-parameter Qwen2-VL fine-tuned end to end never learnt to read: its answer loss was the same with
the images shuffled (``core/assets/tiny-base/README.md`` lists what was tried). A dense target breaks
that: on rendered words (the OCR task's synthetic images), every image token predicts which letters it
covers, through a linear head that is thrown away afterwards. :mod:`perception_r1.recipe.dense_targets`
adds shape targets and :mod:`perception_r1.recipe.base_build` trains on both (its ``warm_up`` stage).
"""

from __future__ import annotations

import torch

from perception_r1.tasks.text_render import char_spans

LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: a letter counts for a token when this many pixels of its advance width fall inside the token's columns
MIN_OVERLAP_PX = 4


def letter_targets(text: str, image_width: int, rows: int, cols: int) -> torch.Tensor:
    """(rows * cols, 26) multi-hot: the letters whose span overlaps each image token's columns.

    Tokens are in the vision tower's output order (row-major over the merged grid); a word spans all rows
    of its columns, so every row of a column gets the same letters.
    """
    target = torch.zeros(rows, cols, len(LETTERS))
    width = image_width / cols
    for char, start, end in char_spans(text):
        if char not in LETTERS:
            continue
        for col in range(cols):
            if min(end, (col + 1) * width) - max(start, col * width) > MIN_OVERLAP_PX:
                target[:, col, LETTERS.index(char)] = 1.0
    return target.reshape(rows * cols, len(LETTERS))


def vision_grids(policy, images) -> tuple[dict[str, torch.Tensor], list[tuple[int, int]]]:
    """The vision inputs of ``images`` and each image's merged token grid (rows, cols)."""
    inputs = policy.processor.image_processor(images=images, return_tensors="pt")
    merge = policy.processor.image_processor.merge_size
    return inputs, [(h // merge, w // merge) for _, h, w in inputs["image_grid_thw"].tolist()]
