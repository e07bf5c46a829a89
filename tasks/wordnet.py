"""The official PageOCR METEOR: nltk's ``meteor_score`` with its Porter stemmer and WordNet synonyms, as PR1's
evaluate_ocr.py calls it. It needs nltk (``pip install 'perception-r1[meteor]'``) and the WordNet 3.0 data:

* nltk's own copy (``python -m nltk.downloader wordnet``, where the network allows), or
* a WordNet 3.0 dictionary directory named by ``PERCEPTION_R1_WORDNET``, e.g. Debian's ``apt install
  wordnet-base`` (``/usr/share/wordnet``). That package lacks the ``lexnames`` file nltk reads (the fixed list
  of the 45 lexicographer files, lexnames(5WN)); it is supplied here.

Without both, ``meteor_official`` is left out of the metrics (:func:`wordnet` returns None); nothing is
downloaded. nltk is called, not transcribed: METEOR's synonym stage is WordNet lookups, which only a WordNet
reader can do.
"""

from __future__ import annotations

import functools
import io
import os
from typing import Any

ENV = "PERCEPTION_R1_WORDNET"
#: lexnames(5WN): the 45 lexicographer files of WordNet 2.0 and later, in order, with their syntactic category
LEXNAMES = (
    [("adj.all", 3), ("adj.pert", 3), ("adv.all", 4)]
    + [(f"noun.{n}", 1) for n in ("Tops act animal artifact attribute body cognition communication event feeling "
                                  "food group location motive object person phenomenon plant possession process "
                                  "quantity relation shape state substance time").split()]
    + [(f"verb.{n}", 2) for n in ("body change cognition communication competition consumption contact creation "
                                  "emotion motion perception possession social stative weather").split()]
    + [("adj.ppl", 3)]
)


def _directory_reader(root: str) -> Any:
    """nltk's WordNet reader on a WordNet 3.0 dictionary directory, ``lexnames`` supplied when it is missing."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if root not in nltk.data.path:  # nltk reads corpora only under its data path
        nltk.data.path.append(root)

    class Reader(WordNetCorpusReader):
        def open(self, fileid: str) -> Any:
            if fileid == "lexnames" and not os.path.isfile(os.path.join(root, "lexnames")):
                return io.StringIO("".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES)))
            return super().open(fileid)

        def map_wn(self, version: str = "wordnet") -> None:
            return None  # this is WordNet 3.0 itself: nothing to map (nltk would look for its own copy to map to)

    return Reader(root, None)


@functools.lru_cache(maxsize=1)
def wordnet() -> Any:
    """nltk's WordNet (``PERCEPTION_R1_WORDNET`` first, then nltk's data), or None where either is missing."""
    try:
        import nltk  # noqa: F401 - optional: only the official METEOR needs it
    except ImportError:
        return None
    root = os.environ.get(ENV)
    try:
        if root:
            return _directory_reader(root)
        from nltk.corpus import wordnet as nltk_wordnet

        nltk_wordnet.ensure_loaded()
        return nltk_wordnet
    except (LookupError, OSError, ValueError, PermissionError):
        return None


def official_meteor(hyp: list[str], ref: list[str]) -> float | None:
    """``nltk.translate.meteor_score.meteor_score([ref], hyp)`` on the official script's tokens; None without
    nltk's WordNet."""
    reader = wordnet()
    if reader is None:
        return None
    from nltk.translate.meteor_score import meteor_score

    return float(meteor_score([ref], hyp, wordnet=reader))
