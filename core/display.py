"""Console output shared by the commands: metric tables and progress bars (rich)."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console(stderr=True, markup=False)  # run dirs, task and file names are user text, never markup


def metrics_table(columns: Mapping[str, Mapping[str, float]], title: str | None = None) -> Table:
    """One row per metric, one column per set of metrics (e.g. before / after)."""
    table = Table(title=escape(title) if title else title)  # file and task names are user text, not markup
    table.add_column("metric")
    for name in columns:
        table.add_column(escape(str(name)), justify="right")
    keys: list[str] = []
    for metrics in columns.values():
        keys += [k for k in metrics if k not in keys]
    for key in keys:
        table.add_row(escape(str(key)), *[escape(_fmt(m.get(key))) for m in columns.values()])
    return table


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_table(table: Table) -> None:
    Console().print(table)


def progress() -> Progress:
    """A progress bar on stderr; it hides itself when stderr is not a terminal (logs, CI)."""
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
