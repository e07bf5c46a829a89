"""Multi-process CPU runs under ``accelerate launch --cpu --num_processes N``.

accelerate (1.x) starts CPU jobs through its "simple" launcher: with ``--cpu`` it runs ONE process
and leaves the others to ``mpirun`` (``--mpirun_hostfile``). Without MPI a user asking for N processes
silently gets one. ``perception-r1 run`` notices that case (accelerate's CPU environment, a rendezvous
address, no rank) and becomes PyTorch's own launcher (``torch.distributed.run``, gloo) for the N
workers, which is what ``torchrun --nproc_per_node N`` does. The process is replaced (``exec``), so
signals and the exit code are torchrun's, as if the user had typed that command.

The simple launcher also drops the configuration's engine (it sets no ``FSDP_*`` variables): the workers get
the environment accelerate's own multi-process launcher would give them for it, so an FSDP configuration
trains with FSDP (:mod:`perception_r1.train.engine`), never silently with DDP. DeepSpeed on CPU is refused.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from perception_r1.errors import UserError

#: set by any launcher that already started one process per rank (torchrun, accelerate's GPU path, MPI)
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LAUNCHERS = ("launch", "accelerate.commands.launch")


@dataclass(frozen=True)
class Request:
    """What an ``accelerate launch`` command line asked for."""

    processes: int | None  # in total, over all machines
    machines: int = 1
    machine_rank: int = 0
    environment: tuple[tuple[str, str], ...] = ()  # the engine's variables (FSDP_*), as accelerate sets them


def single_process_cpu_launch(env: Mapping[str, str]) -> bool:
    """True when accelerate's simple CPU launcher started this process alone for a multi-process job.

    It sets ``MASTER_ADDR`` only when more than one process (or machine) was asked for; nothing sets a rank.
    """
    uses_cpu = env.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return uses_cpu and "MASTER_ADDR" in env and not any(v in env for v in RANK_VARIABLES)


def requested(launcher_argv: Sequence[str]) -> Request | None:
    """What an ``accelerate launch ...`` command line asked for, parsed by accelerate's own parser
    (``--num_processes`` / ``--num_machines`` / ``--machine_rank``, else the ``--config_file`` it names)."""
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
    processes, machines = args.num_processes, args.num_machines
    if args.config_file and (processes is None or machines is None):
        from accelerate.commands.config import load_config_from_file

        try:
            config = load_config_from_file(args.config_file)
        except Exception:  # accelerate itself reports a broken config file; here it only means "unknown"
            return None
        processes = config.num_processes if processes is None else processes
        machines = config.num_machines if machines is None else machines
    return Request(processes, machines or 1, args.machine_rank or 0, tuple(sorted(engine_environment(args).items())))


def engine_environment(args: Any) -> dict[str, str]:
    """The variables accelerate's multi-process launcher sets for the engine ``args`` (its parsed command line,
    config file included) asks for: ``ACCELERATE_USE_FSDP`` and ``FSDP_*``; none for DDP."""
    from accelerate.commands.launch import _validate_launch_command
    from accelerate.utils.launch import prepare_multi_gpu_env

    try:
        args, _, _ = _validate_launch_command(copy.copy(args))
    except Exception:  # accelerate reports its own configuration errors; here: no engine to carry
        return {}
    if args.use_deepspeed:
        raise UserError("DeepSpeed does not run on CPU processes under accelerate (it would train as DDP): "
                        "on CPU use configs/accelerate/fsdp.yaml or ddp.yaml; DeepSpeed needs GPUs")
    if not args.use_fsdp:
        return {}
    args.main_process_port = 0  # only the variables are wanted: no port check, no warning about one
    env = prepare_multi_gpu_env(args)
    return {k: v for k, v in env.items() if k == "ACCELERATE_USE_FSDP" or k.startswith("FSDP_")}


def parent_command_line() -> list[str]:
    import psutil  # an accelerate dependency

    try:
        parent = psutil.Process().parent()
        return parent.cmdline() if parent is not None else []
    except psutil.Error:
        return []


def torchrun_command(request: Request, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The ``torch.distributed.run`` command that starts this machine's share of the requested workers."""
    assert request.processes is not None
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", str(request.machines),
        "--node_rank", str(request.machine_rank),
        "--nproc_per_node", str(max(1, request.processes // request.machines)),
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


def relaunch_if_needed(argv: Sequence[str]) -> None:
    """Become ``torch.distributed.run`` for the workers an ``accelerate launch --cpu`` asked for; return to
    run in this process when there is nothing to start."""
    import click

    if not single_process_cpu_launch(os.environ):
        return
    request = requested(parent_command_line())
    if request is None or request.processes is None or request.processes < 2:
        click.echo(
            "warning: started by `accelerate launch --cpu` without a process count this command can read: "
            "running one process (for N CPU processes: torchrun --nproc_per_node N -m perception_r1.cli run ...)",
            err=True,
        )
        return
    environment = dict(request.environment)
    engine = f" (FSDP{environment.get('FSDP_VERSION', '1')}, from the launch configuration)" if environment else ""
    click.echo(
        f"accelerate launch --cpu starts one process: starting {request.processes} workers with "
        f"torch.distributed.run{engine}",
        err=True,
    )
    command = torchrun_command(request, argv, os.environ)
    sys.stdout.flush(), sys.stderr.flush()
    os.execve(command[0], command, {**os.environ, **environment})
