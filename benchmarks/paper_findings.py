"""The paper's two findings at tiny scale, measured on one base: prints a Markdown table.

(a) RL vs SFT from the same base with the same number of training samples, per task, beside the task's
    perceptual perplexity (mean number of prediction-to-truth matchings over the held-out samples). The paper:
    RL's advantage over SFT grows with perplexity (large for counting and detection, small for grounding, OCR).
(b) Detection AP after the same RL budget with the reward's Hungarian matching (task ``detection``) and with
    sequential scoring, prediction i against truth i (task ``detection-sequential``). Paper: AP 31.9 -> 23.5.

Per task and seed, from the same base (``--model``, default the embedded base):
  * RL: the trainer exactly as ``perception-r1 run --task T --seed S`` builds it (its defaults, including the
    task's small-model settings; ``--steps`` and ``--prompts-per-step`` change the budget): steps x
    prompts_per_step prompts, G rollouts each;
  * SFT: ``perception_r1.train.sft.sft`` on the task's synthetic train data (rendered answers), batch
    prompts_per_step for the same number of steps: the same number of samples and of optimizer updates, at
    the small-model fine-tuning rate (``--sft-lr``);
  * all three (base, SFT, RL) scored greedily on the same held-out samples (the trainer's held-out split).
Each seed runs in its own process (``--jobs`` at a time), one model at a time, on ``--threads`` torch threads.

    python benchmarks/paper_findings.py [--model DIR] [--seeds 0 1] [--jobs 2] [--eval-samples 256]
    python benchmarks/paper_findings.py --smoke    # ocr and detection, 2 steps x 2 prompts, 4 held-out samples,
                                                   # a 2-layer model (unless --model): checks the script runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import machine, smoke_model, table
from _common import parse_args as parse_with_smoke

TASKS = ("grounding", "ocr", "counting", "detection")
SEQUENTIAL = "detection-sequential"
SMOKE = {"tasks": "ocr,detection", "steps": 2, "prompts_per_step": 2, "eval_samples": 4}


def held_out(task, n: int) -> list[dict[str, Any]]:
    from perception_r1.data.synthetic import synthetic_samples
    from perception_r1.train.trainer import EVAL_SEED

    return synthetic_samples(task, "val", n, seed=EVAL_SEED)  # the samples `run` evaluates on


def score(policy, task, samples, max_new_tokens: int) -> float:
    """The task's primary metric, greedy, on ``samples``."""
    import torch

    from perception_r1.evaluate.evaluation import evaluate_policy

    policy.model.eval()
    with torch.no_grad():
        metrics, _ = evaluate_policy(policy, task, samples, batch_size=16, max_new_tokens=max_new_tokens)
    return metrics[task.primary_metric]


def rl(args, task_name: str, seed: int, out: Path):
    """The trainer as `perception-r1 run` resolves it: defaults, then the budget, seed and threads; no eval."""
    from perception_r1.registry import get_registry
    from perception_r1.train import config as cfg
    from perception_r1.train.plan import plan_run
    from perception_r1.train.trainer import Trainer

    overrides = {"task": task_name, "model": args.model, "seed": seed, "steps": args.steps, "eval_samples": 0,
                 "prompts_per_step": args.prompts_per_step, "threads": args.threads, "checkpoint_every": 0,
                 "out": str(out)}
    overrides = {k: v for k, v in overrides.items() if v is not None}  # unset: as `run` resolves it
    config = cfg.resolve(None, overrides)
    trainer = Trainer(plan_run(config, get_registry(), given=set(overrides)), out)  # the rest: as `run` fills it
    trainer.run()
    return trainer.policy, dict(trainer.config)


def sft(args, task, seed: int, steps: int, batch_size: int):
    from perception_r1.model.policy import Policy
    from perception_r1.train.sft import sft as fine_tune

    policy = Policy.load(args.model)
    fine_tune(policy, [task], steps, batch_size=batch_size, lr=args.sft_lr, seed=seed)
    return policy


