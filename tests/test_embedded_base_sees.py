"""The shipped base looks at the image: with each sample shown another sample's image it reads far worse.

The README's control table, on a slice of the same held-out samples (the full 256: ED 0.268 vs 0.859).
"""

from __future__ import annotations

import json

import pytest
from helpers import run_cli


def held_out_edit_distance(*flags: str) -> float:
    result = run_cli("eval", "--task", "ocr", "--limit", "48", "--batch-size", "16", "--threads", "1", "--json", *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)["edit_distance"]


@pytest.mark.slow  # an end-to-end model run: `pytest -m slow` and CI run it
def test_the_embedded_base_reads_the_image_it_is_shown():
    right, shuffled = held_out_edit_distance(), held_out_edit_distance("--shuffle-images")
    assert right < 0.45 < 0.7 < shuffled, (right, shuffled)  # a blind model scores the same on both
