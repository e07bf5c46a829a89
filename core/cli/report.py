"""`perception-r1 report RUN_DIR`: a self-contained HTML page for a run or an `eval --out` directory."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data", "--images", "data_dirs", multiple=True, type=click.Path(exists=True), metavar="DIR",
              help="A directory the gallery may read records' images from (repeatable; the run's --data is not "
                   "taken from its files). PERCEPTION_R1_IMAGE_ROOTS=/a:/b adds more.")
def command(run_dir: str, data_dirs: tuple[str, ...]) -> None:
    """Write RUN_DIR/report.html: reward curves, per-component rewards, zero-std groups, KL, completion
    length, metrics, and a gallery of answers (truth in green, prediction in magenta), best and worst first.
    Images are embedded only from RUN_DIR, the --data directories and PERCEPTION_R1_IMAGE_ROOTS."""
    from perception_r1.evaluate.report import write_report

    click.echo(str(write_report(run_dir, data_dirs)))
