"""OCR: read all the text in an image. Answer = the plain text; reward = 1 - normalized edit distance.

Model output is untrusted: :meth:`OCRTask.parse` keeps at most :data:`MAX_CHARS` characters, and the
reward compares at most ``4 * len(gt) + 64`` of them (:func:`reward_cap`) against the ground truth, so
edit distance costs are bounded whatever the model writes. Truncation can only *raise* a too-long
answer's similarity a little, and it stays below 0.25 (``len(gt) / cap``), so it never pays off.

Metrics (:meth:`OCRTask.evaluate`), each the mean over records of a per-record value in [0, 1], as the
paper's OCR benchmarks compute them: ``edit_distance`` (character-level, normalized by the longer text;
lower is better; primary), bag-of-words ``precision`` / ``recall`` / ``f1`` on whitespace tokens, ``bleu``
(sacrebleu sentence BLEU / 100) and ``meteor`` (exact-match METEOR, see :func:`meteor`). A completion
that does not parse (empty) counts as the empty string.

Worst cases (measured in tests/test_reward_hacking.py, truth 'quick brown fox', reward range [0, 1]): one
typo scores 0.933; the answer repeated twice 0.484; the alphabet 0.154; the answer repeated 10,000 times 0.121
(compared up to a length cap); empty, whitespace and the prompt copied back score 0.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from perception_r1 import ParseError, RewardResult, Task, TaskRegister, hookimpl
from perception_r1.contract import Loaded, PaperBenchmark, Shapes
from perception_r1.tasks import rows, tiny_rl
from perception_r1.tasks.answers import require_text
from perception_r1.tasks.text_metrics import bag_of_words_prf, meteor, normalized_edit_distance, sentence_bleu
from perception_r1.tasks.text_render import DEFAULT_SIZE, random_text, render_text

#: longest completion considered at all (a dense document page is a few thousand characters)
MAX_CHARS = 32_000
#: longest ground truth (longer is refused by the schema, so by loaders and `score`, with file:line): edit distance
#: is quadratic, and 6,000 truth characters against the 24,064 compared answer characters cost ~0.25 s per reward
#: call on one core (a 300k-character truth cost 20 s)
MAX_TRUTH_CHARS = 6_000


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace -> one space, no leading or trailing space."""
    return " ".join(text.split())


def reward_cap(gt: str) -> int:
    """How many characters of an answer the reward compares to ground truth ``gt``."""
    return 4 * len(gt) + 64


#: the paper's first version (a later one reports 2.8 edit distance with the same F1); fractions here, the
#: paper quotes percent. One answer per sample: perceptual perplexity 1.
PAPER_BENCHMARKS = {
    "PageOCR": PaperBenchmark({"edit_distance": (0.080, 0.035), "f1": (0.944, 0.982)}, perplexity=1.0),
}


def _page_ocr_row(row: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(row["text"], str):
        raise rows.BadRow("text must be a string")
    return {"query": {}, "solution": {"text": row["text"]}}


class OCRTask(Task):
    name = "ocr"
    description = "Read all the text in the image (plain-text answer, edit-distance reward)."
    prompt_template = "OCR this image."
    coord_space = "none"
    solution_schema = {
        "type": "object",
        "required": ["text"],
        "properties": {"text": {"type": "string", "pattern": r"\S", "maxLength": MAX_TRUTH_CHARS}},
    }
    reward_range = (0.0, 1.0)
    primary_metric = "edit_distance"
    higher_is_better = False
    best_metric_value = 0.0
    paper_benchmarks = PAPER_BENCHMARKS

    #: RL settings on the embedded base (issue 13; README "What run does"): edit distance 0.268 -> 0.263 / 0.267 /
    #: 0.264 on seeds 0, 1, 2 (120 steps x 8 prompts: 0.260 / 0.278 / 0.265).
    tiny_run_defaults = tiny_rl.settings(steps=90, max_new_tokens=16, prompts_per_step=32)

    def parse(self, text: str) -> str:
        """The answer with whitespace collapsed; ParseError when nothing but whitespace is left."""
        answer = collapse_whitespace(require_text(text)[:MAX_CHARS])
        if not answer:
            raise ParseError("empty answer")
        return answer

    def reward(self, completion: str, sample: Mapping[str, Any]) -> RewardResult:
        gt = collapse_whitespace(sample["solution"]["text"])[:MAX_TRUTH_CHARS]  # bounded, even unvalidated
        try:
            answer = self.parse(completion)
        except ParseError:
            return RewardResult(0.0, {"format": 0.0, "edit_similarity": None})
        similarity = 1.0 - normalized_edit_distance(answer[: reward_cap(gt)], gt)
        return RewardResult(similarity, {"format": 1.0, "edit_similarity": similarity}, answer=answer)

    def evaluate(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        if not records:
            return {}
        keys = ("edit_distance", "f1", "precision", "recall", "bleu", "meteor")
        sums = dict.fromkeys(keys, 0.0)
        for record in records:
            gt = collapse_whitespace(record["solution"]["text"])[:MAX_TRUTH_CHARS]
            try:
                pred = self.parse(record.get("completion") or "")
            except ParseError:
                pred = ""
            precision, recall, f1 = bag_of_words_prf(pred, gt)
            sums["edit_distance"] += normalized_edit_distance(pred, gt)
            sums["precision"] += precision
            sums["recall"] += recall
            sums["f1"] += f1
            sums["bleu"] += sentence_bleu(pred, gt)
            sums["meteor"] += meteor(pred, gt)
        return {key: sums[key] / len(records) for key in keys}

    def render(self, sample: Mapping[str, Any]) -> str:
        return sample["solution"]["text"]

    def synthetic(self, rng: random.Random) -> dict[str, Any]:
        text = random_text(rng)
        image = render_text(text, DEFAULT_SIZE)
        return {"image": image, "image_size": list(image.size), "query": {}, "solution": {"text": text}}

    def load(self, path: str, split: str | None = None, limit: int | None = None) -> Loaded:
        """Page-OCR JSONL ``<path>/<split>.jsonl`` (or the file ``path``): ``{"image": "rel/path.png", "text":
        "..."}`` per line, optional ``"id"`` and ``"image_size"``; a path naming "page" is the paper's PageOCR."""
        bench = "PageOCR" if "page" in str(path).lower() else None
        return Loaded(rows.load_jsonl(self, path, split, limit, _page_ocr_row), "page-ocr-jsonl", bench)

    def draw_solution(self, sample: Mapping[str, Any]) -> Shapes:
        return Shapes(text=sample["solution"]["text"])

    def draw_answer(self, answer: str, sample: Mapping[str, Any]) -> Shapes:
        return Shapes(text=answer)


@hookimpl
def register_tasks(register: TaskRegister) -> None:
    register(OCRTask())
