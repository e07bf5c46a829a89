"""Every script in benchmarks/ in its smoke mode (``--smoke``: tiny sizes, one round, every side of each
comparison), run as a user runs it: it exits 0 and prints its tables and comparison lines, so a refactor that
breaks a benchmark fails CI. No time is asserted: a smoke run's numbers mean nothing. Slow: about 3 minutes
on 2 cores for all nine, most of it the five that start a process per side (grpo_step, memory, threads,
paper_findings, untuned_seeds); rewards, coco_eval, fuzz and rollout take about 20 s together."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from perception_r1.registry import get_registry

pytestmark = pytest.mark.slow
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def either(module: str, lines: list[str], skipped: str) -> list[str]:
    """``lines`` when the optional ``module`` is installed, else the line saying which side was skipped."""
    return lines if has(module) else [f"skipped {skipped}: {module} is not installed"]


def smoke(script: str, *args: str) -> str:
    """``script --smoke``'s output, after checking that it exited 0."""
    proc = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke", *args],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"{script}.py --smoke exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


TRL_SIDES = ["vs TRL GRPOTrainer (grad checkpointing off): throughput",
             "vs TRL GRPOTrainer (defaults: grad checkpointing on): throughput"]
MEMORY_LINES = (["full fine-tuning: ours", "full + gradient checkpointing: ours"]
                + (["LoRA r=16: ours"] if has("peft") else ["skipped the LoRA setting: peft is not installed"]))
EXPECTED = {
    "rewards": ["Detection reward (parse + match) vs per-sample pycocotools COCOeval AP reward", "| 300 x 300 ",
                "target at 100 x 100:", "Counting reward (parse + match) vs", "| 200 points "],
    "coco_eval": ["| tasks.coco.coco_ap ", "| plain pycocotools ",
                  "rounded the same way: exactly equal"]  # the same stats: a check of values, not of time
                 + either("faster_coco_eval", ["| faster-coco-eval ", "faster-coco-eval: "],
                          "the faster-coco-eval side"),
    "fuzz": [f"| {name} " for name in get_registry().tasks],
    "rollout": ["| batched G completions, KV cache ", "| one completion per call, KV cache ",
                "| batched G completions, no KV cache ", "batched sampling of G=2:"],
    "grpo_step": ["| perception-r1 Trainer.train_step ", "our step, seconds per step by region",
                  "our share outside model compute:"] + either("trl", TRL_SIDES, "the TRL sides"),
    "memory": ["| full fine-tuning ", "| full + gradient checkpointing "]
              + either("trl", MEMORY_LINES, "the TRL side"),
    "threads": ["| idle    | default ", "| idle    | --threads 1 ", "| idle    | --threads 2 "],
    "untuned_seeds": ["| ocr ", "seed 3: after (change ± SE)", "tasks improved on every untuned seed:"],
}


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_smoke_run_prints_its_comparisons(script: str) -> None:
    out = smoke(script)
    missing = [line for line in EXPECTED[script] if line not in out]
    assert not missing, f"{script}.py --smoke printed none of {missing}:\n{out[-3000:]}"


def test_paper_findings_smoke_trains_each_arm_and_prints_the_verdicts(tmp_path: Path) -> None:
    """SFT and RL per task and seed (each seed its own process), the detection RL with both matchings."""
    out = tmp_path / "findings.json"
    text = smoke("paper_findings", "--work", str(tmp_path / "runs"), "--json", str(out))
    assert "| task" in text and "| ocr " in text and "| detection " in text
    assert "(a) " in text and "(b) " in text and "sequential matching" in text
    rows = {row["task"]: row for row in json.loads(out.read_text())["rows"]}
    assert rows["ocr"]["perplexity"]["mean"] == 1.0 and rows["detection"]["perplexity"]["multi_object"]
    for row in rows.values():
        assert len(row["sft"]) == len(row["rl"]) == 2
    assert len(rows["detection"]["sequential"]) == 2 and rows["ocr"]["sequential"] == []
    # each RL run is the trainer with the budget asked for, on the task named (sequential: its own task)
    assert rows["ocr"]["budget"] == "2 x 2"
    config = (tmp_path / "runs" / "seed-1" / "detection-sequential-rl-1" / "config.yaml").read_text()
    assert "task: detection-sequential" in config and "steps: 2" in config and "seed: 1" in config


def test_memory_real_size_path_smoke() -> None:
    """``memory.py --shape qwen2_5_vl_3b``'s path (model built in its own process, LoRA + gradient checkpointing on
    both sides) on the 4-layer stand-in of the same architecture that ``--smoke`` builds."""
    out = smoke("memory", "--shape", "qwen2_5_vl_3b")
    if not has("peft"):
        assert "skipped the LoRA setting: peft is not installed" in out
        return
    assert "| LoRA r=16 + gradient checkpointing | perception-r1 " in out
    for line in either("trl", ["| LoRA r=16 + gradient checkpointing | TRL GRPOTrainer ",
                               "LoRA r=16 + gradient checkpointing: ours"], "the TRL side"):
        assert line in out, out[-3000:]
