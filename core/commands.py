"""Commands added to the CLI group. Each module named here exposes a click command called ``command``;
heavy imports (torch, transformers) stay inside the command bodies so `--help` stays fast."""

from importlib import import_module

MODULES: list[str] = ["cli_score", "cli_run", "newplugin", "sft", "cli_perplexity", "cli_eval", "cli_report"]

ALL = [import_module(f"perception_r1.{name}").command for name in MODULES]
