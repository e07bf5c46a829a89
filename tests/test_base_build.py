"""The embedded base's recipe: the dense targets each image token learns, and the build command end to end."""

from __future__ import annotations

import json
import random

import pytest
import torch
from PIL import Image

from perception_r1.recipe import dense_targets as dt
from perception_r1.tasks.scenes import COLORS, Scene, SceneObject


def _one_square_scene() -> Scene:
    """A red square filling cell (row 1, col 2) of a 4 x 4 token grid over a 112 x 112 image."""
    image = Image.new("RGB", (112, 112), (255, 255, 255))
    box = [56.0, 28.0, 84.0, 56.0]
    image.paste(COLORS["red"], [int(v) for v in box])
    return Scene(image=image, objects=[SceneObject("square", "red", box)])


def test_targets_say_what_covers_each_token_and_where_its_owner_is():
    t = dt.shape_targets(_one_square_scene(), rows=4, cols=4).reshape(4, 4, -1)
    assert t[1, 2, dt._COVER] == pytest.approx(1.0) and t[0, 0, dt._COVER] == 0
    owned = t[..., dt.SHAPE_OUT] > 0
    assert owned.sum() == 1 and owned[1, 2]
    assert t[1, 2, dt._COLOR.start] == dt.COLOR_NAMES.index("red") and t[1, 2, dt._SHAPE.start] == dt.SHAPES.index("square")
    assert torch.allclose(t[1, 2, dt._OFFSET], torch.zeros(2))  # the owner's centre is the cell's centre
    assert torch.allclose(t[1, 2, dt._ABSBOX], torch.tensor([0.5, 0.25, 0.75, 0.5]) * 4)  # where, in the image
    centres = t[..., dt._CENTRES].sum(-1)
    assert centres[1, 2] == 1 and centres.sum() == 1


def test_own_position_is_row_major_cell_centres():
    pos = dt.own_position(2, 3) / 4
    assert torch.allclose(pos[0], torch.tensor([1 / 6, 0.25])) and torch.allclose(pos[5], torch.tensor([5 / 6, 0.75]))


def test_warmup_scenes_vary_in_count_and_size():
    rng = random.Random(0)
    counts = {len(dt.random_warmup_scene(rng).objects) for _ in range(60)}
    assert 0 in counts and max(counts) >= 5


@pytest.mark.slow
def test_build_command_runs_every_stage_and_records_it(tmp_path, monkeypatch):
    from perception_r1.model.policy import Policy
    from perception_r1.recipe import base_build

    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "")
    out = tmp_path / "base"
    with pytest.raises(SystemExit) as done:
        base_build.main([str(out), "--quick", "--tasks", "counting,detection,grounding,ocr", "--emphasize", "grounding"])
    assert done.value.code == 0
    record = json.loads((out / "build.json").read_text())
    assert record["tasks"] == ["counting", "detection", "grounding", "ocr"] and record["emphasize"] == ["grounding"]
    assert all(record[f"{k}_steps"] == 3 for k in ("warmup", "sft", "refine_warmup", "refine_sft"))
    policy = Policy.load(out)
    assert next(policy.model.parameters()).dtype == torch.float32  # stored bf16, loaded for CPU training
    assert (out / "model.safetensors").stat().st_size < 40e6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]  # the random-init stage left nothing behind
