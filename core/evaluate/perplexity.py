"""Perceptual perplexity (Perception-R1): how many prediction-to-ground-truth matchings a sample admits.

A single-answer sample (one box, one text) has exactly 1; a sample with ``n`` objects to list has ``n!``
(any order of the answer is a valid matching). The paper reports the mean over a data set and argues that
RL beats SFT where it is high (PixMo-Count 229,202; COCO 3.47e+83) and gains little where it is 1.

``n!`` overflows floats beyond n = 170, so everything is computed with logarithms (``math.lgamma``) and
the mean is reported as ``log10`` too; ``mean`` is None when it does not fit in a float. What counts as an
object is the task's to say (``Task.objects``); a single-answer task says None.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def log_matchings(objects: int | None) -> float:
    """ln(number of matchings) of one sample: ln(n!) = lgamma(n + 1), or 0 for a single answer (None)."""
    return 0.0 if objects is None else math.lgamma(objects + 1)


def perplexity(objects: Iterable[int | None]) -> dict[str, Any]:
    """Mean number of matchings over samples, given each sample's object count (``Task.objects`` of its
    solution: None for a single answer), its log10, and the object counts behind it."""
    logs, counts = [], []
    for n in objects:
        logs.append(log_matchings(n))
        if n is not None:
            counts.append(n)
    if not logs:
        raise ValueError("no samples")
    if max(counts, default=0) <= 170:  # exact integer sum while n! fits in a float
        total = sum(math.factorial(n) for n in counts) + (len(logs) - len(counts))
        mean: float | None = total / len(logs)
        log10_mean = math.log10(total) - math.log10(len(logs))
    else:  # log-sum-exp: the mean of huge factorials without overflow
        top = max(logs)
        log_mean = top + math.log(sum(math.exp(v - top) for v in logs)) - math.log(len(logs))
        log10_mean = log_mean / math.log(10)
        mean = math.exp(log_mean) if log_mean < 709 else None
    return {
        "samples": len(logs),
        "mean": mean,
        "log10_mean": log10_mean,
        "multi_object": bool(counts),
        "mean_objects": sum(counts) / len(counts) if counts else None,
        "max_objects": max(counts) if counts else None,
    }


def format_big(log10_value: float) -> str:
    """10 ** log10_value as text: plain below a million, else mantissa e+exponent (3.47e+83)."""
    if log10_value < 6:
        value = 10**log10_value
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    exponent = math.floor(log10_value)
    mantissa = 10 ** (log10_value - exponent)
    if mantissa >= 9.995:  # rounding would print 10.00e+N
        mantissa, exponent = 1.0, exponent + 1
    return f"{mantissa:.2f}e+{exponent}"
