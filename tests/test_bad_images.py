"""Missing or corrupt image files give one line naming the sample and the file, never a traceback."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from perception_r1.data.prepare import prepare_sample
from perception_r1.errors import UserError
from perception_r1.model.policy import Policy


@pytest.fixture(scope="module")
def policy(small_model):
    return Policy.load(small_model)


@pytest.mark.parametrize("content", [None, b"", b"\x89PNG\r\n\x1a\n garbage", b"GIF89a" + b"\x00" * 10])
def test_missing_or_corrupt_image(policy, tmp_path, content):
    path = tmp_path / "img.png"
    if content is not None:
        path.write_bytes(content)
    sample = {"id": "row-7", "image": str(path), "image_size": [10, 10], "solution": {}}
    with pytest.raises(UserError, match=rf"sample row-7: cannot open image '{path}'") as err:
        prepare_sample(sample, policy, SimpleNamespace(name="t", coord_space="pixels"))
    assert "\n" not in str(err.value)
