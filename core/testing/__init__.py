"""Contract kit: the checks every task plugin gets for free.

In a plugin's tests::

    from perception_r1.testing import TaskContract

    class TestMyTask(TaskContract):
        task_name = "my-task"          # discovered through its entry point

or call :func:`check_task` on a task object. Each check raises ``AssertionError`` naming the task
and the input that broke it.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from perception_r1.contract import (
    BudgetExceeded,
    PaperBenchmark,
    ParseError,
    RewardResult,
    Shapes,
    Task,
    contract_problems,
    time_budget,
)

if TYPE_CHECKING:
    from perception_r1.registry import Registry

#: generous wall-clock bound for one parse/reward call on a 1 MB input: catches blow-ups, not slowness
SLOW_CALL_SECONDS = 5.0
#: the bound for inputs up to SHORT_INPUT_CHARS: a parser that needs a second for 60 characters is exponential
SHORT_CALL_SECONDS = 1.0
SHORT_INPUT_CHARS = 1000
TOLERANCE = 1e-6

_ADVERSARIAL = [
    "",
    " ",
    "<",
    "<answer>",
    "<|box_start|><|box_end|>",
    "[]",
    "{}",
    "null",
    "[{}]",
    '[{"bbox_2d": [1e308, -1e308, NaN, Infinity], "label": null}]',
    # integers too large for a float (OverflowError in float()), in every shape an answer takes (issue 15)
    "[0, 0, " + "9" * 400 + ", 1]",
    '[{"bbox_2d": [0, 0, ' + "9" * 400 + ', 1], "label": "a", "polygon": [[0, 0], [' + "9" * 400 + ', 1], [1, 1]]}]',
    '{"count": ' + "9" * 400 + ', "points": [[' + "9" * 400 + ", 1]]}",
    "(" + "9" * 400 + ",1),(2,3)",
    "[0, 0, 1e400, 1]",
    "(nan,nan),(inf,-inf)",
    "(" * 5000,
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    "\x00\ud7ff\ufffe" * 100,
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ 中文 العربية",
    "(1,2),(3,4)" * 2000,
    "9" * 100_000,
    "x" * 1_000_000,
    # short inputs that make nested or overlapping quantifiers backtrack exponentially
    "a" * 40 + "!",
    "1" * 40 + "x",
    "1," * 30 + "x",
    "(1,1)," * 12 + "(",
    "(" + "1 " * 30 + "x",
    " " * 40 + "x",
    "0." * 30 + "x",
    "[" + "1, " * 25 + "x",
    '{"bbox_2d": [' + "1, " * 25 + "x",
]


def generated_samples(task: Task, n: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` samples straight from ``task.synthetic`` (no ids, no split: what the checks feed the task)."""
    rng = random.Random(seed)
    return [task.synthetic(rng) for _ in range(n)]


#: how many characters a pumped run repeats: 30 is over a minute for one nested quantifier, ~0 for a sane parser
PUMP = 30


def _pumped(text: str) -> list[str]:
    """Inputs built to find catastrophic backtracking behind whatever prefix the answer format has: a correct
    answer's prefix, one of its characters repeated (what a completion cut at ``max_new_tokens`` looks like),
    then a character the format does not expect. A parser with nested quantifiers takes exponential time on
    one of these; a literal prefix no longer hides it from fixed strings."""
    out = []
    for start in sorted({i for i, c in enumerate(text) if c.isalnum()}, key=lambda i: (i % 7, i))[:12]:
        out += [text[:start] + text[start] * PUMP + "!", text[:start] + (text[start] + " ") * PUMP + "!"]
    return out


