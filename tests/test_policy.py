"""The policy adapter on a freshly built tiny Qwen2-VL: load/save, grouped sampling, log-probs, errors."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from perception_r1.data.prepare import prepare_sample
from perception_r1.errors import UserError
from perception_r1.model.policy import DEFAULT_MODEL, Policy, completion_mask
from perception_r1.model.tiny import TinyConfig, build_tiny

BOXES = SimpleNamespace(name="boxes", coord_space="pixels")  # a task that answers boxes (its space: the model's)

CORPUS = ["Output the bounding box of the red circle in the image.", "(120,340),(560,780)", "How many squares? 3"]
SMALL = TinyConfig(vocab_size=400, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=2, num_key_value_heads=1, vision_embed_dim=32, vision_depth=1, vision_heads=2)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(2)
    return build_tiny(tmp_path_factory.mktemp("tiny"), corpus=CORPUS, cfg=SMALL)


@pytest.fixture(scope="module")
def policy(tiny_dir):
    return Policy.load(tiny_dir)


def images() -> list[Image.Image]:
    return [Image.new("RGB", (200, 150), "red"), Image.new("RGB", (90, 120), "blue")]


PROMPTS = ["Output the bounding box of the red circle in the image.", "How many?"]


def test_load_declares_space_and_processor(policy):
    assert policy.coord_space == "norm1000"
    assert type(policy.processor).__name__ == "PerceptionProcessor"
    assert policy.processor.image_processor.__class__.__name__ == "Qwen2VLImageProcessorPil"
    # digits are single tokens: coordinates are learnable digit by digit
    ids = policy.tokenizer("(120,340)", add_special_tokens=False)["input_ids"]
    assert [policy.tokenizer.decode([i]) for i in ids][1:4] == ["1", "2", "0"]
    # any text encodes and decodes (byte-level), though it was not in the corpus
    text = "Zürich ☃ 42"
    assert policy.tokenizer.decode(policy.tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_save_load_round_trip(policy, tmp_path):
    policy.save(tmp_path / "copy")
    again = Policy.load(tmp_path / "copy")
    a, b = policy.model.state_dict(), again.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.chat_text("hi") == policy.chat_text("hi")
    assert again.tokenizer.get_vocab() == policy.tokenizer.get_vocab()
    assert again.processor.image_processor.size == policy.processor.image_processor.size
    enc_a = policy.encode_prompts(PROMPTS, images())
    enc_b = again.encode_prompts(PROMPTS, images())
    assert all(torch.equal(enc_a[k], enc_b[k]) for k in enc_a)
    assert not list((tmp_path / "copy").glob("*.bin")) and (tmp_path / "copy" / "model.safetensors").is_file()


def test_save_in_half_precision_loads_as_float32(policy, tmp_path):
    policy.save(tmp_path / "half", dtype=torch.bfloat16)
    assert json.loads((tmp_path / "half" / "config.json").read_text())["dtype"] == "bfloat16"
    again = Policy.load(tmp_path / "half")
    assert next(again.model.parameters()).dtype == torch.float32
    assert next(policy.model.parameters()).dtype == torch.float32  # the live model is untouched


def test_generate_groups_are_contiguous(policy):
    torch.manual_seed(0)
    G = 3
    r = policy.generate(PROMPTS, images(), num_generations=G, max_new_tokens=7)
    N, T = r.completion_ids.shape
    assert N == 2 * G and 1 <= T <= 7 and r.num_prompts == 2
    assert r.completion_mask.shape == (N, T) and len(r.texts) == N
    p = r.prompt_inputs
    assert p["input_ids"].shape[0] == N and p["attention_mask"].shape == p["input_ids"].shape
    # rows i*G .. i*G+G-1 hold prompt i: identical prompt tokens and image grid within a group
    single = policy.encode_prompts(PROMPTS, images())
    for i in range(2):
        for g in range(G):
            assert torch.equal(p["input_ids"][i * G + g], single["input_ids"][i])
            assert torch.equal(p["image_grid_thw"][i * G + g], single["image_grid_thw"][i])
    # each image's patches are kept once: the G rows of a group share one vision-tower pass
    assert torch.equal(p["pixel_values"], single["pixel_values"])
    # left padding: the shorter prompt is padded at the start, every prompt ends with the assistant header
    assert (p["attention_mask"][:, -1] == 1).all()
    assert p["attention_mask"][G:, 0].sum() == 0


def _logprobs_one_row_at_a_time(policy, r):
    """Reference: every row its own image copy and its own full prompt + completion forward."""
    p, G = r.prompt_inputs, r.num_generations
    sizes = p["image_grid_thw"][::G].prod(-1).tolist()
    copies = torch.cat([patches for patches in p["pixel_values"].split(sizes) for _ in range(G)])
    input_ids = torch.cat([p["input_ids"], r.completion_ids], dim=1)
    attention = torch.cat([p["attention_mask"], r.completion_mask.long()], dim=1)
    types = torch.cat([p["mm_token_type_ids"], torch.zeros_like(r.completion_ids)], dim=1)
    logits = policy.model(input_ids=input_ids, attention_mask=attention, mm_token_type_ids=types,
                          pixel_values=copies, image_grid_thw=p["image_grid_thw"]).logits  # fmt: skip
    t = r.completion_ids.shape[1]
    logits = logits[:, -t - 1 : -1].float()
    logits[..., policy.suppressed_ids] = float("-inf")
    return logits.log_softmax(-1).gather(-1, r.completion_ids.unsqueeze(-1)).squeeze(-1)


def _grads(policy, logprobs, mask):
    policy.model.zero_grad()
    (logprobs * mask).sum().backward()
    return {n: q.grad.clone() for n, q in policy.model.named_parameters() if q.grad is not None}


@pytest.mark.parametrize("max_new_tokens", [6, 1])
def test_a_group_shares_its_image_and_prompt_pass_with_the_same_numbers(policy, max_new_tokens):
    """One vision pass and one prompt pass per group is an optimisation only: same log-probs and gradients."""
    torch.manual_seed(0)
    r = policy.generate(PROMPTS, images(), num_generations=3, max_new_tokens=max_new_tokens)
    assert r.completion_ids.shape[1] == max_new_tokens
    mask = r.completion_mask
    shared, expected = policy.token_logprobs(r), _logprobs_one_row_at_a_time(policy, r)
    assert torch.allclose(shared[mask.bool()], expected[mask.bool()], atol=1e-5)
    got, want = _grads(policy, shared, mask), _grads(policy, expected, mask)
    assert got.keys() == want.keys() and any(".visual." in n for n in got)  # the vision tower learns too
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-3, atol=1e-6), name
    policy.model.zero_grad()


def test_greedy_group_members_agree_and_match_single(policy):
    r = policy.generate(PROMPTS, images(), num_generations=2, max_new_tokens=6, greedy=True)
    single = policy.generate(PROMPTS, images(), num_generations=1, max_new_tokens=6, greedy=True)
    assert r.texts[0] == r.texts[1] == single.texts[0]
    assert r.texts[2] == r.texts[3] == single.texts[1]


def test_completion_mask_stops_after_first_eos():
    ids = torch.tensor([[5, 6, 9, 0, 9], [5, 5, 5, 5, 5], [8, 5, 5, 5, 5]])
    mask = completion_mask(ids, eos_ids=[9, 8])
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


def test_rollout_mask_and_texts_follow_eos(policy):
    """Force an EOS mid-completion by teacher forcing; the decoded text stops before it."""
    r = policy.teacher_forced(PROMPTS, images(), ["(1,2),(3,4)", "3"])
    eos = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for row, m in zip(r.completion_ids, r.completion_mask, strict=True):
        n = int(m.sum())
        assert row[n - 1] == eos and (m[:n] == 1).all() and (m[n:] == 0).all()
    assert policy.decode(r.completion_ids, r.completion_mask) == ["(1,2),(3,4)", "3"]


@pytest.mark.parametrize(("temperature", "with_images"), [(1.0, True), (0.7, True), (1.0, False)])
def test_token_logprobs_match_the_sampler(policy, temperature, with_images):
    torch.manual_seed(1)
    r = policy.generate(PROMPTS, images() if with_images else None, num_generations=3, max_new_tokens=10, temperature=temperature,
                        return_logprobs=True)
    with torch.no_grad():
        ours = policy.token_logprobs(r, temperature=temperature)  # (N, T)
    mask = r.completion_mask
    assert ours.shape == r.completion_ids.shape
    assert torch.allclose(ours * mask, r.sampler_logprobs, atol=1e-4)
    assert (ours * mask).sum() < 0  # real log-probs, not zeros


def test_token_logprobs_of_another_model_differ_and_carry_grad(policy):
    import copy

    other = copy.deepcopy(policy.model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    r = policy.teacher_forced(PROMPTS, images(), ["(1,2),(3,4)", "3"])
    mine = policy.token_logprobs(r)
    theirs = policy.token_logprobs(r, model=other)
    assert mine.requires_grad
    assert not torch.allclose(mine * r.completion_mask, theirs * r.completion_mask)


def test_prepare_loads_path_images_and_sets_space(policy, tmp_path):
    path = tmp_path / "im.png"
    Image.new("L", (300, 200), 128).save(path)
    sample = {"id": "a", "image": str(path), "query": {}, "solution": {}, "coords": "pixels"}
    out = prepare_sample(sample, policy, BOXES)
    assert out["image"].mode == "RGB" and out["image_size"] == [300, 200] and out["task"] == "boxes"
    assert out["coords"] == "norm1000" and sample["coords"] == "pixels"  # a copy
    assert prepare_sample(sample, policy, SimpleNamespace(name="text", coord_space="none"))["coords"] == "none"


def test_prepare_resized_size_is_what_the_processor_feeds(policy, monkeypatch):
    """For Qwen2.5-VL-style answers the recorded size must equal the processor's actual resize."""
    pytest.importorskip("perception_r1.tasks.geometry")
    monkeypatch.setattr(policy, "coord_space", "resized")
    image = Image.new("RGB", (517, 301))
    out = prepare_sample({"image": image}, policy, BOXES)
    grid = policy.encode_prompts(["x"], [image])["image_grid_thw"][0]  # (t, h_patches, w_patches)
    patch = policy.processor.image_processor.patch_size
    assert out["resized_size"] == [int(grid[2]) * patch, int(grid[1]) * patch]


