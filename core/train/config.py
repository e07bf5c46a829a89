"""Run configuration: defaults, a YAML/JSON file, then command-line flags, validated by one JSON Schema."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from perception_r1.contract import Task, task_names, template_problem
from perception_r1.data.io import MAX_CONFIG_BYTES, load_yaml
from perception_r1.errors import UserError
from perception_r1.registry import Registry
from perception_r1.train.presets import apply_recipe, recipe_keys, recipe_name

# Paper defaults where the paper gives one (G=8, beta=0.04, clip 0.2, temperature 1.0); sizes scaled so the
# embedded tiny default trains in minutes on two CPU cores. The default task is the run-config schema's
# ("default" of "task"): core names no task.
DEFAULTS: dict[str, Any] = {
    "task": None,
    "model": None,
    "coords": None,
    "lora_rank": None,
    "lora_alpha": None,
    "lora_vision": False,
    "gradient_checkpointing": False,
    "mixed_precision": None,
    "data": None,
    "out": None,
    "engine": None,  # written by the run (perception_r1.train.engine)
    "steps": 60,
    "seed": 0,
    "group_size": 8,
    "prompts_per_step": 4,
    "learning_rate": None,
    "beta": 0.04,
    "clip_eps": 0.2,
    "temperature": 1.0,
    "max_new_tokens": None,
    "loss_aggregation": "grpo",
    "scale_rewards": True,
    "updates_per_batch": 1,
    # the RL menu (README "The RL menu"): every item off by default, so a default run is what it was
    "recipe": None,
    "clip_eps_low": None,
    "clip_eps_high": None,
    "importance_sampling_level": "token",
    "mask_truncated_completions": False,
    "dynamic_sampling": False,
    "dynamic_sampling_max_tries": 4,
    "sampler_correction_cap": None,
    "rewards": {},
    "eval_samples": 64,
    "eval_batch_size": 16,
    "eval_every": 0,
    "checkpoint_every": 20,
    "log_completions_every": 5,
    "prompt_templates": {},
    "threads": None,
}

PAPER_LEARNING_RATE = 1e-6
TINY_LEARNING_RATE = 1e-4
PAPER_MAX_NEW_TOKENS = 768  # grounding and counting in the paper (2048 for detection)
TINY_MAX_NEW_TOKENS = 160  # the tiny model's longest answers (detection) fit
#: a model with fewer parameters gets the small-model defaults (the embedded base, or SFT made from it)
SMALL_MODEL_PARAMS = 100_000_000
#: a single task on a small model, when the task sets none of its own (``tiny_run_defaults``): the settings
#: under which all four built-in tasks improved the embedded base (``perception_r1.tasks.tiny_rl``; at the
#: paper's temperature 1.0 every one got worse, and 4 prompts a step or 64 held-out samples are noise)
SMALL_TASK_DEFAULTS: dict[str, Any] = {"temperature": 0.7, "prompts_per_step": 8, "eval_samples": 256,
                                       "eval_batch_size": 32}


def model_defaults(num_params: int) -> dict[str, Any]:
    """The defaults that depend on what the model is: its size decides, not where it was loaded from.

    A small model runs on one torch thread: its matrices are too small to split well, and a second thread
    that spin-waits for a core another process holds made the main command 3x slower
    (``benchmarks/threads.py``). Larger models keep torch's own choice (None)."""
    if num_params < SMALL_MODEL_PARAMS:
        return {"learning_rate": TINY_LEARNING_RATE, "max_new_tokens": TINY_MAX_NEW_TOKENS, "threads": 1}
    return {"learning_rate": PAPER_LEARNING_RATE, "max_new_tokens": PAPER_MAX_NEW_TOKENS, "threads": None}


def use_threads(requested: int | None, num_params: int | None = None) -> None:
    """The one thread policy of run, eval and sft: the threads asked for; else, once the model is known
    (``num_params``), its size's default (:func:`model_defaults`); else torch's own choice. Called before
    the model loads (so loading uses the threads asked for) and again after."""
    import torch

    threads = requested or (model_defaults(num_params)["threads"] if num_params is not None else None)
    if threads:
        torch.set_num_threads(threads)


def fill_model_defaults(config: dict[str, Any], num_params: int) -> list[str]:
    """Fill the model-dependent keys left null; returns the keys it filled."""
    defaults = model_defaults(num_params)
    filled = [k for k, v in defaults.items() if config.get(k) is None and v is not None]
    config.update({k: defaults[k] for k in filled})
    return filled


def explicit_keys(from_file: dict[str, Any] | None, overrides: dict[str, Any] | None) -> set[str]:
    """The keys a user set: those of the config file's mapping and the flags given (None = not given), and the
    keys of the recipe they named (``--set recipe=dapo`` chooses those settings as much as setting them)."""
    given = set(from_file or {}) | {k for k, v in (overrides or {}).items() if v is not None}
    try:
        return given | set(recipe_keys(recipe_name(from_file, overrides)))
    except ValueError:  # an unknown recipe: resolve reports it, naming the key
        return given


