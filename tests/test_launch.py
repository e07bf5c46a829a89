"""`accelerate launch --cpu --num_processes N ... run` runs N processes (accelerate alone starts one)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from perception_r1.train import launch
from perception_r1.train.launch import Request, requested, single_process_cpu_launch, torchrun_command

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
        (["python", "/usr/bin/accelerate", "launch", "--cpu", "--num_processes", "2", "-m", "x"], Request(2)),
        (["accelerate", "launch", "--cpu", "--num-processes=3", "-m", "perception_r1.cli", "run"], Request(3)),
        (["/venv/bin/accelerate-launch", "--cpu", "--num_processes=4", "script.py"], Request(4)),
        (["python", "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "x.py"], Request(2)),
        (["accelerate", "launch", "--cpu", "--num_processes", "4", "--num_machines", "2", "--machine_rank", "1",
          "x.py"], Request(4, 2, 1)),  # fmt: skip
        (["accelerate", "launch", "--cpu", "script.py"], Request(None)),  # no count given
        (["bash", "-c", "perception-r1 run"], None),  # not accelerate at all
    ],
)
def test_the_request_is_read_from_the_launcher_command_line(argv, expected):
    assert requested(argv) == expected


def test_the_process_count_may_come_from_the_named_config_file(tmp_path):
    config = tmp_path / "accelerate.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nnum_processes: 3\n"
                      "num_machines: 1\nmachine_rank: 0\nmixed_precision: 'no'\nuse_cpu: true\n")  # fmt: skip
    assert requested(["accelerate", "launch", "--cpu", "--config_file", str(config), "x.py"]) == Request(3)


def test_the_workers_run_the_same_command_under_torch_distributed():
    cmd = torchrun_command(Request(2), ["run", "--task", "ocr"], {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"})
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    flags = dict(zip(cmd[3:-5:2], cmd[4:-5:2], strict=True))
    assert flags == {"--nnodes": "1", "--node_rank": "0", "--nproc_per_node": "2",
                     "--master_addr": "10.0.0.1", "--master_port": "1234"}  # fmt: skip
    assert cmd[-5:] == ["-m", "perception_r1.cli", "run", "--task", "ocr"]


def test_several_machines_each_start_their_share():
    cmd = torchrun_command(Request(8, 2, 1), ["run"], {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "0"})
    flags = dict(zip(cmd[3:-3:2], cmd[4:-3:2], strict=True))
    assert (flags["--nnodes"], flags["--node_rank"], flags["--nproc_per_node"]) == ("2", "1", "4")
    assert flags["--master_port"] != "0"  # "pick a port" becomes a real free port


def test_nothing_is_relaunched_inside_a_worker(monkeypatch):
    for key, value in {**ACCELERATE_CPU, "RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(launch.os, "execv", lambda *a: pytest.fail("a worker must not start workers"))
    assert launch.relaunch_if_needed(["run"]) is None


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
    assert all(r["processes"] == 2 and r["engine"] == "DDP" for r in rows)
    assert "engine: DDP, 2 processes" in (out / "config.yaml").read_text()
    assert (out / "checkpoints" / "step-2" / "model.safetensors").is_file()
