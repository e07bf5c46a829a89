"""One GRPO step on the embedded tiny Qwen2-VL: this project's ``Trainer.train_step`` vs TRL's ``GRPOTrainer``.

Same model (the embedded default saved once to a temporary directory, both sides load it from there),
same task (counting, this project's reward on both sides), same batch shape (P=8 prompts x G=8
completions), same sampling (temperature 1.0, no top-k/top-p), beta 0.04 (both compute reference
log-probs), one update per batch, AdamW, grad-norm clip 1.0, per-sequence ("grpo") loss averaging.
Every completion is exactly ``--tokens`` tokens long on both sides (``min_new_tokens = max_new_tokens``:
our side through the model's generation config, TRL through ``generation_kwargs``), so both do the
same model work.

Each side runs in its own subprocess, so peak RSS (``ru_maxrss``) is that side's alone. TRL runs
twice: with gradient checkpointing off (the same computation as ours) and with its defaults
(``gradient_checkpointing=True``, which trades a second forward for activation memory).

Step time is wall time per step after ``--warmup`` steps, median over ``--steps``. The breakdown wraps
the model calls: generation (``model.generate``), forwards outside generation (policy + reference) and
``backward``; everything else is "outside model compute" (data, prompt encoding, rewards, advantages,
loss arithmetic, gradient clipping, optimizer step, logging).

    python benchmarks/grpo_step.py                 # 8 x 8, 64 tokens, 1 warm-up + 3 timed steps per side, 1 torch thread
    python benchmarks/grpo_step.py --tokens 32 --steps 3
    python benchmarks/grpo_step.py --smoke         # 2 x 2, 4 tokens, 1 step per side: checks the script runs
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _common import installed, machine, parse_args, run_child, table, trl_grpo_config

SIDES = {
    "ours": "perception-r1 Trainer.train_step",
    "trl": "TRL GRPOTrainer (grad checkpointing off)",
    "trl-defaults": "TRL GRPOTrainer (defaults: grad checkpointing on)",
}
COMPUTE = ("generate", "forward", "backward")  # "model compute" in the overhead share
SMOKE = {"prompts": 2, "group": 2, "tokens": 4, "steps": 1, "warmup": 0}


class Timers:
    """Seconds per named region; regions nest without double counting (inner time is subtracted)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[list[Any]] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)  # keeps the signature: generate() inspects forward's parameters
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [name, 0.0]  # name, time spent in nested timed regions
            self.stack.append(frame)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.stack.pop()
                self.totals[name] += elapsed - frame[1]
                if self.stack:
                    self.stack[-1][1] += elapsed

        return timed

    def reset(self) -> None:
        self.totals.clear()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def instrument(timers: Timers, model: Any) -> None:
    """Time ``model.generate`` as "generate" and calls of ``model.forward`` outside generation as "forward"."""
    in_generate = [False]
    raw_forward = model.forward
    timed_forward = timers.wrap("forward", raw_forward)
    timed_generate = timers.wrap("generate", model.generate)

    @functools.wraps(raw_forward)
    def forward(*a: Any, **k: Any) -> Any:  # forwards inside generate belong to generation
        return raw_forward(*a, **k) if in_generate[0] else timed_forward(*a, **k)

    @functools.wraps(model.generate)
    def generate(*a: Any, **k: Any) -> Any:
        in_generate[0] = True
        try:
            return timed_generate(*a, **k)
        finally:
            in_generate[0] = False

    model.forward = forward
    model.generate = generate


