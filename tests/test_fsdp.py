"""FSDP2 on 2 CPU processes (gloo): `accelerate launch --config_file configs/accelerate/fsdp.yaml --cpu` trains
with FSDP (not DDP), says so, checkpoints whole weights, resumes exactly and the checkpoint becomes a model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["--set", "checkpoint_every=1", "--set", "prompts_per_step=2", "--set", "group_size=4",
            "--set", "max_new_tokens=12", "--eval-samples", "2", "--threads", "1"]  # fmt: skip
ENV = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}


def _fsdp(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "configs" / "accelerate" / "fsdp.yaml"), "--cpu", "--num_processes", "2",
               "--main_process_port", "0", "-m", "perception_r1.cli", "run", *args]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENV)
    # a worker's own error comes first; torchrun's summary of the failed ranks last
    first = proc.stderr.find("Traceback")
    assert proc.returncode == 0, proc.stderr[max(first, 0):][:3000] + "\n...\n" + proc.stderr[-1500:]
    return proc


def _metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for row in rows:  # wall-clock and memory differ between runs by nature
        row.pop("seconds"), row.pop("generation_seconds"), row.pop("peak_rss_mb")
    return rows


def _weights(out: Path, step: int, lora: bool) -> dict[str, torch.Tensor]:
    return load_file(out / "checkpoints" / f"step-{step}" / ("adapter_model.safetensors" if lora else "model.safetensors"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perception_r1.cli", *args], capture_output=True, text=True,
                          timeout=600, env=ENV)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_fsdp_run_resumes_exactly_and_becomes_a_model(tmp_path, small_model, lora):
    common = ["--task", "ocr", "--model", str(small_model), *SETTINGS, *(["--lora-rank", "4"] if lora else [])]
    straight, split = tmp_path / "straight", tmp_path / "split"
    started = _fsdp(*common, "--steps", "3", "--out", str(straight))
    assert "FSDP2, from the launch configuration" in started.stderr  # the relaunch kept the configuration
    assert "engine FSDP2, 2 processes" in started.stdout + started.stderr  # the start line
    assert "engine: FSDP2, 2 processes" in (straight / "config.yaml").read_text()
    _fsdp(*common, "--steps", "1", "--out", str(split))  # stops after step 1's checkpoint, as a kill would
    _fsdp("--resume", str(split), "--steps", "3")

    rows = _metrics(straight)
    assert [r["step"] for r in rows] == [1, 2, 3] and {r["engine"] for r in rows} == {"FSDP2"}
    assert _metrics(split) == rows
    final, first = _weights(straight, 3, lora), _weights(straight, 1, lora)
    assert any(not torch.equal(final[k], first[k]) for k in final), "training did not change the weights"
    resumed = _weights(split, 3, lora)
    assert resumed.keys() == final.keys() and all(torch.equal(final[k], resumed[k]) for k in final)

    model = tmp_path / "model"  # the checkpoint holds whole weights: save-model and --model take it as it is
    saved = _cli("save-model", str(straight), str(model))
    assert saved.returncode == 0, saved.stderr[-2000:]
    evaluated = _cli("eval", "--task", "ocr", "--model", str(model), "--limit", "2", "--threads", "1")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    if not lora:
        assert all(torch.equal(v, final[k]) for k, v in load_file(model / "model.safetensors").items() if k in final)


def test_an_fsdp_run_is_not_resumed_by_another_engine(tmp_path, small_model):
    out = tmp_path / "run"
    _fsdp("--task", "ocr", "--model", str(small_model), *SETTINGS, "--steps", "1", "--out", str(out))
    plain = _cli("run", "--resume", str(out))  # one process: it would load the sharded optimizer state wrongly
    assert plain.returncode == 2, plain.stderr[-2000:]
    assert "the run trained with FSDP2, 2 processes, this launch runs single process" in plain.stderr


GATHER_SCRIPT = """
import json, torch, torch.distributed as dist
from perception_r1.model.policy import Policy
from perception_r1.train.engine import engine_of, gathered_for_generation, make_accelerator, prepare_model

accelerator = make_accelerator(None)
policy = Policy.load(MODEL)
model, _ = accelerator.prepare(policy.model, torch.optim.AdamW(policy.model.parameters(), lr=1e-3))
prepare_model(accelerator, model)
gathers = []
for name in ("all_gather_single", "all_gather_into_tensor"):  # what FSDP2's all-gather calls, by torch version
    if hasattr(dist, name):
        setattr(dist, name, lambda *a, _real=getattr(dist, name), **k: gathers.append(1) or _real(*a, **k))
ids = torch.tensor([[5, 6, 7, 8]])
units = sum(1 for m in model.modules() if type(m).__name__.startswith("FSDP"))
with gathered_for_generation(accelerator, model):
    inside = len(gathers)
    if accelerator.is_main_process:  # the main process alone, as an evaluation runs: nothing may wait for the other
        out = model.generate(input_ids=ids, max_new_tokens=6, min_new_tokens=6, do_sample=False, synced_gpus=False)
    during = len(gathers) - inside
per_token = len(gathers)
model.generate(input_ids=ids, max_new_tokens=6, min_new_tokens=6, do_sample=False)  # no gathering first
per_token = len(gathers) - per_token
with open(f"{OUT}/result-{accelerator.process_index}.json", "w") as handle:  # one file per process: no interleaving
    json.dump([str(engine_of(accelerator)), units, inside, during, per_token], handle)
"""


def test_generation_gathers_the_shards_once_not_per_token(tmp_path, small_model):
    script = tmp_path / "gather.py"
    script.write_text(f"MODEL, OUT = {str(small_model)!r}, {str(tmp_path)!r}\n" + GATHER_SCRIPT)
    env = {**ENV, "ACCELERATE_USE_CPU": "True", "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2",
           "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP", "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    # a worker's own error comes first; torchrun's summary of the failed ranks last
    first = proc.stderr.find("Traceback")
    assert proc.returncode == 0, proc.stderr[max(first, 0):][:3000] + "\n...\n" + proc.stderr[-1500:]
    results = [json.loads((tmp_path / f"result-{rank}.json").read_text()) for rank in (0, 1)]
    for engine, units, inside, during, per_token in results:
        assert engine == "FSDP2, 2 processes"
        assert 1 < inside <= units  # at most one all-gather per FSDP unit on entering (a tied lm_head has none)
        assert during == 0  # generating 6 tokens inside gathers nothing more
        assert per_token >= 6 * 2  # without it every token gathers (at least) both decoder layers again