def apply_task_defaults(config: dict[str, Any], tasks: Sequence[Any], given: set[str], num_params: int) -> list[str]:
    """A single-task run of a small model takes the task's ``tiny_run_defaults`` for every key the user did
    not set (the settings under which that task's RL improves the embedded base), and
    :data:`SMALL_TASK_DEFAULTS` for the keys the task does not set either; returns the keys applied."""
    if num_params >= SMALL_MODEL_PARAMS or len(tasks) != 1:
        return []
    defaults = {**SMALL_TASK_DEFAULTS, **(getattr(tasks[0], "tiny_run_defaults", {}) or {})}
    applied = [k for k in defaults if k not in given]
    config.update({k: defaults[k] for k in applied})
    validate(config, source=f"task '{tasks[0].name}' tiny_run_defaults")
    return applied


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["group_size=4", "temperature=0.7"]`` -> {key: value}; values are read as YAML (numbers, true, null)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: use KEY=VALUE (keys: {', '.join(sorted(DEFAULTS))})")
        try:
            out[key.strip()] = load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise UserError(f"--set {item!r}: the value is not valid YAML") from None
    return out


def resolve_tasks(registry: Registry, spec: str, templates: dict[str, str]) -> list[Task]:
    """The run's tasks, in spec order, each with the prompt template the config gives it (if any)."""
    tasks = []
    for name in task_names(spec):
        task = registry.task(name)
        if name in templates:  # a config override of the paper's wording; the registry's task stays as it was
            if problem := template_problem(templates[name]):
                raise UserError(f"prompt_templates.{name}: {problem}")
            task = copy.copy(task)
            task.prompt_template = templates[name]
        tasks.append(task)
    unknown = set(templates) - {t.name for t in tasks}
    if unknown:
        raise UserError(f"prompt_templates names task(s) not in this run: {', '.join(sorted(unknown))}")
    return tasks


def _schema() -> dict[str, Any]:
    text = resources.files("perception_r1.registry").joinpath("schemas/run_config.schema.json").read_text()
    return json.loads(text)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON config file, read once (a pipe or /dev/stdin has no second reading) and
    capped on the bytes read, not on what ``stat`` says (a pipe or /dev/zero reports 0)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise UserError(f"config {path} is larger than {MAX_CONFIG_BYTES:,} bytes: not a run config")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else load_yaml(text)
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        first = " ".join(str(getattr(exc, "problem", None) or exc).split())[:200]
        raise UserError(f"{path}{where}: config is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {first}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a mapping of keys to values, not {type(data).__name__}")
    return data


def _non_finite(value: Any, key: str = "") -> tuple[str, float] | None:
    """(dotted key, value) of the first NaN or infinity in ``value`` (JSON Schema bounds pass NaN: ``nan <= 0``
    is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        return key or "(top level)", value
    if isinstance(value, dict):
        return next((found for name, v in value.items()
                     if (found := _non_finite(v, f"{key}.{name}" if key else str(name)))), None)
    return None


def validate(config: dict[str, Any], source: str = "config") -> None:
    """Raise a UserError naming the offending key."""
    if found := _non_finite(config):
        raise UserError(f"{source}: key '{found[0]}': {found[1]!r} is not a finite number")
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties" and not err.path:
            known = ", ".join(sorted(_schema()["properties"]))
            raise UserError(f"{source}: {err.message} (known keys: {known})")
        key = ".".join(str(p) for p in err.path) or "(top level)"
        raise UserError(f"{source}: key '{key}': {err.message}")


def resolve(file: str | Path | None = None, overrides: dict[str, Any] | None = None,
            from_file: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults < config file < overrides (flags given on the command line; None means not given).

    ``from_file``: the file's mapping when the caller has read it already (:func:`read_config_file`: a pipe
    reads once). ``learning_rate`` and ``max_new_tokens`` left null are filled from the model's size by
    :func:`perception_r1.train.plan.plan_run`."""
    config = dict(DEFAULTS)
    if file is not None:
        from_file = read_config_file(file) if from_file is None else from_file
        validate(from_file, source=str(file))
        config.update(from_file)
    config.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if config["task"] is None:
        from perception_r1.registry import get_registry

        config["task"] = get_registry().default_task()
    validate(config)
    given = set(from_file or {} if file is not None else {}) | {k for k, v in (overrides or {}).items() if v is not None}
    apply_recipe(config, given)  # the user's own keys win over the recipe's
    return config  # learning_rate / max_new_tokens may stay null: fill_model_defaults, once the model is known


def dump_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)
