"""The task contract every plugin implements: what a task is, what it returns, what it may raise.

A *sample* is a plain dict, the same in training, scoring and evaluation; :data:`SAMPLE_KEYS` says what
each key holds (``perception-r1 docs`` prints it, with everything else a plugin author needs).
An evaluation *record* is a sample plus ``completion`` (the model's text).

Besides the task itself, this module holds the small types a task hands back to the framework:
:class:`Loaded` (samples read from files), :class:`Shapes` (what to draw) and :class:`PaperBenchmark`
(the paper's numbers on a benchmark the task reads).
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import os
import random
import re
import signal
import string
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jsonschema

#: the spaces a completion's numbers can be in
COORD_SPACES = ("pixels", "norm1000", "norm1", "resized", "none")
#: the spaces a model can answer boxes in (`--coords`): every coordinate space but "none", a text-only answer
MODEL_COORD_SPACES = tuple(s for s in COORD_SPACES if s != "none")

#: the keys of a sample and what each holds (the plugin reference is generated from this)
SAMPLE_KEYS: dict[str, str] = {
    "id": "str, unique within a data set; synthetic samples get `<task>-<split>-<seed>-<index>`, which lets the "
          "report regenerate their images",
    "task": "the task's name (set by the framework)",
    "image": "a `PIL.Image.Image`, a path, or absent (offline scoring needs no image)",
    "image_size": "`[w, h]` of the original image, in pixels",
    "query": "dict of the prompt template's fields, e.g. `{\"expression\": \"red circle\"}`",
    "solution": "the ground truth, in the task's `solution_schema`; boxes in original-image pixels, xyxy",
    "coords": "the space the *completion's* numbers are in (default: the task's `coord_space`): "
              + ", ".join(f"`{s}`" for s in COORD_SPACES),
    "resized_size": "`[w, h]` the model saw, when `coords` is `resized` (Qwen2.5-VL)",
    "image_path": "optional: the image file, for the report's gallery",
}

#: what each class attribute of :class:`Task` means (the plugin reference is generated from this)
TASK_ATTRIBUTES: dict[str, str] = {
    "name": "unique task name: letters, digits, `.`, `_`, `-` (at most 64); also the name of its reward",
    "description": "one line for `perception-r1 tasks`",
    "prompt_template": "`str.format` template over the sample's `query` (and `default_query`)",
    "coord_space": "the space the task's answers are in by default: " + ", ".join(f"`{s}`" for s in COORD_SPACES),
    "solution_schema": "JSON Schema of one sample's `solution`; rows are validated against it at load",
    "reward_range": "`(low, high)`: every reward total lies inside it (the contract kit checks)",
    "primary_metric": "the key of `evaluate()` that judges a model (shown before/after a run)",
    "higher_is_better": "whether a larger primary metric is better",
    "best_metric_value": "the primary metric for perfect predictions (1.0 accuracy, 0.0 edit distance)",
    "default_query": "query fields used when a sample lacks them",
    "paper_benchmarks": "benchmark name -> `PaperBenchmark`: the paper's numbers shown beside `eval` results",
    "is_default": "`run` with no `--task` trains this task (the built-ins mark one; the registry picks it)",
    "tiny_run_defaults": "run-config keys a single-task `run` of a small model (the embedded base, under 100M "
                         "parameters) takes unless the user sets them: the RL settings under which this task improves; "
                         "keys it leaves out take those that worked for the built-ins (temperature 0.7, 8 prompts "
                         "per step, 256 held-out samples)",
}


class UserError(Exception):
    """Bad input from the user (a file, a row, a flag, a config key). The message names what is wrong; the CLI
    prints it as one line on stderr and exits with code 2 (``perception_r1.errors`` re-exports it)."""


class RewardError(UserError):
    """A reward (a task's own or a custom one) raised, or returned something that is not a finite number in range."""


class ParseError(ValueError):
    """The completion does not follow the task's answer format. ``reason`` says why, in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RewardResult:
    """A reward: the ``total`` the policy is trained on, and the named parts it is made of.

    A component is ``None`` when it does not apply (e.g. ``iou`` when the answer did not parse).
    """

    total: float
    components: dict[str, float | None] = field(default_factory=dict)
    #: the parsed answer the reward judged, when it parsed: the completion log shows it without parsing again
    answer: Any = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, **self.components}


@dataclass
class Loaded:
    """Samples a task read from local files, the format they were in (e.g. ``coco-2017``) and the paper
    benchmark they are (e.g. ``"COCO val2017"``, a key of the task's ``paper_benchmarks``), if any."""

    samples: list[dict[str, Any]]
    format: str
    benchmark: str | None = None


@dataclass
class Shapes:
    """What a solution or an answer shows on its image, in original-image pixels (x right, y down).

    ``boxes`` are ``[x1, y1, x2, y2]``, ``points`` ``[x, y]``, ``polygons`` lists of ``[x, y]``;
    ``labels[i]`` is written beside ``boxes[i]`` (beside ``polygons[i]`` when there are no boxes);
    ``text`` is a reading shown under the picture (OCR's text).
    """

    boxes: list[list[float]] = field(default_factory=list)
    points: list[list[float]] = field(default_factory=list)
    polygons: list[list[list[float]]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    text: str | None = None

    def coordinates(self) -> list[float]:
        """Every coordinate of every shape, flattened (for checks: all must be finite)."""
        flat = [v for box in self.boxes for v in box] + [v for point in self.points for v in point]
        return flat + [v for polygon in self.polygons for point in polygon for v in point]


@dataclass(frozen=True)
class PaperBenchmark:
    """The paper's numbers on one benchmark: ``metrics`` maps a metric (the task's own name and unit) to
    ``(base model, Perception-R1)``; ``perplexity`` is the perceptual perplexity the paper measured on the
    benchmark's data set (None when it reports none)."""

    metrics: Mapping[str, tuple[float, float]]
    perplexity: float | None = None


class Task:
    """Base class of a perception task. Subclasses set the class attributes and implement five methods.

    Implement: ``parse``, ``reward``, ``evaluate``, ``render`` (the ideal completion for a sample,
    used by SFT and the contract kit) and ``synthetic`` (one generated sample with an image, for the
    embedded default).

    Optional parts, each with a default, so the framework never has to guess about a task:

    * ``load(path, split, limit)``: real data from local files in the task's formats, as :class:`Loaded`
      (default: no loader). Bad rows raise ``ValueError`` (or ``UserError``) naming ``file:row``;
      :mod:`perception_r1.tasks.rows` has the helpers for that.
    * drawing, for the report: ``draw_solution(sample)`` and ``draw_answer(answer, sample)`` (a parsed
      answer, in the sample's ``coords``) as :class:`Shapes` in original-image pixels (default: nothing
      to draw); ``caption(sample)``, the line shown under a picture (default: the query's fields).
    * ``objects(solution)``: how many objects perceptual perplexity counts in a solution, whose answer
      may list them in any order (``n`` -> ``n!`` matchings); None for a single answer (the default).
    * ``paper_benchmarks``: benchmark name -> :class:`PaperBenchmark`, the paper's numbers for the
      benchmarks this task reads, shown beside ``eval`` results (default: none).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    prompt_template: str = ""  # a class default; a task built with another template sets its own
    coord_space: ClassVar[str] = "none"
    solution_schema: ClassVar[dict[str, Any]] = {}
    reward_range: tuple[float, float] = (0.0, 1.0)  # a task configured with other weights sets its own
    primary_metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    #: the primary metric's value for perfect predictions (1.0 accuracy, 0.0 edit distance, ...)
    best_metric_value: ClassVar[float] = 1.0
    default_query: ClassVar[dict[str, str]] = {}
    #: the paper's numbers for the benchmarks this task reads (see :class:`PaperBenchmark`)
    paper_benchmarks: ClassVar[Mapping[str, PaperBenchmark]] = {}
    #: `run` with no --task trains the task that says so (see Registry.default_task)
    is_default: ClassVar[bool] = False
    #: run-config keys for single-task runs of a small model, unless set by the user (see TASK_ATTRIBUTES)
    tiny_run_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, prompt_template: str | None = None) -> None:
        if prompt_template is not None:
            self.prompt_template = prompt_template

    # -- to implement ----------------------------------------------------------------------------
    def parse(self, text: str) -> Any:
        """Completion text -> typed answer in the completion's own space; raise ParseError otherwise."""
        raise NotImplementedError

    def reward(self, completion: str, sample: Mapping[str, Any]) -> RewardResult:
        """The rule-based reward of one completion: a finite ``total`` inside ``reward_range`` and its named
        components; never raises on any completion (an unparsable one scores low, it does not fail)."""
        raise NotImplementedError

    def evaluate(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """The paper's metrics over records (samples + ``completion``), under the paper's names."""
        raise NotImplementedError

    def render(self, sample: Mapping[str, Any]) -> str:
        """The completion a perfect model would write for ``sample`` (in the sample's ``coords``)."""
        raise NotImplementedError

    def synthetic(self, rng: random.Random) -> dict[str, Any]:
        """One synthetic sample, with a PIL image, for the embedded default."""
        raise NotImplementedError

    def load(self, path: str, split: str | None = None, limit: int | None = None) -> Loaded:
        """At most ``limit`` samples of ``split`` from the local file or folder ``path``."""
        raise NotImplementedError(f"task '{self.name}' has no loader for real data")

    # -- provided --------------------------------------------------------------------------------
    def prompt(self, sample: Mapping[str, Any]) -> str:
        """``prompt_template`` filled from ``default_query`` and the sample's ``query`` (plain ``{field}``s only:
        see :func:`template_problem`)."""
        fields = {**self.default_query, **(sample.get("query") or {})}
        if problem := template_problem(self.prompt_template):
            raise UserError(f"task '{self.name}': {problem}")
        try:
            return self.prompt_template.format_map({k: str(v)[:MAX_FIELD_CHARS] for k, v in fields.items()})
        except (KeyError, IndexError) as exc:
            raise UserError(f"task '{self.name}': prompt template needs field {exc} not in the sample's query") from exc

    def space(self, sample: Mapping[str, Any]) -> str:
        """The coordinate space of this sample's completion: its ``coords``, else the task's ``coord_space``."""
        return sample.get("coords") or self.coord_space

    def validate_solution(self, solution: Any) -> None:
        """Raise ``jsonschema.ValidationError`` when ``solution`` breaks the task's schema."""
        jsonschema.validate(solution, self.solution_schema)

    # -- optional: drawing and perceptual perplexity -----------------------------------------------
    def draw_solution(self, sample: Mapping[str, Any]) -> Shapes:
        """The ground truth of ``sample`` as shapes in original-image pixels."""
        return Shapes()

    def draw_answer(self, answer: Any, sample: Mapping[str, Any]) -> Shapes:
        """A parsed ``answer`` (in the sample's ``coords``) as shapes in original-image pixels; may raise
        ``ValueError`` when the answer cannot be placed (e.g. an unknown coordinate space)."""
        return Shapes()

    def caption(self, sample: Mapping[str, Any]) -> str:
        """The line shown under a sample's picture: its query's fields."""
        return "; ".join(f"{k}: {v}" for k, v in (sample.get("query") or {}).items())

    def objects(self, solution: Mapping[str, Any]) -> int | None:
        """Objects a solution lists in free order (perceptual perplexity: ``n!`` matchings); None = one answer."""
        return None

    def __repr__(self) -> str:
        return f"<task {self.name}>"



# -- prompt templates: data, never code ---------------------------------------------------------------
#: a query field is cut to this many characters in a prompt (a data set's expression is a few words)
MAX_FIELD_CHARS = 10_000


@functools.lru_cache(maxsize=256)  # Task.prompt checks its template on every sample: parse each template once
def template_problem(template: str) -> str | None:
    """Why ``template`` is not a plain prompt template, or None. Only ``{name}`` fields: no attribute or index
    access (``{expression.__class__}`` walks objects), no conversion, no format spec (``{x:>200000000}``
    allocates gigabytes), and balanced braces."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"prompt template {template[:60]!r} is not a format string ({exc})"
    for _, key, spec, conversion in parts:
        if key is None:
            continue
        if not key.isidentifier() or spec or conversion:
            return (f"prompt template field {{{key[:40]}{'!' + conversion if conversion else ''}"
                    f"{':' + spec[:20] if spec else ''}}} is not a plain {{name}}")
    return None


# -- checks the registry runs on every task it is given ------------------------------------------------
#: what core calls on every registered task
TASK_METHODS = ("parse", "reward", "evaluate", "render", "synthetic", "prompt")


#: a task name: it names a reward, a run directory (runs/<task>-<time>) and files, so nothing but these
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _bad_name(name: Any) -> bool:
    return not isinstance(name, str) or not TASK_NAME.fullmatch(name)


def task_names(spec: str) -> list[str]:
    """The task names of a spec ``a,b`` (``--task``, a config's ``task``): stripped, each at most once.

    A UserError for an empty spec, or a name given twice (it would silently run as a two-task mix)."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UserError("no task given (use --task NAME or NAME,NAME)")
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise UserError(f"task {', '.join(twice)} named twice in {spec!r}: name each task once")
    return names


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


def contract_problems(task: object) -> list[str]:
    """Static checks of a task object. Empty list = fine; otherwise one sentence per problem.

    Duck-typed on purpose: a task is judged by what it has (a name, the contract's methods, a coordinate
    space, a reward range, a valid JSON Schema, a prompt template, a primary metric), not by its class."""
    name = getattr(task, "name", None)
    if _bad_name(name):
        return [f"task {str(task)[:80]!r} needs a `name` of letters, digits, '.', '_' and '-' (at most 64, no '/')"]
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
    elif problem := template_problem(template):
        problems.append(f"task '{name}': {problem}")
    if not getattr(task, "primary_metric", ""):
        problems.append(f"task '{name}' needs a primary_metric")
    return problems


# -- time budgets for plugin code -------------------------------------------------------------------------
class BudgetExceeded(Exception):
    """Plugin code ran past its time budget (raised inside it by :func:`time_budget`)."""


@contextlib.contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Raise :class:`BudgetExceeded` inside the block once it has run ``seconds``: a reward or parser that
    backtracks catastrophically or loops is stopped, not left to hang a run. SIGALRM, so in the main thread on
    Unix only (elsewhere no limit); Python code and the ``re`` engine are interrupted, a C call that never
    checks for signals is not. An enclosing budget keeps what is left of its own time."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(*_: Any) -> None:
        raise BudgetExceeded

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))


#: seconds one reward call may take (``PERCEPTION_R1_REWARD_SECONDS`` sets it; 0 = no limit)
REWARD_SECONDS = 60.0
ENV_REWARD_SECONDS = "PERCEPTION_R1_REWARD_SECONDS"


def reward_budget() -> float:
    """The time budget of one reward call, in seconds (0: none)."""
    raw = os.environ.get(ENV_REWARD_SECONDS, "")
    try:
        seconds = float(raw) if raw.strip() else REWARD_SECONDS
    except ValueError:
        raise UserError(f"{ENV_REWARD_SECONDS}={raw[:40]!r}: give a number of seconds (0 = no limit)") from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UserError(f"{ENV_REWARD_SECONDS}={raw[:40]!r}: give a finite, non-negative number of seconds")
    return seconds


# -- the guarded reward call: the one path from a task's reward to the trainer, evaluation and `score` ----
def describe_exception(exc: BaseException) -> str:
    """``TypeName: message`` on one line, cut to 200 characters (foreign code's errors in our messages)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


def task_reward(task: Task, completion: str, sample: Mapping[str, Any]) -> RewardResult:
    """``task.reward`` where a task bug (it raised, or gave a non-finite or out-of-range total) is one line
    naming the task and the sample, never a traceback that ends a training run."""
    where = f"task '{task.name}' reward on sample {str(sample.get('id', '?'))[:100]!r}"
    budget = reward_budget()
    try:
        with time_budget(budget):
            result = task.reward(completion, sample)
            total = float(result.total)
    except BudgetExceeded:
        raise RewardError(f"{where} took more than {budget:g} s ({ENV_REWARD_SECONDS} sets the budget)") from None
    except (Exception, SystemExit) as exc:  # sys.exit() in a task is a bug to name, never a quiet exit 0
        raise RewardError(f"{where} raised {describe_exception(exc)}") from exc
    lo, hi = task.reward_range
    if not (math.isfinite(total) and lo - 1e-6 <= total <= hi + 1e-6):
        raise RewardError(f"{where} returned {total!r}, outside its reward_range [{lo:g}, {hi:g}]")
    components = getattr(result, "components", None)
    if not isinstance(components, dict) or not all(isinstance(k, str) for k in components):
        raise RewardError(f"{where} returned components {str(components)[:60]!r}, not a dict of names to numbers")
    clean: dict[str, float | None] = {}
    for key, value in components.items():  # numpy scalars become floats: the logs are JSON
        if value is not None and (not is_number(value) or not math.isfinite(float(value))):
            raise RewardError(f"{where} returned component {key[:40]!r} = {str(value)[:40]!r}: not a finite number")
        clean[key] = None if value is None else float(value)
    return RewardResult(total, clean, answer=result.answer)


def is_number(value: Any) -> bool:
    """A real number a reward may return (numpy's included), never a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def task_rewards(task: Task, completions: Sequence[str], samples: Sequence[Mapping[str, Any]]) -> list[RewardResult]:
    """:func:`task_reward` of each (completion, sample) pair: the batch interface every caller uses."""
    return [task_reward(task, c, s) for c, s in zip(completions, samples, strict=True)]
