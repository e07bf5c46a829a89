"""Which engine a run reports, which engines may resume which runs, and the engine a CPU relaunch carries."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from perception_r1.errors import UserError
from perception_r1.train.engine import Engine, engine_from, resumable
from perception_r1.train.launch import requested
from perception_r1.train.sharded_state import adapter_to_model, peft_names

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (("NO", 1), "single process, 1 process"),
        (("MULTI_CPU", 2), "DDP, 2 processes"),
        (("MULTI_GPU", 8), "DDP, 8 processes"),
        (("MULTI_CPU", 1), "single process, 1 process"),  # torchrun with one worker: nothing is distributed
        (("FSDP", 2, 2), "FSDP2, 2 processes"),
        (("FSDP", 4, 1), "FSDP1, 4 processes"),
        (("DEEPSPEED", 8, None, 3), "DeepSpeed ZeRO-3, 8 processes"),
        (("DEEPSPEED", 2, None, 2), "DeepSpeed ZeRO-2, 2 processes"),
    ],
)
def test_the_engine_is_named_from_accelerates_state(state, expected):
    assert str(engine_from(*state)) == expected


@pytest.mark.parametrize(
    ("recorded", "current", "ok"),
    [
        (None, Engine("FSDP2", 2), True),  # config.yaml from before runs recorded their engine
        ("FSDP2, 2 processes", Engine("FSDP2", 4), True),  # whole checkpoints: the process count may change
        ("DDP, 2 processes", Engine("single process", 1), True),  # the same files either way
        ("single process, 1 process", Engine("DDP", 2), True),
        ("FSDP2, 2 processes", Engine("single process", 1), False),  # optimizer state keyed by name, not number
        ("DDP, 2 processes", Engine("FSDP2", 2), False),
        ("DeepSpeed ZeRO-3, 8 processes", Engine("FSDP2", 8), False),
    ],
)
def test_a_run_resumes_only_under_an_engine_that_reads_its_checkpoints(recorded, current, ok):
    assert resumable(recorded, current) is ok


def _launch(config: str) -> list[str]:
    return ["accelerate", "launch", "--config_file", str(CONFIGS / config), "--cpu", "--num_processes", "2", "x.py"]


def test_a_cpu_relaunch_carries_the_fsdp_configuration():
    request = requested(_launch("fsdp.yaml"))
    assert request is not None and request.processes == 2
    env = dict(request.environment)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"


def test_a_ddp_relaunch_carries_no_engine_variables():
    request = requested(_launch("ddp.yaml"))
    assert request is not None and request.environment == ()


@pytest.mark.parametrize("config", ["zero2.yaml", "zero3.yaml"])
def test_deepspeed_on_cpu_is_refused_not_replaced(config):
    with pytest.raises(UserError, match="DeepSpeed does not run on CPU processes"):
        requested(_launch(config))


def test_a_saved_adapter_goes_back_under_the_models_own_names():
    keys = ["model.layers.0.q_proj.base_layer.weight", "model.layers.0.q_proj.lora_A.default.weight",
            "model.layers.0.q_proj.lora_B.default.weight"]  # fmt: skip
    saved = {"base_model.model.model.layers.0.q_proj.lora_A.weight": torch.ones(2, 4),
             "base_model.model.model.layers.0.q_proj.lora_B.weight": torch.zeros(4, 2)}  # fmt: skip
    back = adapter_to_model(saved, keys)
    assert set(back) == set(keys[1:]) and torch.equal(back[keys[1]], torch.ones(2, 4))
    assert set(peft_names({keys[1]: torch.ones(1)})) == {"base_model.model." + keys[1]}


def test_an_adapter_of_another_model_is_a_clear_error():
    keys = ["model.layers.0.q_proj.lora_A.default.weight"]
    with pytest.raises(ValueError, match="does not match the model .e.g. base_model.model.model.layers.0.q_proj.lora_A"):
        adapter_to_model({"base_model.model.other.lora_A.weight": torch.ones(1)}, keys)


def test_a_one_process_run_says_so_in_config_metrics_and_start_line(tmp_path, capsys):
    import json

    import yaml

    from perception_r1.cli import main

    out = tmp_path / "run"
    assert main(["run", "--task", "ocr", "--threads", "1", "--set", "group_size=2", "--set", "prompts_per_step=1",
                 "--steps", "1", "--eval-samples", "0", "--set", "engine=DDP, 8 processes",  # a stale value: replaced
                 "--out", str(out)]) == 0  # fmt: skip
    assert "engine single process, 1 process" in capsys.readouterr().err  # the console writes to stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["engine"] == "single process, 1 process"
    assert [json.loads(line)["engine"] for line in (out / "metrics.jsonl").read_text().splitlines()] == ["single process"]