def _near_misses(text: str, rng: random.Random, n: int = 12) -> list[str]:
    """Small corruptions of a correct answer: where parsers that are too strict or too lax break."""
    out = [text[: len(text) // 2], text + text, text.replace(",", ";"), text.upper(), f"```\n{text}\n```"]
    for _ in range(n):
        chars = list(text)
        if not chars:
            break
        i = rng.randrange(len(chars))
        op = rng.choice(["drop", "dup", "swap", "digit"])
        if op == "drop":
            del chars[i]
        elif op == "dup":
            chars.insert(i, chars[i])
        elif op == "swap" and len(chars) > 1:
            j = rng.randrange(len(chars))
            chars[i], chars[j] = chars[j], chars[i]
        else:
            chars[i] = rng.choice("0123456789-.e")
        out.append("".join(chars))
    return out


def _timed(task: Task, what: str, fn: Callable[[], Any], text: str) -> Any:
    """``fn()``, failing when it takes longer than its budget: a short input gets a short one, so a regex
    that backtracks catastrophically fails here in a second, interrupted by an alarm, instead of hanging."""
    budget = SHORT_CALL_SECONDS if len(text) <= SHORT_INPUT_CHARS else SLOW_CALL_SECONDS
    start = time.perf_counter()
    try:
        with time_budget(budget * 2):
            result = fn()
    except BudgetExceeded:
        result = None
    elapsed = time.perf_counter() - start
    assert elapsed < budget, (
        f"task '{task.name}': {what} took {elapsed:.1f}s or more on the {len(text)}-char input {text[:80]!r}"
        f" (unbounded work? catastrophic regex backtracking?)"
    )
    return result


def check_parse_total(task: Task, text: str) -> None:
    """``parse`` returns or raises ParseError, nothing else, in bounded time."""
    try:
        _timed(task, "parse", lambda: task.parse(text), text)
    except ParseError as exc:
        assert isinstance(exc.reason, str) and exc.reason, f"task '{task.name}': ParseError without a reason"
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(
            f"task '{task.name}': parse raised {type(exc).__name__}: {exc} on input {text[:80]!r}"
        ) from exc


def check_reward_in_range(task: Task, text: str, sample: Mapping[str, Any]) -> None:
    """``reward`` is finite, inside ``reward_range``, components finite or None, in bounded time."""
    lo, hi = task.reward_range
    try:
        result = _timed(task, "reward", lambda: task.reward(text, sample), text)
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(
            f"task '{task.name}': reward raised {type(exc).__name__}: {exc} on input {text[:80]!r}"
        ) from exc
    assert isinstance(result, RewardResult), (
        f"task '{task.name}': reward returned {type(result).__name__} ({result!r:.60}), not a RewardResult,"
        f" for {text[:80]!r}"
    )
    total = result.total
    assert isinstance(total, int | float) and math.isfinite(total), (
        f"task '{task.name}': reward total {total!r} is not finite for {text[:80]!r}"
    )
    assert lo - TOLERANCE <= total <= hi + TOLERANCE, (
        f"task '{task.name}': reward {total} outside reward_range {task.reward_range} for {text[:80]!r}"
    )
    for key, value in result.components.items():
        assert value is None or (isinstance(value, int | float) and math.isfinite(value)), (
            f"task '{task.name}': reward component '{key}' = {value!r} is not finite for {text[:80]!r}"
        )


def check_static(task: Task) -> None:
    problems = contract_problems(task)
    assert not problems, problems[0]


def check_schema_and_synthetic(task: Task, samples: list[dict[str, Any]]) -> None:
    for i, sample in enumerate(samples):
        try:
            jsonschema.validate(sample["solution"], task.solution_schema)
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"task '{task.name}': synthetic sample {i} breaks the schema: {exc.message}") from exc
        size = sample.get("image_size")
        assert isinstance(size, list | tuple) and len(size) == 2, f"task '{task.name}': sample {i} has no image_size"
        image = sample.get("image")
        assert isinstance(image, Image.Image), (
            f"task '{task.name}': synthetic sample {i} has no PIL image (got {type(image).__name__}); "
            f"the embedded default trains on what synthetic() draws"
        )
        assert list(image.size) == list(size), (
            f"task '{task.name}': synthetic sample {i}: image_size {list(size)} but the image is {list(image.size)}"
        )
        task.prompt(sample)  # every template field is present
        json.dumps(sample["solution"])  # ground truth is plain JSON


def check_perfect_answer(task: Task, samples: list[dict[str, Any]]) -> None:
    """The ground truth rendered as a completion parses and earns the maximum reward."""
    hi = task.reward_range[1]
    for i, sample in enumerate(samples):
        text = task.render(sample)
        task.parse(text)
        total = task.reward(text, sample).total
        assert total >= hi - 1e-4, (
            f"task '{task.name}': the ground truth as a completion scores {total}, not the maximum {hi}"
            f" (sample {i}: {text[:80]!r})"
        )


def check_evaluate_empty(task: Task) -> None:
    """``evaluate([])`` (an empty data set or split) returns finite numbers or nothing, never raises."""
    try:
        metrics = task.evaluate([])
    except Exception as exc:
        raise AssertionError(
            f"task '{task.name}': evaluate([]) raised {type(exc).__name__}: {exc} (an empty split must not crash)"
        ) from exc
    assert isinstance(metrics, dict), f"task '{task.name}': evaluate([]) returned {type(metrics).__name__}, not a dict"
    for key, v in metrics.items():
        assert isinstance(v, int | float) and math.isfinite(v), f"task '{task.name}': evaluate([]) gives {key}={v!r}"


def check_perfect_evaluation(task: Task, samples: list[dict[str, Any]]) -> None:
    records = [{**s, "completion": task.render(s)} for s in samples]
    metrics = task.evaluate(records)
    assert task.primary_metric in metrics, f"task '{task.name}': evaluate() lacks primary metric '{task.primary_metric}'"
    value = metrics[task.primary_metric]
    assert abs(value - task.best_metric_value) < 1e-6, (
        f"task '{task.name}': perfect predictions give {task.primary_metric}={value}, "
        f"expected {task.best_metric_value}"
    )
    for key, v in metrics.items():
        assert isinstance(v, int | float) and math.isfinite(v), f"task '{task.name}': metric {key}={v!r} not finite"


def _check_shapes(task: Task, shapes: Any, what: str) -> None:
    assert isinstance(shapes, Shapes), f"task '{task.name}': {what} returned {type(shapes).__name__}, not Shapes"
    for kind, items, width in (("box", shapes.boxes, 4), ("point", shapes.points, 2)):
        assert all(len(item) == width for item in items), f"task '{task.name}': {what}: a {kind} is not {width} numbers"
    assert all(len(p) >= 2 and all(len(xy) == 2 for xy in p) for p in shapes.polygons), (
        f"task '{task.name}': {what}: a polygon is not a list of >= 2 [x, y] points"
    )
    for v in shapes.coordinates():
        assert isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v), (
            f"task '{task.name}': {what} has a coordinate {v!r} that is not a finite number"
        )
    assert all(isinstance(label, str) for label in shapes.labels), f"task '{task.name}': {what}: labels must be str"
    assert shapes.text is None or isinstance(shapes.text, str), f"task '{task.name}': {what}: text must be str or None"