# -- our side ------------------------------------------------------------------------------------
def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import perception_r1.train.step as step_module
    import perception_r1.train.trainer as trainer_module
    from perception_r1.registry import get_registry
    from perception_r1.train.config import resolve
    from perception_r1.train.plan import plan_run
    from perception_r1.train.trainer import Trainer

    torch.manual_seed(0)
    config = resolve(overrides={
        "task": args.task, "model": args.model, "prompts_per_step": args.prompts, "group_size": args.group,
        "max_new_tokens": args.tokens, "learning_rate": 1e-4, "beta": 0.04, "eval_samples": 0,
        "log_completions_every": 10**9, "checkpoint_every": 0, "loss_aggregation": "grpo", "threads": args.threads,
    })
    trainer = Trainer(plan_run(config, get_registry()), Path(tempfile.mkdtemp(prefix="bench-ours-")))
    policy, model = trainer.policy, trainer.policy.model
    model.generation_config.min_new_tokens = args.tokens  # fixed completion length

    timers = Timers()
    instrument(timers, model)
    if trainer.reference is not None:
        trainer.reference.forward = timers.wrap("forward", trainer.reference.forward)
    trainer.accelerator.backward = timers.wrap("backward", trainer.accelerator.backward)
    trainer.batch_for = timers.wrap("data", trainer.batch_for)
    policy.encode_prompts = timers.wrap("prompt encoding", policy.encode_prompts)
    policy.decode = timers.wrap("decode", policy.decode)
    step_module.score = timers.wrap("rewards", step_module.score)  # reward_records calls it
    trainer_module.grpo_loss = timers.wrap("loss", trainer_module.grpo_loss)
    trainer.accelerator.clip_grad_norm_ = timers.wrap("grad clip", trainer.accelerator.clip_grad_norm_)
    trainer.optimizer.step = timers.wrap("optimizer step", trainer.optimizer.step)

    step_seconds, cpu_seconds, lengths = [], [], []
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            timers.reset()
        start, cpu = time.perf_counter(), time.process_time()
        metrics, _ = trainer.train_step(step)
        if step >= args.warmup:
            step_seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - cpu)
            lengths.append(metrics["completion_length"])
    return {"step_seconds": step_seconds, "cpu_seconds": cpu_seconds, "completion_length": statistics.mean(lengths),
            "breakdown": {k: v / args.steps for k, v in timers.totals.items()}, "peak_rss_mb": peak_rss_mb(),
            "parameters": sum(p.numel() for p in model.parameters())}


