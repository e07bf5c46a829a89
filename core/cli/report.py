"""`perception-r1 report RUN_DIR`: a self-contained HTML page for a run or an `eval --out` directory."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
def command(run_dir: str) -> None:
    """Write RUN_DIR/report.html: reward curves, per-component rewards, zero-std groups, KL, completion
    length, metrics, and a gallery of answers (truth in green, prediction in magenta), best and worst first."""
    from perception_r1.evaluate.report import write_report

    click.echo(str(write_report(run_dir)))
