"""Text metrics shared by the text tasks: normalized edit distance, bag-of-words P/R/F1, BLEU, METEOR.

Pure functions of two strings; the callers cap how much untrusted text reaches them (edit distance is
quadratic in the lengths). The OCR task and the text-spotting plugin score with the same edit distance
through this module, so the two can never drift apart.

Two families: ours (whitespace collapsed, multiset token P/R/F1, sacrebleu BLEU, exact-match METEOR) and, at
the end, the official PageOCR script's definitions transcribed without nltk (set-based P/R/F1, nltk's BLEU,
jieba words for Chinese): the paper's numbers come from the latter.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter

import editdistance


def normalized_edit_distance(pred: str, gt: str) -> float:
    """Levenshtein distance / max(len(pred), len(gt)), in [0, 1]; two empty strings -> 0.0."""
    longest = max(len(pred), len(gt))
    if longest == 0:
        return 0.0
    return min(1.0, editdistance.eval(pred, gt) / longest)


def bag_of_words_prf(pred: str, gt: str) -> tuple[float, float, float]:
    """Precision, recall, F1 of whitespace tokens as multisets. Empty vs empty = perfect."""
    p_tokens, g_tokens = Counter(pred.split()), Counter(gt.split())
    n_pred, n_gt = sum(p_tokens.values()), sum(g_tokens.values())
    if n_pred == 0 and n_gt == 0:
        return 1.0, 1.0, 1.0
    overlap = sum((p_tokens & g_tokens).values())
    precision = overlap / n_pred if n_pred else 0.0
    recall = overlap / n_gt if n_gt else 0.0
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    return precision, recall, f1


def _align_exact(hyp: list[str], ref: list[str]) -> list[tuple[int, int]]:
    """Exact unigram alignment (hyp index, ref index), one-to-one, as many matches as possible.

    Greedy in hypothesis order: each word takes the reference occurrence that extends the current
    chunk when there is one, else the earliest unused one. This reaches the maximum number of
    matches (sum of min counts) and keeps monotone runs together, so chunks are few.
    """
    positions: dict[str, list[int]] = {}
    for j, word in enumerate(ref):
        positions.setdefault(word, []).append(j)
    cursor = dict.fromkeys(positions, 0)  # first possibly-unused occurrence of each word
    used = [False] * len(ref)
    pairs: list[tuple[int, int]] = []
    last_ref = -2
    for i, word in enumerate(hyp):
        nxt = last_ref + 1
        if 0 <= nxt < len(ref) and ref[nxt] == word and not used[nxt]:
            j = nxt
        else:
            occurrences = positions.get(word)
            if occurrences is None:
                continue
            k = cursor[word]
            while k < len(occurrences) and used[occurrences[k]]:
                k += 1
            cursor[word] = k
            if k == len(occurrences):
                continue
            j = occurrences[k]
        used[j] = True
        pairs.append((i, j))
        last_ref = j
    return pairs


def meteor(pred: str, gt: str, alpha: float = 0.9, beta: float = 3.0, gamma: float = 0.5) -> float:
    """METEOR (Banerjee & Lavie 2005, parameters as in NLTK) with *exact* unigram matching only.

    Fmean = P R / (alpha P + (1 - alpha) R); penalty = gamma (chunks / matches) ** beta;
    score = Fmean (1 - penalty). Stem and synonym matching need WordNet data that cannot be
    downloaded here, so this is exact-match METEOR; with one matched word the penalty is 0.5 even
    for a perfect answer, as in the standard definition. Case-sensitive (nltk lowercases). It equals
    nltk's ``meteor_score`` with its stem and synonym stages off when no word repeats; with repeated
    words nltk pairs each answer word, last first, with the last unused equal truth word, which can
    split runs this alignment keeps together (tests/test_official_files.py shows both).
    """
    hyp, ref = pred.split(), gt.split()
    pairs = _align_exact(hyp, ref)
    matches = len(pairs)
    if matches == 0:
        return 0.0
    precision, recall = matches / len(hyp), matches / len(ref)
    fmean = precision * recall / (alpha * precision + (1 - alpha) * recall)
    chunks = 1 + sum(
        1 for (i0, j0), (i1, j1) in zip(pairs, pairs[1:], strict=False) if i1 != i0 + 1 or j1 != j0 + 1
    )
    return fmean * (1 - gamma * (chunks / matches) ** beta)


def sentence_bleu(pred: str, gt: str) -> float:
    """sacrebleu's sentence BLEU (13a tokenizer, exp smoothing, effective order) scaled to [0, 1]."""
    import sacrebleu  # imported here: only evaluation needs it

    return min(1.0, max(0.0, sacrebleu.sentence_bleu(pred, [gt]).score / 100.0))


# -- the official PageOCR script's definitions (PR1 evaluate_ocr.py, after the GOT / Fox OCR evaluations) ---------
_CJK = re.compile("[\u4e00-\u9fa5]")  # the official script's contain_chinese_string range


def needs_segmenter(*texts: str) -> bool:
    """Whether the official script would segment these texts with jieba (one of them holds a CJK character)."""
    return any(_CJK.search(text) for text in texts)


def official_tokens(pred: str, gt: str) -> tuple[list[str], list[str]] | None:
    """The official script's tokens of ``pred`` and ``gt``: jieba words when either holds a CJK character, else
    whitespace words; None when jieba is needed but not installed (``pip install 'perception-r1[cjk]'``)."""
    if not needs_segmenter(pred, gt):
        return pred.split(), gt.split()
    try:
        import jieba  # optional: only Chinese text needs it
    except ImportError:
        return None
    jieba.setLogLevel(60)  # its "Building prefix dict" banner is not ours to print
    return jieba.lcut(pred), jieba.lcut(gt)


def official_edit_distance(pred: str, gt: str) -> float:
    """``nltk.edit_distance(pred, gt) / max(len(pred), len(gt))`` on the texts as they are (character
    Levenshtein, no whitespace collapsing); two empty texts -> 0.0 where the official script divides by zero."""
    longest = max(len(pred), len(gt))
    return editdistance.eval(pred, gt) / longest if longest else 0.0


def set_prf(hyp: list[str], ref: list[str]) -> tuple[float, float, float]:
    """nltk.metrics precision / recall / f_measure (alpha 0.5) on the *sets* of tokens, as the official script
    calls them; where nltk returns None (an empty set) this gives 0.0."""
    hyp_set, ref_set = set(hyp), set(ref)
    common = len(hyp_set & ref_set)
    precision = common / len(hyp_set) if hyp_set else 0.0
    recall = common / len(ref_set) if ref_set else 0.0
    if precision == 0.0 or recall == 0.0:
        return precision, recall, 0.0
    return precision, recall, 1.0 / (0.5 / precision + 0.5 / recall)


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def nltk_bleu(hyp: list[str], ref: list[str]) -> float:
    """``nltk.translate.bleu_score.sentence_bleu([ref], hyp)`` with its defaults, transcribed: uniform weights
    over 1-4-grams, clipped n-gram precisions (denominator at least 1), no smoothing (a zero precision becomes
    the smallest float, so the score is ~0), 0 when no unigram matches, nltk's brevity penalty."""
    logs = []
    for n in range(1, 5):
        counts, ref_counts = _ngrams(hyp, n), _ngrams(ref, n)
        matched = sum(min(count, ref_counts[gram]) for gram, count in counts.items())
        if n == 1 and matched == 0:
            return 0.0
        precision = matched / max(1, sum(counts.values()))
        logs.append(0.25 * math.log(precision if matched else sys.float_info.min))
    penalty = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return penalty * math.exp(math.fsum(logs))