# -- TRL -----------------------------------------------------------------------------------------
def run_trl(args: argparse.Namespace, checkpointing: bool) -> dict[str, Any]:
    import datasets
    import torch
    import transformers
    from trl import GRPOTrainer

    from perception_r1.data.prepare import prepare_sample
    from perception_r1.data.synthetic import synthetic_samples
    from perception_r1.model.policy import Policy
    from perception_r1.registry import get_registry

    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    task = get_registry().task(args.task)
    processor = Policy.load(args.model).processor
    loader = Policy.load(args.model)  # only to prepare samples exactly as our trainer does (coordinate space)
    total_steps = args.warmup + args.steps
    samples = [prepare_sample(s, loader, task) for s in synthetic_samples(task, "train", total_steps * args.prompts, seed=0)]
    del loader
    dataset = datasets.Dataset.from_dict({
        "prompt": [[{"role": "user", "content": task.prompt(s)}] for s in samples],
        "image": [s["image"] for s in samples],
        "idx": list(range(len(samples))),
    })

    def reward(completions: list[Any], idx: list[int], **_: Any) -> list[float]:
        return [task.reward(c[0]["content"], samples[i]).total for c, i in zip(completions, idx, strict=True)]

    config = trl_grpo_config(args, total_steps, checkpointing, "bench-trl-")
    trainer = GRPOTrainer(model=args.model, reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=processor)

    timers = Timers()
    model = trainer.model
    instrument(timers, model)
    if trainer.ref_model is not None:
        trainer.ref_model.forward = timers.wrap("forward", trainer.ref_model.forward)
    trainer.accelerator.backward = timers.wrap("backward", trainer.accelerator.backward)

    marks: list[tuple[float, float]] = []  # (wall, process CPU) at the end of each step

    class Clock(transformers.TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            marks.append((time.perf_counter(), time.process_time()))

        def on_step_end(self, _args: Any, state: Any, _control: Any, **__: Any) -> None:
            marks.append((time.perf_counter(), time.process_time()))
            if state.global_step == args.warmup:
                timers.reset()

    trainer.add_callback(Clock())
    trainer.train()
    step_seconds = [b[0] - a[0] for a, b in zip(marks[:-1], marks[1:], strict=True)][args.warmup:]
    cpu_seconds = [b[1] - a[1] for a, b in zip(marks[:-1], marks[1:], strict=True)][args.warmup:]
    lengths = [row["completions/mean_length"] for row in trainer.state.log_history if "completions/mean_length" in row]
    return {"step_seconds": step_seconds, "cpu_seconds": cpu_seconds,
            "completion_length": statistics.mean(lengths[args.warmup:]),
            "breakdown": {k: v / args.steps for k, v in timers.totals.items()}, "peak_rss_mb": peak_rss_mb(),
            "parameters": sum(p.numel() for p in model.parameters())}


# -- parent --------------------------------------------------------------------------------------
def child(side: str, args: argparse.Namespace) -> dict[str, Any]:
    return run_child(__file__, side, [
        "--child", side, "--model", args.model, "--task", args.task, "--prompts", str(args.prompts), "--group",
        str(args.group), "--tokens", str(args.tokens), "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--threads", str(args.threads)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="counting")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per side (1: OpenMP spin-waits on cores shared with others distort 2)")
    parser.add_argument("--rounds", type=int, default=1, help="run the sides in turn this many times; best round counts")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma list of {', '.join(SIDES)}")
    parser.add_argument("--model", help="model directory (default: the embedded model, saved to a temp dir)")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = parse_args(parser, SMOKE)

    if args.child:
        result = run_ours(args) if args.child == "ours" else run_trl(args, checkpointing=args.child == "trl-defaults")
        print(json.dumps(result))
        return

    from perception_r1.model.policy import Policy

    print(f"machine: {machine()}")
    if args.model is None:  # one saved copy, so both sides start from identical weights
        args.model = str(Policy.load(None).save(Path(tempfile.mkdtemp(prefix="bench-model-")) / "tiny"))
    sides = args.sides.split(",")
    if any(side != "ours" for side in sides) and not installed("trl", "the TRL sides"):
        sides = [side for side in sides if side == "ours"]
    trl_version = version("trl") if "trl" in sides or "trl-defaults" in sides else "not run"

    print(f"model {args.model}; task {args.task}; {args.prompts} prompts x G={args.group} = "
          f"{args.prompts * args.group} completions of {args.tokens} tokens; TRL {trl_version}; "
          f"{args.warmup} warm-up + {args.steps} timed steps per side, each side in its own process\n")
    results: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):  # sides in turn, so load from other users of the cores hits all of them
        for side in sides:
            r = child(side, args)
            if side not in results or statistics.median(r["step_seconds"]) < statistics.median(
                    results[side]["step_seconds"]):
                results[side] = r

    n = args.prompts * args.group
    rows, shares = [], {}
    for side, r in results.items():
        seconds = statistics.median(r["step_seconds"])
        compute = sum(v for k, v in r["breakdown"].items() if k in COMPUTE)
        mean_step = statistics.mean(r["step_seconds"])
        shares[side] = 1.0 - compute / mean_step
        cpu = statistics.median(r["cpu_seconds"])
        rows.append([SIDES[side], f"{seconds:.2f}", f"{cpu:.2f}", f"{n / seconds:.1f}", f"{r['peak_rss_mb']:.0f}",
                     f"{r['completion_length']:.0f}", f"{r['breakdown'].get('generate', 0):.2f}",
                     f"{r['breakdown'].get('forward', 0):.2f}", f"{r['breakdown'].get('backward', 0):.2f}",
                     f"{100 * shares[side]:.1f}%"])
    print(table(["side", "s/step (median)", "CPU s/step", "samples/s", "peak RSS MB", "tokens/completion", "generate s",
                 "forward s", "backward s", "outside model compute"], rows))

    if "ours" in results:
        ours = results["ours"]
        print("\nour step, seconds per step by region (mean over timed steps):")
        total = statistics.mean(ours["step_seconds"])
        named = sum(ours["breakdown"].values())
        regions = sorted(ours["breakdown"].items(), key=lambda kv: -kv[1]) + [("(untimed rest)", total - named)]
        print(table(["region", "seconds", "share"], [[k, f"{v:.3f}", f"{100 * v / total:.1f}%"] for k, v in regions]))
        for side in ("trl", "trl-defaults"):
            if side in results:
                theirs = results[side]
                speed = statistics.median(theirs["step_seconds"]) / statistics.median(ours["step_seconds"])
                # CPU time per step: with 1 thread, time spent waiting for a core shared with others drops out
                cpu_speed = statistics.median(theirs["cpu_seconds"]) / statistics.median(ours["cpu_seconds"])
                memory = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
                verdict = "met" if min(speed, cpu_speed) >= 1.5 and memory <= 1.0 else "MISSED"
                print(f"\nvs {SIDES[side]}: throughput {speed:.2f}x by wall time, {cpu_speed:.2f}x by CPU time "
                      f"(target >= 1.5x), peak RSS {memory:.2f}x of theirs (target <= 1.0x): {verdict}")
        share = shares["ours"]
        print(f"our share outside model compute: {100 * share:.1f}% (target < 10%): {'met' if share < 0.10 else 'MISSED'}")


if __name__ == "__main__":
    main()
