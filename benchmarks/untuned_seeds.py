"""Does GRPO improve the embedded base on seeds nobody tuned on? (issue 25)

The built-in tasks' run settings (``tiny_run_defaults``) were chosen on seeds 0, 1 and 2. This runs
``perception-r1 run --task T --seed S --eval-samples N`` for seeds that took no part in that choice (default
3, 4, 5), every other setting the task's default, and reports the primary metric on the N held-out samples
(the same samples for every run) before and after training, with the paired bootstrap standard error of the
change over samples (the before and after answers of one resample of the held-out set are compared, so the
noise of which samples were drawn cancels). "Improved" means the change is in the metric's good direction.

    python benchmarks/untuned_seeds.py                  # 4 tasks x seeds 3, 4, 5, 1,024 held-out samples
    python benchmarks/untuned_seeds.py --work DIR       # finished runs in DIR are read, a killed one resumed
    python benchmarks/untuned_seeds.py --smoke          # ocr, seed 3, 2 steps, 8 held-out samples

A run takes 5-9 minutes on one thread (1,024-sample evaluations included); the twelve about 1.5 hours.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine, table
from _common import parse_args as parse_with_smoke

TASKS = ("grounding", "counting", "ocr", "detection")
SMOKE = {"tasks": "ocr", "seeds": "3", "eval_samples": 8, "steps": 2, "boot": 20}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--seeds", default="3,4,5", help="seeds outside the tuning seeds 0-2")
    p.add_argument("--eval-samples", type=int, default=1024)
    p.add_argument("--steps", type=int, help="override the task's steps (smoke only; the claim is about defaults)")
    p.add_argument("--boot", type=int, default=200, help="bootstrap resamples for the standard errors")
    p.add_argument("--work", type=Path, help="run directories (default: a new temporary directory)")
    p.add_argument("--json", type=Path, help="also write the results here")
    return parse_with_smoke(p, SMOKE, argv)


def train(args: argparse.Namespace, task: str, seed: int, out: Path) -> float:
    """The run (resumed when a kill left it unfinished); seconds it took, 0 when it had already finished."""
    done = out / "eval.json"
    if done.is_file() and "after" in json.loads(done.read_text()):
        return 0.0
    cmd = [sys.executable, "-m", "perception_r1.cli", "run", "--task", task, "--seed", str(seed)]
    cmd += ["--resume", str(out)] if (out / "config.yaml").is_file() else \
        ["--out", str(out), "--eval-samples", str(args.eval_samples)] + (["--steps", str(args.steps)] if args.steps else [])
    start = time.perf_counter()
    with (out.parent / f"{out.name}.log").open("a") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}): see {out.parent / f'{out.name}.log'}")
    return time.perf_counter() - start


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def paired_bootstrap(task: Any, before: list[dict[str, Any]], after: list[dict[str, Any]], reps: int,
                     seed: int = 0) -> float:
    """Standard error of metric(after) - metric(before) over resamples of the held-out samples (paired: one
    resample of sample indices scores both)."""
    metric, rng, n = task.primary_metric, random.Random(seed), len(before)
    diffs = []
    for _ in range(reps):
        idx = [rng.randrange(n) for _ in range(n)]
        diffs.append(task.evaluate([after[i] for i in idx])[metric] - task.evaluate([before[i] for i in idx])[metric])
    return statistics.stdev(diffs)


def measure(args: argparse.Namespace, name: str, seed: int, work: Path) -> dict[str, Any]:
    from perception_r1.registry import get_registry

    task = get_registry().task(name)
    out = work / f"{name}-{seed}"
    seconds = train(args, name, seed, out)
    before, after = records(out / "eval_before.jsonl"), records(out / "eval_after.jsonl")
    if [r["id"] for r in before] != [r["id"] for r in after]:
        raise SystemExit(f"{out}: the before and after evaluations scored different samples")
    metric = task.primary_metric
    b, a = task.evaluate(before)[metric], task.evaluate(after)[metric]
    change = a - b
    return {"task": name, "seed": seed, "metric": metric, "before": b, "after": a, "change": change,
            "se": paired_bootstrap(task, before, after, args.boot), "samples": len(before), "seconds": seconds,
            "improved": change > 0 if task.higher_is_better else change < 0, "higher_is_better": task.higher_is_better}


def report(rows: list[dict[str, Any]], seeds: list[int]) -> str:
    lines, body = [], []
    for name in dict.fromkeys(r["task"] for r in rows):
        mine = {r["seed"]: r for r in rows if r["task"] == name}
        first = next(iter(mine.values()))
        arrow = "higher" if first["higher_is_better"] else "lower"
        cells = [f"{mine[s]['after']:.4f} ({mine[s]['change']:+.4f} ± {mine[s]['se']:.4f})" for s in seeds]
        wins = sum(mine[s]["improved"] for s in seeds)
        beyond = sum(mine[s]["improved"] and abs(mine[s]["change"]) > 2 * mine[s]["se"] for s in seeds)
        body.append([name, f"{first['metric']} ({arrow} is better)", f"{first['before']:.4f}", *cells,
                     f"{wins} of {len(seeds)} ({beyond} beyond 2 SE)"])
    lines.append(table(["task", "metric", "before", *[f"seed {s}: after (change ± SE)" for s in seeds], "improved"],
                       body))
    improved_everywhere = [b[0] for b in body if b[-1].startswith(f"{len(seeds)} of")]
    lines.append(f"tasks improved on every untuned seed: {', '.join(improved_everywhere) or 'none'} "
                 f"({len(improved_everywhere)} of {len(body)})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    import tempfile

    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="untuned-seeds-"))
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in str(args.seeds).split(",")]
    print(f"# untuned seeds {seeds}, {args.eval_samples} held-out samples; {machine()}; runs in {work}", flush=True)
    rows = []
    for seed in seeds:
        for name in str(args.tasks).split(","):
            rows.append(measure(args, name, seed, work))
            r = rows[-1]
            trained = f", trained in {r['seconds']:.0f}s" if r["seconds"] else ", read from an earlier run"
            print(f"{name} seed {seed}: {r['metric']} {r['before']:.4f} -> {r['after']:.4f} "
                  f"({r['change']:+.4f} ± {r['se']:.4f}){trained}",
                  flush=True)
    text = report(rows, seeds)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2))
    return text


if __name__ == "__main__":
    main()
