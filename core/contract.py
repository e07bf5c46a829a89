"""The task contract every plugin implements: what a task is, what it returns, what it may raise.

A *sample* is a plain dict, the same in training, scoring and evaluation:

==============  =============================================================================
``id``          str, unique within a data set
``image``       a ``PIL.Image.Image``, a path, or absent (offline scoring needs no image)
``image_size``  ``[w, h]`` of the original image, in pixels
``query``       dict of the prompt template's fields, e.g. ``{"expression": "red circle"}``
``solution``    the ground truth, in the task's ``solution_schema``, boxes in original-image pixels xyxy
``coords``      the space the *completion's* numbers are in (default: the task's ``coord_space``):
                ``pixels``, ``norm1000`` (Qwen2-VL), ``norm1``, ``resized`` (Qwen2.5-VL), ``none``
``resized_size`` ``[w, h]`` the model saw, when ``coords == "resized"``
==============  =============================================================================

An evaluation *record* is a sample plus ``completion`` (the model's text).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jsonschema

# The registry checks every task it is given without importing this module (it sits below it).
from perception_r1.registry.validation import COORD_SPACES as COORD_SPACES
from perception_r1.registry.validation import contract_problems as contract_problems


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

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, **self.components}


class Task:
    """Base class of a perception task. Subclasses set the class attributes and implement five methods.

    Implement: ``parse``, ``reward``, ``evaluate``, ``render`` (the ideal completion for a sample,
    used by SFT and the contract kit) and ``synthetic`` (one generated sample with an image, for the
    embedded default). Optionally ``load`` (real data from local files).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    prompt_template: ClassVar[str] = ""
    coord_space: ClassVar[str] = "none"
    solution_schema: ClassVar[dict[str, Any]] = {}
    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    primary_metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    #: the primary metric's value for perfect predictions (1.0 accuracy, 0.0 edit distance, ...)
    best_metric_value: ClassVar[float] = 1.0
    default_query: ClassVar[dict[str, str]] = {}

    def __init__(self, prompt_template: str | None = None) -> None:
        if prompt_template is not None:
            self.prompt_template = prompt_template

    # -- to implement ----------------------------------------------------------------------------
    def parse(self, text: str) -> Any:
        """Completion text -> typed answer in the completion's own space; raise ParseError otherwise."""
        raise NotImplementedError

    def reward(self, completion: str, sample: Mapping[str, Any]) -> RewardResult:
        raise NotImplementedError

    def evaluate(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        raise NotImplementedError

    def render(self, sample: Mapping[str, Any]) -> str:
        """The completion a perfect model would write for ``sample`` (in the sample's ``coords``)."""
        raise NotImplementedError

    def synthetic(self, rng: random.Random) -> dict[str, Any]:
        """One synthetic sample, with a PIL image, for the embedded default."""
        raise NotImplementedError

    def load(self, path: str, split: str | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError(f"task '{self.name}' has no loader for real data")

    # -- provided --------------------------------------------------------------------------------
    def prompt(self, sample: Mapping[str, Any]) -> str:
        fields = {**self.default_query, **(sample.get("query") or {})}
        try:
            return self.prompt_template.format_map(fields)
        except (KeyError, IndexError) as exc:
            raise ValueError(f"task '{self.name}': prompt template needs field {exc} not in the sample's query") from exc

    def space(self, sample: Mapping[str, Any]) -> str:
        return sample.get("coords") or self.coord_space

    def batch_reward(self, completions: Sequence[str], samples: Sequence[Mapping[str, Any]], **_: Any) -> list[float]:
        """The task's reward in the custom-reward shape ``fn(completions, samples) -> list[float]``."""
        return [self.reward(c, s).total for c, s in zip(completions, samples, strict=True)]

    def validate_solution(self, solution: Any) -> None:
        """Raise ``jsonschema.ValidationError`` when ``solution`` breaks the task's schema."""
        jsonschema.validate(solution, self.solution_schema)

    def __repr__(self) -> str:
        return f"<task {self.name}>"