def check_drawing_and_objects(task: Task, samples: list[dict[str, Any]]) -> None:
    """``draw_solution`` and ``draw_answer`` (of the perfect answer) give Shapes with finite coordinates,
    ``caption`` a string, ``objects`` None or a count (an int >= 0)."""
    for i, sample in enumerate(samples):
        _check_shapes(task, task.draw_solution(sample), f"draw_solution (sample {i})")
        _check_shapes(task, task.draw_answer(task.parse(task.render(sample)), sample), f"draw_answer (sample {i})")
        assert isinstance(task.caption(sample), str), f"task '{task.name}': caption (sample {i}) is not a string"
        n = task.objects(sample["solution"])
        assert n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 0), (
            f"task '{task.name}': objects (sample {i}) returned {n!r}, not None or an int >= 0"
        )


def check_paper_benchmarks(task: Task, samples: list[dict[str, Any]]) -> None:
    """Each paper benchmark names metrics the task's ``evaluate`` reports, as finite (base, Perception-R1)
    pairs, and a perplexity that is None or a number >= 1."""
    benchmarks = task.paper_benchmarks
    if not benchmarks:
        return
    reported = set(task.evaluate([{**s, "completion": task.render(s)} for s in samples]))
    for name, entry in benchmarks.items():
        where = f"task '{task.name}': paper benchmark {name!r}"
        assert isinstance(name, str) and name.strip(), f"task '{task.name}': a paper benchmark needs a name"
        assert isinstance(entry, PaperBenchmark), f"{where} is not a PaperBenchmark"
        for metric, pair in entry.metrics.items():
            assert metric in reported, f"{where}: metric '{metric}' is not one evaluate() reports"
            assert isinstance(pair, tuple) and len(pair) == 2 and all(
                isinstance(v, int | float) and math.isfinite(v) for v in pair
            ), f"{where}: '{metric}' must be a finite (base, Perception-R1) pair, got {pair!r}"
        ppl = entry.perplexity
        assert ppl is None or (isinstance(ppl, int | float) and ppl >= 1), f"{where}: perplexity {ppl!r} is not >= 1"


