"""`accelerate launch --cpu --num_processes N ... run` runs N processes (accelerate alone starts one)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from perception_r1.launch import requested_processes, single_process_cpu_launch, torchrun_command

ACCELERATE_CPU = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


def test_a_lone_process_of_a_multi_process_cpu_launch_is_recognised():
    assert single_process_cpu_launch(ACCELERATE_CPU)


@pytest.mark.parametrize(
    "env",
    [
        {},  # a plain `perception-r1 run`
        {"ACCELERATE_USE_CPU": "True"},  # accelerate launch --cpu with one process: no rendezvous address
        {**ACCELERATE_CPU, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"},  # one of torchrun's workers
        {**ACCELERATE_CPU, "OMPI_COMM_WORLD_SIZE": "2"},  # accelerate's mpirun path
        {"ACCELERATE_USE_CPU": "False", "MASTER_ADDR": "127.0.0.1"},
    ],
)
def test_every_other_start_runs_in_place(env):
    assert not single_process_cpu_launch(env)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["python", "/usr/bin/accelerate", "launch", "--cpu", "--num_processes", "2", "-m", "x"], 2),
        (["accelerate", "launch", "--cpu", "--num-processes=3", "-m", "perception_r1.cli", "run"], 3),
        (["/venv/bin/accelerate-launch", "--cpu", "--num_processes=4", "script.py"], 4),
        (["python", "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "x.py"], 2),
        (["accelerate", "launch", "--cpu", "script.py"], None),  # no count given
        (["bash", "-c", "perception-r1 run"], None),  # not accelerate at all
    ],
)
def test_the_process_count_is_read_from_the_launcher_command_line(argv, expected):
    assert requested_processes(argv) == expected


def test_the_workers_run_the_same_command_under_torch_distributed():
    cmd = torchrun_command(2, ["run", "--task", "ocr"], {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"})
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "2"
    assert cmd[cmd.index("--master_addr") + 1] == "10.0.0.1"
    assert cmd[cmd.index("--master_port") + 1] == "1234"
    assert cmd[-5:] == ["-m", "perception_r1.cli", "run", "--task", "ocr"]


@pytest.mark.slow
def test_accelerate_launch_cpu_runs_two_processes(tmp_path, small_model):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--main_process_port", "0",
         "-m", "perception_r1.cli", "run", "--task", "ocr", "--model", str(small_model), "--steps", "2",
         "--eval-samples", "2", "--threads", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # written once, by the main process
    assert all(r["processes"] == 2 for r in rows)
    assert (out / "checkpoints" / "step-2" / "model.safetensors").is_file()
