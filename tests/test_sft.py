"""SFT: the loss on answer tokens falls; batches mix tasks deterministically; the command saves a loadable model."""

from __future__ import annotations

import math
import random

import pytest
import torch
from PIL import Image

from perception_r1.cli import main
from perception_r1.contract import Task
from perception_r1.model.policy import Policy
from perception_r1.model.tiny import TinyConfig, build_tiny
from perception_r1.train.sft import answer_loss, sft, sft_batch

COLORS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}
SMALL = TinyConfig(vocab_size=400, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=2, num_key_value_heads=1, vision_embed_dim=32, vision_depth=1, vision_heads=2)


class ColorTask(Task):
    """Name the colour of a plain image: the smallest task with an image and a text answer."""

    name = "color"
    prompt_template = "What colour is the image?"
    coord_space = "none"
    primary_metric = "accuracy"
    solution_schema = {"type": "string"}

    def render(self, sample):
        return sample["solution"]

    def synthetic(self, rng: random.Random):
        color = rng.choice(sorted(COLORS))
        return {"image": Image.new("RGB", (56, 56), COLORS[color]), "image_size": [56, 56], "solution": color}


class ShadeTask(ColorTask):
    """A second task on the same kind of images: the prompt decides which answer is wanted."""

    name = "shade"
    prompt_template = "Is it dark or light?"

    def synthetic(self, rng: random.Random):
        dark = rng.random() < 0.5
        value = rng.randint(0, 60) if dark else rng.randint(190, 255)
        return {"image": Image.new("RGB", (56, 56), (value,) * 3), "image_size": [56, 56],
                "solution": "dark" if dark else "light"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(2)
    corpus = ["What colour is the image?", "Is it dark or light?", *COLORS, "dark", "light"]
    return build_tiny(tmp_path_factory.mktemp("tiny"), corpus=corpus, cfg=SMALL)


def test_sft_steps_reduce_loss_on_a_fixed_batch(tiny_dir):
    torch.manual_seed(0)
    policy = Policy.load(tiny_dir)
    tasks = [ColorTask(), ShadeTask()]
    samples, chosen = sft_batch(policy, tasks, batch_size=8, step=0, seed=0)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = answer_loss(policy, samples, chosen)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses


def test_sft_batches_mix_tasks_and_are_reproducible(tiny_dir):
    policy = Policy.load(tiny_dir)
    tasks = [ColorTask(), ShadeTask()]
    a, ta = sft_batch(policy, tasks, batch_size=6, step=3, seed=1)
    b, tb = sft_batch(policy, tasks, batch_size=6, step=3, seed=1)
    c, _ = sft_batch(policy, tasks, batch_size=6, step=4, seed=1)
    assert [t.name for t in ta] == [t.name for t in tb] and {t.name for t in ta} == {"color", "shade"}
    assert [s["id"] for s in a] == [s["id"] for s in b] != [s["id"] for s in c]
    assert all(s["coords"] == "none" and s["image"].mode == "RGB" for s in a)


@pytest.mark.slow  # an end-to-end model run: `pytest -m slow` and CI run it
def test_sft_learns_the_answers(tiny_dir):
    """Fresh samples every step; afterwards greedy answers are right on unseen samples."""
    torch.manual_seed(0)
    policy = Policy.load(tiny_dir)
    tasks = [ColorTask(), ShadeTask()]
    logged = []
    losses = sft(policy, tasks, steps=80, batch_size=8, lr=3e-3, seed=0, log=lambda s, v: logged.append(s))
    assert logged == list(range(1, 81)) and len(losses) == 80
    assert sum(losses[-5:]) / 5 < 0.3 * sum(losses[:5]) / 5
    samples, chosen = sft_batch(policy, tasks, batch_size=16, step=999, seed=7)
    rollout = policy.generate([t.prompt(s) for s, t in zip(samples, chosen, strict=True)],
                              [s["image"] for s in samples], greedy=True, max_new_tokens=4)
    right = sum(text == s["solution"] for text, s in zip(rollout.texts, samples, strict=True))
    assert right >= 13, rollout.texts


def test_sft_command_saves_a_loadable_model(tiny_dir, tmp_path, capsys):
    from perception_r1.registry import get_registry

    name = sorted(get_registry().tasks)[0]
    out = tmp_path / "sft"
    code = main(["sft", "--task", name, "--model", str(tiny_dir), "--out", str(out), "--steps", "2",
                 "--batch-size", "2", "--log-every", "1", "--save-dtype", "bfloat16"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "step     2/2  loss" in printed and f"saved {out}" in printed
    assert Policy.load(out).coord_space == "norm1000"


def test_sft_command_unknown_task_is_one_line_error(capsys):
    assert main(["sft", "--task", "no-such-task", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-task" in err


def test_sft_without_out_saves_under_runs_and_says_how_to_train_it(tiny_dir, tmp_path, capsys, monkeypatch):
    from perception_r1.registry import get_registry

    monkeypatch.chdir(tmp_path)
    name = sorted(get_registry().tasks)[0]
    assert main(["sft", "--task", name, "--model", str(tiny_dir), "--steps", "1", "--batch-size", "2"]) == 0
    (saved,) = (tmp_path / "runs").iterdir()
    assert saved.name.startswith(f"sft-{name}-") and (saved / "config.json").is_file()
    printed = capsys.readouterr().out
    assert f"perception-r1 run --task {name} --model runs/{saved.name}" in printed
    assert main(["sft", "--task", name, "--model", str(tiny_dir), "--out", str(saved), "--steps", "1"]) == 2
    assert "is not empty" in capsys.readouterr().err
