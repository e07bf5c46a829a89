"""Console output shared by the commands: metric tables and progress bars (rich)."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console(stderr=True)


def metrics_table(columns: Mapping[str, Mapping[str, float]], title: str | None = None) -> Table:
    """One row per metric, one column per set of metrics (e.g. before / after)."""
    table = Table(title=title)
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    keys: list[str] = []
    for metrics in columns.values():
        keys += [k for k in metrics if k not in keys]
    for key in keys:
        table.add_row(key, *[_fmt(m.get(key)) for m in columns.values()])
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
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
