"""Commands added to the CLI group. Each module named here exposes a click command called ``command``;
heavy imports (torch, transformers) stay inside the command bodies so `--help` stays fast."""

from importlib import import_module

MODULES: list[str] = ["score", "run", "newplugin", "sft", "perplexity", "eval", "report", "docs", "merge", "export"]

ALL = [import_module(f"perception_r1.cli.{name}").command for name in MODULES]
ALL.append(import_module("perception_r1.cli.merge").merge_lora)  # the old name of save-model, kept for scripts