@pytest.mark.parametrize("setup", ["missing", "empty", "not_json", "wrong_type"])
def test_bad_model_path_is_one_line_user_error(tmp_path, setup):
    path = tmp_path / "m"
    if setup != "missing":
        path.mkdir()
    if setup == "not_json":
        (path / "config.json").write_text("{")
        (path / "preprocessor_config.json").write_text("{}")
    if setup == "wrong_type":
        (path / "config.json").write_text('{"model_type": "bert"}')
        (path / "preprocessor_config.json").write_text("{}")
    with pytest.raises(UserError) as info:
        Policy.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_embedded_default_loads():
    if not (DEFAULT_MODEL / "config.json").is_file():
        pytest.fail(f"the shipped checkpoint {DEFAULT_MODEL} is missing")
    policy = Policy.load()
    assert policy.name == "tiny-base" and policy.coord_space == "norm1000"
    size = sum(f.stat().st_size for f in DEFAULT_MODEL.iterdir())
    assert size < 8_000_000  # a few MB


@pytest.fixture(scope="module")
def qwen25_dir(tmp_path_factory):
    """A directory laid out like a real Qwen2.5-VL checkpoint: flat 4.x-style config.json,
    preprocessor_config.json with min/max_pixels, chat_template.json, no processor_config.json."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from perception_r1.model.tiny import CHAT_TEMPLATE, build_tokenizer

    path = tmp_path_factory.mktemp("qwen25")
    tok = build_tokenizer(CORPUS, vocab_size=400)
    tok.save_pretrained(path)
    for name in ("chat_template.jinja", "chat_template.json"):  # keep only the real layout's file
        (path / name).unlink(missing_ok=True)
    (path / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>",
                                                     "<|vision_end|>", "<|im_end|>", "<|endoftext|>")}
    flat = {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
        "vocab_size": len(tok), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 1024,
        "rope_theta": 10000.0, "rope_scaling": {"type": "mrope", "mrope_section": [4, 6, 6]},
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "tie_word_embeddings": True,
        "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
        "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                          "out_hidden_size": 64, "window_size": 56, "fullatt_block_indexes": [1]},
    }
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**flat)).save_pretrained(path)
    (path / "config.json").write_text(json.dumps(flat))
    (path / "preprocessor_config.json").write_text(json.dumps({
        "min_pixels": 3136, "max_pixels": 200704, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
    }))
    return path


def test_real_checkpoint_layout_loads_the_same_way(qwen25_dir):
    """Qwen2.5-VL answers in resized pixels: resized_size matches what its processor feeds the model."""
    pytest.importorskip("perception_r1.tasks.geometry")
    policy = Policy.load(qwen25_dir)
    assert policy.coord_space == "resized"
    assert policy.processor.image_processor.size["longest_edge"] == 200704
    image = Image.new("RGB", (640, 480))
    out = prepare_sample({"image": image}, policy, BOXES)
    grid = policy.encode_prompts(["x"], [image])["image_grid_thw"][0]
    assert out["resized_size"] == [int(grid[2]) * 14, int(grid[1]) * 14] != [640, 480]
    torch.manual_seed(0)
    r = policy.generate(PROMPTS, images(), num_generations=2, max_new_tokens=5, return_logprobs=True)
    with torch.no_grad():
        ours = policy.token_logprobs(r)
    assert torch.allclose(ours * r.completion_mask, r.sampler_logprobs, atol=1e-4)
