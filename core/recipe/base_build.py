"""Build the embedded base from scratch: a tiny model that looks at the image on every registered task.

End-to-end SFT of a 2.5M-parameter model never learns *where* anything is: the language model learns the
answer prior first and the image path goes silent (``core/assets/tiny-base/README.md``). So the vision
tower is taught first, on dense per-token targets (``dense_targets``), and those targets stay on as a
small auxiliary loss during SFT so the image path keeps its signal:

1. ``build_tiny``: tokenizer + random-init Qwen2-VL; images upscaled so a 112x112 scene is 8 x 8 tokens;
2. vision-only warm-up (tower + merger + throw-away heads) on the dense targets;
3. SFT on the tasks mixed, plus ``aux_weight`` x the dense loss;
4. refine: a second warm-up with fresh heads, then SFT at half the learning rate, ``emphasize``d tasks
   drawn twice as often (the embedded base: grounding, whose absolute x the tiny model finds hardest).

    PERCEPTION_R1_PLUGINS= python -m perception_r1.recipe.base_build OUT --tasks counting,detection,grounding,ocr \
        --emphasize grounding
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import click
import torch

from perception_r1.contract import task_names
from perception_r1.recipe.dense_targets import DenseHeads, dense_loss
from perception_r1.train.optim import fit, warmup_cosine

#: a stage's log: (stage, step, {loss part: value})
Log = Callable[[str, int, dict[str, float]], None]


def warm_up(policy, heads: DenseHeads, steps: int, lr: float = 2e-3, batch: int = 32, seed: int = 0,
            log: Log | None = None) -> None:
    """Vision tower + merger + heads only, on the dense targets (half scenes, half words)."""
    rng = random.Random(seed)
    params = [*policy.model.model.visual.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    parts: dict[str, float] = {}

    def loss_at(_: int) -> torch.Tensor:
        loss, detail = dense_loss(policy, heads, rng, batch // 2, batch // 2)
        parts.update(detail)
        return loss

    policy.model.train()
    fit(loss_at, optimizer, params, steps, scheduler=warmup_cosine(optimizer, steps, 50, overlap=True), clip=1.0,
        log=(lambda step, _: log("warmup", step, parts)) if log else None)
    policy.model.eval()


def sft_with_aux(policy, tasks: Sequence, heads: DenseHeads, steps: int, batch_size: int = 16, lr: float = 1e-3,
                 aux_weight: float = 0.3, aux_batch: int = 8, seed: int = 0, log: Log | None = None) -> None:
    """``train.sft.sft`` (same batches, schedule and clipping) plus ``aux_weight`` x the dense warm-up loss."""
    from perception_r1.train.sft import answer_loss, sft_batch

    torch.manual_seed(seed)
    rng = random.Random(seed + 7)
    params = [p for p in policy.model.parameters() if p.requires_grad] + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    parts: dict[str, float] = {}

    def loss_at(step: int) -> torch.Tensor:
        loss = answer_loss(policy, *sft_batch(policy, tasks, batch_size, step, seed))
        parts["answer"] = loss.item()
        if aux_weight > 0:
            aux, _ = dense_loss(policy, heads, rng, aux_batch // 2, aux_batch // 2)
            parts["aux"] = aux.item()
            loss = loss + aux_weight * aux
        return loss

    policy.model.train()
    fit(loss_at, optimizer, params, steps, scheduler=warmup_cosine(optimizer, steps, max(1, steps // 20)),
        clip=1.0, log=(lambda step, _: log("sft", step, parts)) if log else None)
    policy.model.eval()


def _stage_one(stage_dir: Path, tasks: Sequence, steps: dict[str, int], tokens_side: int, aux_weight: float,
               seed: int, log: Log | None):
    """build_tiny + warm-up + SFT; returns the policy and the seconds each part took."""
    from perception_r1.model.policy import Policy
    from perception_r1.model.tiny import TinyConfig, build_tiny

    side = 28 * tokens_side  # a 112x112 scene is upscaled to side x side: tokens_side^2 image tokens
    build_tiny(stage_dir, cfg=replace(TinyConfig(), min_pixels=side * side, max_pixels=side * side), seed=seed,
               tasks=tasks)
    policy = Policy.load(stage_dir)
    torch.manual_seed(seed)
    heads = DenseHeads(policy.model.config.text_config.hidden_size)
    t0 = time.perf_counter()
    warm_up(policy, heads, steps["warmup"], seed=seed, log=log)
    t1 = time.perf_counter()
    sft_with_aux(policy, tasks, heads, steps["sft"], aux_weight=aux_weight, seed=seed, log=log)
    return policy, {"warmup_seconds": round(t1 - t0, 1), "sft_seconds": round(time.perf_counter() - t1, 1)}


def _refine(policy, tasks: Sequence, emphasize: Sequence[str], steps: dict[str, int], aux_weight: float,
            seed: int, log: Log | None) -> dict[str, float]:
    """Fresh heads with the absolute targets, then SFT at half the rate with ``emphasize``d tasks twice."""
    torch.manual_seed(seed + 1)
    heads = DenseHeads(policy.model.config.text_config.hidden_size)
    t2 = time.perf_counter()
    warm_up(policy, heads, steps["refine_warmup"], lr=1e-3, seed=seed + 1, log=log)
    t3 = time.perf_counter()
    weighted = [t for t in tasks if t.name in emphasize] + list(tasks)
    sft_with_aux(policy, weighted, heads, steps["refine_sft"], lr=5e-4, aux_weight=aux_weight, seed=seed + 1, log=log)
    return {"refine_warmup_seconds": round(t3 - t2, 1), "refine_sft_seconds": round(time.perf_counter() - t3, 1)}


def build_base(out: str | Path, tasks: Sequence, steps: dict[str, int], emphasize: Sequence[str] = (),
               seed: int = 0, tokens_side: int = 8, aux_weight: float = 0.3, from_dir: str | Path | None = None,
               log: Log | None = None) -> Path:
    """Stages 1-2 into ``out`` (bf16 safetensors + ``build.json``); ``from_dir``: refine a stage-1 base."""
    from perception_r1.model.policy import Policy

    out, times = Path(out), {}
    if from_dir is None:
        stage_dir = Path(tempfile.mkdtemp(prefix="perception-r1-base-"))  # the random-init model, then dropped
        policy, times = _stage_one(stage_dir, tasks, steps, tokens_side, aux_weight, seed, log)
        tiny_config = (stage_dir / "tiny_config.json").read_text()
        shutil.rmtree(stage_dir, ignore_errors=True)
    else:
        tiny_config, policy = (Path(from_dir) / "tiny_config.json").read_text(), Policy.load(from_dir)
    if steps["refine_warmup"] or steps["refine_sft"]:
        times |= _refine(policy, tasks, emphasize, steps, aux_weight, seed, log)
    policy.save(out, dtype=torch.bfloat16)
    (out / "tiny_config.json").write_text(tiny_config)
    record = {"seed": seed, "from": str(from_dir) if from_dir else None, "tasks": [t.name for t in tasks],
              "emphasize": list(emphasize), **{f"{k}_steps": v for k, v in steps.items()},
              "tokens_side": tokens_side, "aux_weight": aux_weight, **times}
    (out / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    return out


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quick", is_flag=True, help="3 steps of each stage: a smoke test of the whole recipe.")
@click.option("--warmup-steps", type=int, default=800, show_default=True)
@click.option("--sft-steps", type=int, default=1300, show_default=True)
@click.option("--refine-warmup-steps", type=int, default=300, show_default=True)
@click.option("--refine-sft-steps", type=int, default=400, show_default=True)
@click.option("--tasks", "task_spec", help="Tasks to train on, a,b,c (default: every registered task).")
@click.option("--emphasize", multiple=True, help="A task drawn twice as often in the refining SFT (repeatable).")
@click.option("--tokens-side", type=int, default=8, show_default=True, help="image tokens per side of a 112x112 scene")
@click.option("--aux-weight", type=float, default=0.3, show_default=True)
@click.option("--from", "from_dir", type=click.Path(exists=True, file_okay=False), help="skip stage 1: refine this base")
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--log-every", type=int, default=50, show_default=True)
def main(out, seed, quick, warmup_steps, sft_steps, refine_warmup_steps, refine_sft_steps, task_spec, emphasize,
         tokens_side, aux_weight, from_dir, threads, log_every):
    """Build the embedded base into OUT on every registered task (PERCEPTION_R1_PLUGINS= : the built-ins)."""
    from perception_r1.registry import get_registry

    torch.set_num_threads(threads)
    steps = {"warmup": warmup_steps, "sft": sft_steps, "refine_warmup": refine_warmup_steps,
             "refine_sft": refine_sft_steps}
    if quick:
        steps, log_every = dict.fromkeys(steps, 3), 1
    registry = get_registry()
    names = task_names(task_spec) if task_spec else sorted(registry.tasks)
    tasks = [registry.task(name) for name in names]
    for name in emphasize:
        registry.task(name)  # an unknown name is one line, not a silent no-op
    start = time.perf_counter()

    def log(stage: str, step: int, parts: dict[str, float]) -> None:
        if step % log_every == 0:
            detail = "  ".join(f"{k} {v:.4f}" for k, v in parts.items())
            click.echo(f"{stage} {step:>5}  {detail}  {time.perf_counter() - start:7.1f}s")

    path = build_base(out, tasks, steps, emphasize, seed, tokens_side, aux_weight, from_dir, log)
    click.echo(f"saved {path} in {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