def run_task(args, registry, name: str, work: Path, log) -> dict[str, Any]:
    """Perplexity, base, and per seed the SFT and RL scores of one task (and the sequential-matching RL)."""
    import torch

    from perception_r1.evaluate.perplexity import perplexity
    from perception_r1.model.policy import Policy

    task = registry.task(name)
    samples = held_out(task, args.eval_samples)
    row: dict[str, Any] = {"task": name, "metric": task.primary_metric, "sft": [], "rl": [], "sequential": [],
                           "perplexity": perplexity(task.objects(s["solution"]) for s in samples)}
    row["higher_is_better"], row["best"] = task.higher_is_better, task.best_metric_value
    base = Policy.load(args.model)
    torch.set_num_threads(args.threads)
    row["base"] = None
    for seed in args.seeds:
        t0 = time.perf_counter()
        policy, config = rl(args, name, seed, work / f"{name}-rl-{seed}")
        max_tokens = config["max_new_tokens"]
        if row["base"] is None:
            row["base"] = score(base, task, samples, max_tokens)
            log(f"{name}: base {task.primary_metric} {row['base']:.4f}")
        row["rl"].append(score(policy, task, samples, max_tokens))
        row["budget"] = f"{config['steps']} x {config['prompts_per_step']}"
        torch.set_num_threads(args.threads)
        tuned = sft(args, task, seed, config["steps"], config["prompts_per_step"])
        row["sft"].append(score(tuned, task, samples, max_tokens))
        log(f"{name} seed {seed}: SFT {row['sft'][-1]:.4f}  RL {row['rl'][-1]:.4f}  ({time.perf_counter() - t0:.0f}s)")
        if name == "detection" and args.matching and SEQUENTIAL in registry.tasks:
            policy, _ = rl(args, SEQUENTIAL, seed, work / f"{SEQUENTIAL}-rl-{seed}")
            row["sequential"].append(score(policy, task, samples, max_tokens))  # detection's own held-out set
            log(f"{name} seed {seed}: RL with sequential matching {row['sequential'][-1]:.4f}")
    return row


# -- the table -----------------------------------------------------------------------------------------------
def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    each = " / ".join(f"{v:.3f}" for v in values)
    return f"{statistics.mean(values):.3f} ({each})" if len(values) > 1 else each


def advantage(row: dict[str, Any]) -> list[float]:
    """RL minus SFT per seed, signed so that positive means RL is better, in % of the metric's full range."""
    sign = 1.0 if row["higher_is_better"] else -1.0
    scale = abs(row["best"]) or 1.0  # accuracy 1, AP 100, edit distance 0 (its range is 0-1)
    return [100.0 * sign * (r - s) / scale for r, s in zip(row["rl"], row["sft"], strict=True)]


def findings_table(rows: list[dict[str, Any]]) -> str:
    from perception_r1.evaluate.perplexity import format_big

    headers = ["task", "perplexity", "steps x prompts", "metric", "base", "SFT", "RL", "RL - SFT (% of range)"]
    body = []
    for row in sorted(rows, key=lambda r: r["perplexity"]["log10_mean"]):
        arrow = "" if row["higher_is_better"] else " (lower better)"
        gain = advantage(row)
        body.append([row["task"], format_big(row["perplexity"]["log10_mean"]), row["budget"], row["metric"] + arrow,
                     f"{row['base']:.3f}", fmt(row["sft"]), fmt(row["rl"]),
                     f"{statistics.mean(gain):+.1f} ({' / '.join(f'{g:+.1f}' for g in gain)})"])
    return table(headers, body)


def verdict(rows: list[dict[str, Any]]) -> str:
    """Does RL's advantage over SFT grow with perplexity? Compared: single-answer tasks vs multi-object ones."""
    single = {r["task"]: statistics.mean(advantage(r)) for r in rows if not r["perplexity"]["multi_object"]}
    multi = {r["task"]: statistics.mean(advantage(r)) for r in rows if r["perplexity"]["multi_object"]}
    if not single or not multi:
        return "(a) needs single-answer and multi-object tasks to compare."
    said = ", ".join(f"{k} {v:+.1f}" for k, v in {**single, **multi}.items())
    every_seed = all(g > 0 for r in rows if r["perplexity"]["multi_object"] for g in advantage(r))
    if min(multi.values()) > max(single.values()) and every_seed:
        outcome = ("reproduced: RL beat SFT on every multi-object task and seed, by more than on any "
                   "single-answer task")
    elif statistics.mean(multi.values()) > statistics.mean(single.values()):
        outcome = ("partly reproduced: RL - SFT higher on average for multi-object tasks, but not on every task "
                   "and seed, or RL not better than SFT there")
    else:
        outcome = "NOT reproduced: RL's advantage over SFT is not larger on the multi-object tasks"
    return f"(a) {outcome} (mean RL - SFT, % of range: {said})."


def matching_table(row: dict[str, Any]) -> tuple[str, str]:
    hungarian, sequential = row["rl"], row["sequential"]
    body = [["base (no RL)", f"{row['base']:.3f}", "16.1"], ["RL, Hungarian matching", fmt(hungarian), "31.9"],
            ["RL, sequential matching", fmt(sequential), "23.5"]]
    diff = statistics.mean(hungarian) - statistics.mean(sequential)
    wins = sum(h > s for h, s in zip(hungarian, sequential, strict=True))
    outcome = "reproduced" if diff > 0 and wins == len(hungarian) else "partly reproduced" if diff > 0 else "NOT reproduced"
    text = (f"(b) {outcome}: Hungarian - sequential = {diff:+.3f} AP (mean), Hungarian higher on {wins} of "
            f"{len(hungarian)} seeds.")
    return table(["detection reward", "AP (tiny, held-out)", "AP (paper, COCO val2017)"], body), text


