"""The text-spotting task: answer, reward and metrics.

Reward: predictions and ground-truth words are matched one to one (Hungarian, maximising
IoU x text similarity), then ``total = 0.1 format + 0.4 f1 + 0.25 iou + 0.25 text`` in [0, 1]:
``f1`` counts matches with polygon IoU >= 0.5 (so extra and missing words both cost), ``iou`` and
``text`` are means over matched pairs. Metrics: end-to-end F-measure at IoU 0.5 with exact
case-insensitive text (``e2e_f1``, the primary), and detection-only ``det_f1``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from perception_r1 import ParseError, RewardResult, Shapes, Task
from perception_r1.tasks.geometry import from_pixels, to_pixels
from perception_r1.tasks.matching import maximize

from .answer import MAX_POINTS, MAX_TEXT, MAX_WORDS, Word, parse_words
from .scoring import iou_matrix, normalize_text, polygon, text_similarity
from .synth import make_sample

IOU_THRESHOLD = 0.5
WEIGHTS = {"format": 0.1, "f1": 0.4, "iou": 0.25, "text": 0.25}
#: a little weight on location alone, so a well-placed word with a wrong reading still gets matched
LOCATION_TIEBREAK = 1e-3

POINT = {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}
WORD = {
    "type": "object",
    "required": ["polygon", "text"],
    "properties": {
        "polygon": {"type": "array", "minItems": 3, "maxItems": MAX_POINTS, "items": POINT},
        "text": {"type": "string", "maxLength": MAX_TEXT},  # bounds the text similarity's edit distance
    },
}


def _f1(tp: int, n_pred: int, n_gt: int) -> float:
    return 1.0 if n_pred + n_gt == 0 else 2.0 * tp / (n_pred + n_gt)


class TextSpotting(Task):
    name = "text-spotting"
    description = "Locate (polygons) and read every word in the image"
    prompt_template = (
        "Find every word in the image. Answer with a JSON list, one item per word: "
        '[{{"polygon": [[x1, y1], [x2, y2], [x3, y3], [x4, y4]], "text": "word"}}].'
    )
    coord_space = "pixels"
    solution_schema = {
        "type": "object",
        "required": ["words"],
        "properties": {"words": {"type": "array", "maxItems": MAX_WORDS, "items": WORD}},
    }
    reward_range = (0.0, 1.0)
    primary_metric = "e2e_f1"

    # -- parsing and geometry --------------------------------------------------------------------
    def parse(self, text: str) -> list[Word]:
        return parse_words(text)

    def _pixels(self, points: Sequence[Sequence[float]], sample: Mapping[str, Any]) -> np.ndarray:
        arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return to_pixels(arr, self.space(sample), sample["image_size"], sample.get("resized_size"))

    def _pairs(self, words: list[Word], sample: Mapping[str, Any]) -> tuple[np.ndarray, list[str], list[str]]:
        """IoU matrix (P, G) in pixels, and the predicted and ground-truth texts."""
        truth = sample["solution"]["words"]
        preds = [polygon(self._pixels(w.polygon, sample)) for w in words]
        gts = [polygon(np.asarray(t["polygon"], dtype=np.float64).reshape(-1, 2)) for t in truth]
        return iou_matrix(preds, gts), [w.text for w in words], [t["text"] for t in truth]

    # -- reward ----------------------------------------------------------------------------------
    def reward(self, completion: str, sample: Mapping[str, Any]) -> RewardResult:
        try:
            words = self.parse(completion)
        except ParseError:
            return RewardResult(0.0, {"format": 0.0, "f1": None, "iou": None, "text": None})
        ious, pred_texts, gt_texts = self._pairs(words, sample)
        n_pred, n_gt = ious.shape
        if n_pred == 0 or n_gt == 0:
            perfect = float(n_pred == n_gt)  # nothing to find and nothing claimed: a correct answer
            parts = {"format": 1.0, "f1": perfect, "iou": perfect, "text": perfect}
        else:
            sims = np.zeros_like(ious)
            for i, j in zip(*np.nonzero(ious > 0), strict=True):  # edit distance only where shapes overlap
                sims[i, j] = text_similarity(pred_texts[i], gt_texts[j])
            rows, cols = maximize(ious * sims + LOCATION_TIEBREAK * ious)
            matched = [(i, j) for i, j in zip(rows, cols, strict=True) if ious[i, j] > 0]
            tp = sum(ious[i, j] >= IOU_THRESHOLD for i, j in matched)
            parts = {
                "format": 1.0,
                "f1": _f1(int(tp), n_pred, n_gt),
                "iou": float(np.mean([ious[i, j] for i, j in matched])) if matched else 0.0,
                "text": float(np.mean([sims[i, j] for i, j in matched])) if matched else 0.0,
            }
        total = sum(WEIGHTS[k] * parts[k] for k in WEIGHTS)
        return RewardResult(float(min(1.0, max(0.0, total))), parts, answer=words)

    # -- evaluation ------------------------------------------------------------------------------
    def _true_positives(self, record: Mapping[str, Any]) -> tuple[int, int, int, int, bool]:
        """(e2e TP, detection TP, predictions, ground truths, parsed) for one record."""
        n_gt = len(record["solution"]["words"])
        try:
            words = self.parse(record["completion"])
        except ParseError:
            return 0, 0, 0, n_gt, False
        ious, pred_texts, gt_texts = self._pairs(words, record)
        located = ious >= IOU_THRESHOLD
        same = np.array(
            [[normalize_text(p) == normalize_text(g) for g in gt_texts] for p in pred_texts], dtype=bool
        ).reshape(located.shape)
        return _matches(located & same), _matches(located), len(words), n_gt, True

    def evaluate(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        e2e = det = n_pred = n_gt = parsed = 0
        for record in records:
            a, b, p, g, ok = self._true_positives(record)
            e2e, det, n_pred, n_gt, parsed = e2e + a, det + b, n_pred + p, n_gt + g, parsed + ok
        metrics: dict[str, float] = {}
        for prefix, tp in (("e2e", e2e), ("det", det)):
            metrics[f"{prefix}_precision"] = tp / n_pred if n_pred else float(n_gt == 0)
            metrics[f"{prefix}_recall"] = tp / n_gt if n_gt else float(n_pred == 0)
            metrics[f"{prefix}_f1"] = _f1(tp, n_pred, n_gt)
        metrics["parse_rate"] = parsed / len(records) if records else 0.0
        return metrics

    # -- data ------------------------------------------------------------------------------------
    def render(self, sample: Mapping[str, Any]) -> str:
        out = []
        for word in sample["solution"]["words"]:
            pts = from_pixels(np.asarray(word["polygon"], dtype=np.float64).reshape(-1, 2), self.space(sample),
                              sample["image_size"], sample.get("resized_size"))
            out.append({"polygon": [[_short(x), _short(y)] for x, y in pts.tolist()], "text": word["text"]})
        return json.dumps(out)

    def synthetic(self, rng: random.Random) -> dict[str, Any]:
        return make_sample(rng)

    # -- report and perceptual perplexity --------------------------------------------------------
    def draw_solution(self, sample: Mapping[str, Any]) -> Shapes:
        """The true words' polygons, each labelled with its text."""
        words = sample["solution"]["words"]
        return Shapes(polygons=[[[float(x), float(y)] for x, y in w["polygon"]] for w in words],
                      labels=[w["text"] for w in words])

    def draw_answer(self, answer: list[Word], sample: Mapping[str, Any]) -> Shapes:
        """The predicted polygons in pixels, each labelled with the text read there."""
        return Shapes(polygons=[self._pixels(w.polygon, sample).tolist() for w in answer],
                      labels=[w.text for w in answer])

    def objects(self, solution: Mapping[str, Any]) -> int:
        """Every word is an object: a sample with n words admits n! matchings."""
        return len(solution["words"])


def _matches(ok: np.ndarray) -> int:
    """Size of the largest one-to-one matching of a boolean (P, G) matrix."""
    if not ok.any():
        return 0
    rows, cols = maximize(ok.astype(np.float64))
    return int(sum(ok[i, j] for i, j in zip(rows, cols, strict=True)))


def _short(v: float) -> int | float:
    """Integers stay integers; otherwise 6 decimals, far below a pixel in every space."""
    r = round(v, 6)
    return int(r) if r == int(r) else r
