"""Multi-process CPU runs under ``accelerate launch --cpu --num_processes N``.

accelerate (1.x) starts CPU jobs through its "simple" launcher: with ``--cpu`` it runs ONE process
and leaves the others to ``mpirun`` (``--mpirun_hostfile``). Without MPI a user asking for N processes
silently gets one. ``perception-r1 run`` notices that case (accelerate's CPU environment, a rendezvous
address, no rank) and starts the N workers itself with PyTorch's own launcher (``torch.distributed.run``,
gloo), which is what ``torchrun --nproc_per_node N`` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

#: set by any launcher that already started one process per rank (torchrun, accelerate's GPU path, MPI)
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")

LAUNCHERS = ("launch", "accelerate.commands.launch")


def single_process_cpu_launch(env: Mapping[str, str]) -> bool:
    """True when accelerate's simple CPU launcher started this process alone for a multi-process job.

    It sets ``MASTER_ADDR`` only when more than one process was asked for, and nothing sets a rank.
    """
    uses_cpu = env.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return uses_cpu and "MASTER_ADDR" in env and not any(v in env for v in RANK_VARIABLES)


def requested_processes(launcher_argv: Sequence[str]) -> int | None:
    """``--num_processes`` of an ``accelerate launch ...`` command line, parsed by accelerate's own parser."""
    from accelerate.commands.launch import launch_command_parser

    argv = list(launcher_argv)
    # `accelerate launch ...`, `accelerate-launch ...` or `python -m accelerate.commands.launch ...`
    starts = [i for i, a in enumerate(argv) if a in LAUNCHERS or os.path.basename(a) == "accelerate-launch"]
    if not starts:
        return None
    try:
        args, _ = launch_command_parser().parse_known_args(argv[starts[0] + 1 :])
    except SystemExit:  # argparse refuses it: not a command line we understand
        return None
    return args.num_processes


def parent_command_line() -> list[str]:
    import psutil  # an accelerate dependency

    try:
        parent = psutil.Process().parent()
        return parent.cmdline() if parent is not None else []
    except psutil.Error:
        return []


def torchrun_command(processes: int, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The ``torch.distributed.run`` command that starts ``processes`` copies of ``perception_r1.cli argv``."""
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node", str(processes),
        "--master_addr", env.get("MASTER_ADDR", "127.0.0.1"),
        "--master_port", _port(env.get("MASTER_PORT", "29500")),
        "-m", "perception_r1.cli", *argv,
    ]  # fmt: skip


def _port(port: str) -> str:
    """``port``, or a free one for 0 (accelerate's "pick one for me", which its CPU path passes on as is)."""
    if port != "0":
        return port
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def relaunch_if_needed(argv: Sequence[str]) -> int | None:
    """Start the workers an ``accelerate launch --cpu`` asked for; their exit code, or None to run here."""
    import click

    if not single_process_cpu_launch(os.environ):
        return None
    processes = requested_processes(parent_command_line())
    if processes is None or processes < 2:
        click.echo(
            "warning: started by `accelerate launch --cpu` without a process count this command can read: "
            "running one process (for N CPU processes: torchrun --nproc_per_node N -m perception_r1.cli run ...)",
            err=True,
        )
        return None
    click.echo(f"accelerate launch --cpu starts one process: starting {processes} workers with torch.distributed.run")
    return subprocess.call(torchrun_command(processes, argv, os.environ))
