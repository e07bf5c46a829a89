"""OCR: read all the text in an image. Answer = the plain text; reward = 1 - normalized edit distance.

Model output is untrusted: :meth:`OCRTask.parse` keeps at most :data:`MAX_CHARS` characters, and the
reward compares at most ``4 * len(gt) + 64`` of them (:func:`reward_cap`) against the ground truth, so
edit distance costs are bounded whatever the model writes. Truncation can only *raise* a too-long
answer's similarity a little, and it stays below 0.25 (``len(gt) / cap``), so it never pays off.

Metrics (:meth:`OCRTask.evaluate`), each the mean over records of a per-record value in [0, 1]. Ours, on
whitespace-collapsed texts: ``edit_distance`` (character-level, normalized by the longer text; lower is better;
primary), bag-of-words ``precision`` / ``recall`` / ``f1`` on whitespace tokens counted as multisets, ``bleu``
(sacrebleu sentence BLEU / 100) and ``meteor`` (exact-match METEOR, see :func:`meteor`); a completion that does
not parse (empty) counts as the empty string. The official PR1 evaluate_ocr.py's, which the paper reports
(:data:`PAPER_BENCHMARKS` compares these): ``edit_distance_official`` (nltk's edit distance over the longer
length, on the texts as they are), ``precision_official`` / ``recall_official`` / ``f1_official`` (nltk's on
the *sets* of tokens) and ``bleu_official`` (nltk's sentence BLEU with its defaults), tokens being whitespace
words, or jieba words when either text holds a CJK character; transcribed in
:mod:`perception_r1.tasks.text_metrics` (no nltk at run time). They are left out when Chinese text needs jieba
and it is not installed (the ``cjk`` extra). ``meteor_official``, the official METEOR, is nltk's own (Porter
stems and WordNet synonyms, :mod:`perception_r1.tasks.wordnet`): reported only where nltk and the WordNet data
are installed (``meteor`` extra; nltk's data or ``PERCEPTION_R1_WORDNET``, e.g. Debian's wordnet-base).

Worst cases (measured in tests/test_reward_hacking.py, truth 'quick brown fox', reward range [0, 1]): one
typo scores 0.933; the answer repeated twice 0.484; the alphabet 0.154; the answer repeated 10,000 times 0.121
(compared up to a length cap); empty, whitespace and the prompt copied back score 0.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from perception_r1 import ParseError, RewardResult, Task, TaskRegister, hookimpl
from perception_r1.contract import Loaded, PaperBenchmark, Shapes
from perception_r1.tasks import rows, tiny_rl
from perception_r1.tasks.answers import require_text
from perception_r1.tasks.text_metrics import (
    bag_of_words_prf,
    meteor,
    nltk_bleu,
    normalized_edit_distance,
    official_edit_distance,
    official_tokens,
    sentence_bleu,
    set_prf,
)
from perception_r1.tasks.text_render import DEFAULT_SIZE, random_text, render_text
from perception_r1.tasks.wordnet import official_meteor

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
    "PageOCR": PaperBenchmark({"edit_distance_official": (0.080, 0.035), "f1_official": (0.944, 0.982)},
                              perplexity=1.0),
}
#: the official script's metrics (the paper's), beside ours; METEOR is ours only (see the module docstring)
OFFICIAL_KEYS = ("edit_distance_official", "precision_official", "recall_official", "f1_official", "bleu_official")


def _page_ocr_row(row: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(row["text"], str):
        raise rows.BadRow("text must be a string")
    return {"query": {}, "solution": {"text": row["text"]}}


def _conversation_truth(value: Any) -> str:
    """``conversations[1].value``: the answer turn of a PageOCR row."""
    if not isinstance(value, list) or len(value) < 2 or not isinstance(value[1], dict):
        raise rows.BadRow("conversations must be a list whose second entry is the answer {\"value\": text}")
    text = value[1]["value"]
    if not isinstance(text, str):
        raise rows.BadRow("conversations[1].value must be a string")
    return text


def load_page_ocr_json(task: Task, file: Path, found: rows.Rows, limit: int | None = None) -> list[dict[str, Any]]:
    """PR1's PageOCR evaluation files (``en_page_ocr.json``, ``cn_page_ocr.json``): a JSON list of ``{"image":
    file name, "conversations": [question, {"value": truth}]}``; the official script reads the image from
    ``<image_dir>/<lang>_pdf_png/<image>`` (``lang``: the file name's prefix), so :func:`rows.local_image`
    looks in ``<lang>_pdf_png/`` too."""
    subfolder = f"{file.name.split('_')[0]}_pdf_png"

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        sample = {"query": {}, "solution": {"text": _conversation_truth(row["conversations"])}}
        return [rows.finish(task, sample, rows.local_image(file, row["image"], subfolder))]

    return rows.collect(task, found, convert, limit)


#: the row layouts of one OCR file (JSON list or JSONL), tried in this order
LAYOUTS = (
    rows.Layout("page-ocr-json", ("image", "conversations")),
    rows.Layout("page-ocr-jsonl", ("image", "text")),
)


def file_benchmark(file: Path) -> str | None:
    """'PageOCR' for English PageOCR files (``en_page_ocr.json``, or a path naming "page"); the paper's numbers
    we carry are the English ones, so a Chinese file (``cn_*``, ``zh_*``) gets none."""
    if re.match(r"(cn|zh)[_-]", file.name, re.IGNORECASE):
        return None
    return "PageOCR" if re.match(r"en[_-]", file.name, re.IGNORECASE) or "page" in str(file).lower() else None


def official_metrics(completion: str, truth: str) -> dict[str, float] | None:
    """One record's official PageOCR metrics on the texts as they are; None when Chinese text needs jieba."""
    tokens = official_tokens(completion, truth)
    if tokens is None:
        return None
    hyp, ref = tokens
    precision, recall, f1 = set_prf(hyp, ref)
    metrics = {"edit_distance_official": official_edit_distance(completion, truth), "precision_official": precision,
               "recall_official": recall, "f1_official": f1, "bleu_official": nltk_bleu(hyp, ref)}
    if (meteor_value := official_meteor(hyp, ref)) is not None:  # only with nltk's WordNet (tasks/wordnet.py)
        metrics["meteor_official"] = meteor_value
    return metrics


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
        sums = dict.fromkeys((*keys, *OFFICIAL_KEYS, "meteor_official"), 0.0)
        meteor_count = 0
        official = True  # every record's official metrics could be computed (jieba present where needed)
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
            raw = official_metrics(str(record.get("completion") or "")[:MAX_CHARS],
                                   record["solution"]["text"][:MAX_TRUTH_CHARS])
            official = official and raw is not None
            meteor_count += "meteor_official" in (raw or {})
            for key, value in (raw or {}).items():
                sums[key] += value
        shown = keys + (OFFICIAL_KEYS if official else ())
        if official and meteor_count == len(records):  # every record had nltk's WordNet METEOR
            shown += ("meteor_official",)
        return {key: sums[key] / len(records) for key in shown}

    def render(self, sample: Mapping[str, Any]) -> str:
        return sample["solution"]["text"]

    def synthetic(self, rng: random.Random) -> dict[str, Any]:
        text = random_text(rng)
        image = render_text(text, DEFAULT_SIZE)
        return {"image": image, "image_size": list(image.size), "query": {}, "solution": {"text": text}}

    def load(self, path: str, split: str | None = None, limit: int | None = None) -> Loaded:
        """One file (``path``, or ``<path>/<split>.jsonl``) in one of :data:`LAYOUTS`: PR1's PageOCR JSON lists
        (:func:`load_page_ocr_json`), or ``{"image": "rel/path.png", "text": "..."}`` rows, optional ``"id"`` and
        ``"image_size"``. English PageOCR files get the paper's numbers (:func:`file_benchmark`).
        docs/data-layouts.md lists them all."""
        file = rows.split_jsonl(self, path, split)
        layout, found = rows.pick_layout(self, file, LAYOUTS)
        if layout.name == "page-ocr-json":
            return Loaded(load_page_ocr_json(self, file, found, limit), layout.name, file_benchmark(file))
        return Loaded(rows.load_jsonl(self, file, split, limit, _page_ocr_row), layout.name, file_benchmark(file))

    def draw_solution(self, sample: Mapping[str, Any]) -> Shapes:
        return Shapes(text=sample["solution"]["text"])

    def draw_answer(self, answer: str, sample: Mapping[str, Any]) -> Shapes:
        return Shapes(text=answer)


@hookimpl
def register_tasks(register: TaskRegister) -> None:
    register(OCRTask())