def check_fuzz(task: Task, samples: list[dict[str, Any]], max_examples: int = 200) -> int:
    """Parse and reward on adversarial, near-miss and arbitrary text. Returns the number of inputs tried."""
    rng = random.Random(1)
    fixed = list(_ADVERSARIAL)
    for sample in samples:
        ideal = task.render(sample)
        fixed += _near_misses(ideal, rng) + _pumped(ideal)
    for text in fixed:
        check_parse_total(task, text)
        check_reward_in_range(task, text, samples[0])

    rendered = [task.render(s) for s in samples]
    text_strategy = st.one_of(
        st.text(max_size=300),
        st.text(alphabet="0123456789()[]{},.-+eE :\"'<>|_abxy", max_size=300),
        st.sampled_from(rendered).flatmap(
            lambda r: st.tuples(st.integers(0, len(r)), st.text(max_size=20)).map(lambda t: r[: t[0]] + t[1] + r[t[0] :])
        ),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
            lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
            max_leaves=20,
        ).map(lambda v: json.dumps(v)),
    )

    @settings(max_examples=max_examples, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(text=text_strategy, which=st.integers(0, len(samples) - 1))
    def run(text: str, which: int) -> None:
        check_parse_total(task, text)
        check_reward_in_range(task, text, samples[which])

    run()
    return len(fixed) + max_examples


def check_task(task: Task, *, max_examples: int = 200, n_samples: int = 4) -> dict[str, int]:
    """Run every contract check on ``task``. Returns counts of what was tried."""
    check_static(task)
    samples = generated_samples(task, n_samples)
    check_schema_and_synthetic(task, samples)
    check_perfect_answer(task, samples)
    check_perfect_evaluation(task, samples)
    check_evaluate_empty(task)
    check_drawing_and_objects(task, samples)
    check_paper_benchmarks(task, samples)
    fuzzed = check_fuzz(task, samples, max_examples=max_examples)
    return {"samples": len(samples), "fuzzed_inputs": fuzzed}


def check_discoverable(task_name: str, registry: Registry | None = None) -> Task:
    """The task is installed and found through the ``perception_r1`` entry-point group.

    Looks in ``registry``; by default in a new one loaded from the installed entry points, as a command
    would (``PERCEPTION_R1_PLUGINS`` applies), leaving the process-wide registry alone.
    """
    from perception_r1.registry import load_registry

    registry = load_registry() if registry is None else registry
    assert task_name in registry.tasks, (
        f"task '{task_name}' is not registered by any installed plugin "
        f"(installed: {', '.join(sorted(registry.tasks))}); is the plugin pip-installed?"
    )
    return registry.tasks[task_name]


def _on_samples(check: Callable[[Task, list[dict[str, Any]]], None]) -> Callable[[Any], None]:
    """A TaskContract test running ``check`` on the task and a few of its synthetic samples."""

    def test(self: TaskContract) -> None:
        check(self._task(), self._samples())

    test.__doc__ = check.__doc__
    return test


class TaskContract:
    """Subclass in a plugin's tests and set ``task_name``: every contract check becomes a test."""

    task_name: str = ""
    max_examples: int = 200

    def _task(self) -> Task:
        return check_discoverable(self.task_name)

    def _samples(self) -> list[dict[str, Any]]:
        return generated_samples(self._task())

    def test_discoverable(self) -> None:
        check_discoverable(self.task_name)

    def test_static_contract(self) -> None:
        check_static(self._task())

    def test_evaluate_empty(self) -> None:
        check_evaluate_empty(self._task())

    test_schema_and_synthetic = _on_samples(check_schema_and_synthetic)
    test_perfect_answer_gets_max_reward = _on_samples(check_perfect_answer)
    test_perfect_predictions_get_best_metric = _on_samples(check_perfect_evaluation)
    test_drawing_and_objects = _on_samples(check_drawing_and_objects)
    test_paper_benchmarks = _on_samples(check_paper_benchmarks)

    def test_parse_and_reward_fuzz(self) -> None:
        check_fuzz(self._task(), self._samples(), max_examples=self.max_examples)