def report(args, rows: list[dict[str, Any]], seconds: float) -> str:
    lines = [f"Perception-R1 findings at tiny scale: model {args.model or 'embedded base'}, seeds "
             f"{', '.join(map(str, args.seeds))}, per task the budget below (RL: G rollouts per prompt; SFT: as "
             f"many samples in as many steps, lr {args.sft_lr:g}), {args.eval_samples} held-out samples, "
             f"{seconds / 60:.1f} min wall ({args.jobs} seed processes at a time) on {machine()}", "",
             "Values: mean over seeds (each seed).", "", findings_table(rows), "", verdict(rows)]
    detection = next((r for r in rows if r["task"] == "detection" and r["sequential"]), None)
    if detection:
        matching, text = matching_table(detection)
        lines += ["", matching, "", text]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="base model directory (default: the embedded base)")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default: the four built-ins)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, help="RL steps = SFT steps (default: what `run --task T` resolves)")
    p.add_argument("--prompts-per-step", type=int, help="RL prompts per step = SFT batch size (default: as run)")
    p.add_argument("--sft-lr", type=float, default=1e-4,
                   help="SFT learning rate (default: 1e-4, the framework's rate for fine-tuning a small model)")
    p.add_argument("--jobs", type=int, default=2, help="seeds run in parallel processes (default: 2, one per core)")
    p.add_argument("--eval-samples", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-matching", dest="matching", action="store_false", help="skip (b), the matching ablation")
    p.add_argument("--json", help="also write the raw numbers (per task and seed) to this JSON file")
    p.add_argument("--work", help="directory for the run directories (default: a temporary one)")
    return parse_with_smoke(p, SMOKE, argv)


def per_seed_processes(args, argv: list[str], work: Path, log) -> list[dict[str, Any]]:
    """Each seed in its own interpreter (``--jobs`` at a time, each on ``--threads``); their rows merged in seed
    order. A child gets this command's own arguments, then its seed, output and ``--jobs 1`` (argparse keeps the
    last). Children log to this terminal, prefixed by their seed."""
    def relay(seed: int, proc: subprocess.Popen) -> None:
        """A child's progress lines as they come. Every child's pipe is drained by its own thread: a child
        whose output waited for an older one could fill its pipe and block."""
        for line in proc.stdout:
            if line.startswith("["):
                log(f"seed {seed}: {line.split('] ', 1)[-1].rstrip()}")

    pending, running, parts = list(args.seeds), [], {}
    while pending or running:
        while pending and len(running) < args.jobs:
            seed = pending.pop(0)
            parts[seed] = work / f"seed-{seed}.json"
            cmd = [sys.executable, __file__, *argv, "--jobs", "1", "--seeds", str(seed), "--json", str(parts[seed]),
                   "--work", str(work / f"seed-{seed}")]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            reader = threading.Thread(target=relay, args=(seed, proc), daemon=True)
            reader.start()
            running.append((seed, proc, reader))
        seed, proc, reader = running.pop(0)
        reader.join()
        if proc.wait() != 0:
            raise SystemExit(f"seed {seed} failed (exit {proc.returncode}); rerun with --jobs 1 --seeds {seed} to see why")
    merged: dict[str, dict[str, Any]] = {}
    for seed in args.seeds:
        for row in json.loads(parts[seed].read_text())["rows"]:
            into = merged.setdefault(row["task"], {**row, "sft": [], "rl": [], "sequential": []})
            for key in ("sft", "rl", "sequential"):
                into[key] += row[key]
    return list(merged.values())


def main(argv: list[str] | None = None) -> str:
    import torch

    from perception_r1.registry import get_registry

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    registry = get_registry()
    start = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f}s] {text}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        if args.smoke and args.model is None:  # built once; the seed processes get it as --model
            args.model = str(smoke_model(work / "smoke-model"))
            argv += ["--model", args.model]
        if args.jobs > 1 and len(args.seeds) > 1:
            rows = per_seed_processes(args, argv, work, log)
        else:
            rows = [run_task(args, registry, name.strip(), work, log) for name in args.tasks.split(",") if name.strip()]
    text = report(args, rows, time.perf_counter() - start)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return text


if __name__ == "__main__":
    main()
