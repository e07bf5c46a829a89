"""Vision warm-up for the embedded tiny model: teach its vision tower to see letters before SFT.

A 2.5M-parameter Qwen2-VL fine-tuned end to end never learnt to read: its answer loss was the same with
the images shuffled (``core/assets/tiny-base/README.md`` lists what was tried). A dense target breaks
that: on rendered words (the OCR task's synthetic images), every image token predicts which letters it
covers, through a linear head that is thrown away afterwards. Only the vision tower and its merger
train; the language model is not touched. Afterwards ``perception-r1 sft`` teaches the language model to
use what the tower now sees.

    python -m perception_r1.recipe.vision_warmup MODEL_DIR OUT_DIR --steps 1000
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import click
import torch

from perception_r1.tasks.text_render import char_spans, random_text, render_text
from perception_r1.train.optim import fit

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


def _batch(policy, rng: random.Random, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    texts = [random_text(rng) for _ in range(n)]
    images = [render_text(t) for t in texts]
    inputs, grids = vision_grids(policy, images)
    targets = [letter_targets(text, image.width, rows, cols)
               for text, image, (rows, cols) in zip(texts, images, grids, strict=True)]
    return inputs, torch.cat(targets)


def warm_up(
    policy,
    steps: int,
    lr: float = 2e-3,
    batch_size: int = 32,
    seed: int = 0,
    log: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``policy``'s vision tower in place on per-token letter presence; returns the losses."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = policy.model
    visual: Sequence[torch.nn.Parameter] = list(model.model.visual.parameters())
    head = torch.nn.Linear(model.config.text_config.hidden_size, len(LETTERS))
    optimizer = torch.optim.AdamW([*visual, *head.parameters()], lr=lr, weight_decay=0.0)
    model.train()

    def loss_at(_: int) -> torch.Tensor:
        inputs, targets = _batch(policy, rng, batch_size)
        features = policy.image_features(model, inputs, 1, repeat=False)
        logits = head(torch.cat(features.pooler_output))  # (tokens, 26)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)

    losses = fit(loss_at, optimizer, [*visual, *head.parameters()], steps, clip=None, log=log)
    model.eval()
    return losses


@click.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def main(model_dir: str, out_dir: str, steps: int, lr: float, seed: int) -> None:
    """Warm up MODEL_DIR's vision tower on letter presence; save the model to OUT_DIR."""
    from perception_r1.model.policy import Policy

    policy = Policy.load(model_dir)
    start = time.perf_counter()

    def log(step: int, loss: float) -> None:
        if step % 100 == 0 or step == steps:
            click.echo(f"step {step:>5}/{steps}  letter loss {loss:.4f}  {time.perf_counter() - start:6.1f}s")

    warm_up(policy, steps, lr=lr, seed=seed, log=log)
    click.echo(f"saved {policy.save(out_dir)}")


if __name__ == "__main__":
    main()
