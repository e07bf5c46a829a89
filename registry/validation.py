"""Static checks of a task object, run when a plugin registers it.

Duck-typed on purpose: the registry sits below the rest of ``perception_r1`` and imports nothing of
it, so a task is judged by what it has (a name, the contract's methods, a coordinate space, a reward
range, a valid JSON Schema, a prompt template, a primary metric), not by the class it comes from.
"""

from __future__ import annotations

import math
from typing import Any

import jsonschema

#: the spaces a completion's numbers can be in (``perception_r1.COORD_SPACES`` re-exports this)
COORD_SPACES = ("pixels", "norm1000", "norm1", "resized", "none")

#: what core calls on every registered task
TASK_METHODS = ("parse", "reward", "evaluate", "render", "synthetic", "prompt", "batch_reward")


def _bad_name(name: Any) -> bool:
    return not isinstance(name, str) or not name or any(c.isspace() or c in ":," for c in name)


def _bad_range(lo_hi: Any) -> bool:
    return not (
        isinstance(lo_hi, tuple)
        and len(lo_hi) == 2
        and all(isinstance(v, int | float) and math.isfinite(v) for v in lo_hi)
        and lo_hi[0] < lo_hi[1]
    )


def _schema_problem(schema: Any) -> str | None:
    try:
        if not isinstance(schema, dict) or not schema:
            raise jsonschema.SchemaError("missing")
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return exc.message
    return None


def contract_problems(task: Any) -> list[str]:
    """Static checks of a task object. Empty list = fine; otherwise one sentence per problem."""
    name = getattr(task, "name", None)
    if _bad_name(name):
        return [f"task {task!r} needs a non-empty `name` without spaces, ':' or ','"]
    problems = [f"task '{name}' has no `{m}` method" for m in TASK_METHODS if not callable(getattr(task, m, None))]
    if getattr(task, "coord_space", None) not in COORD_SPACES:
        problems.append(f"task '{name}': coord_space must be one of {', '.join(COORD_SPACES)}")
    if _bad_range(getattr(task, "reward_range", None)):
        problems.append(f"task '{name}': reward_range must be a finite (low, high) tuple with low < high")
    schema_problem = _schema_problem(getattr(task, "solution_schema", None))
    if schema_problem is not None:
        problems.append(f"task '{name}': solution_schema is not a valid JSON Schema ({schema_problem})")
    template = getattr(task, "prompt_template", None)
    if not isinstance(template, str) or not template:
        problems.append(f"task '{name}' needs a prompt_template")
    if not getattr(task, "primary_metric", ""):
        problems.append(f"task '{name}' needs a primary_metric")
    return problems
