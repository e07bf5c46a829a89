"""TRL as the oracle: on one batch, our GRPO loss and its gradients equal those of TRL's own
``GRPOTrainer._compute_loss`` for every loss both sides have, to 1e-6 relative.

One tiny causal LM (float64, from a config: no download), fixed prompts (left-padded), completions (some ended
early, one cut off), advantages, old and reference log-probs. Log-probs come from the model's logits as
:meth:`perception_r1.model.policy.Policy.token_logprobs` computes them (temperature applied to the logits, then
log-softmax). TRL's fused LM head computes them in float32 tiles, one float32 rounding (~1e-7) away from ours
(checked first, to that precision); for the loss and gradient comparison TRL's ``_compute_loss`` is handed the
same float64 log-probs (its log-prob helper is replaced by ours, keeping the graph to the model), so everything
after the log-probs, which is what differs between GRPO variants, is compared to 1e-6 relative without float32
noise in the way.

Where we deliberately differ from TRL, and why:
- TRL's default is ``loss_type="dapo"`` with ``beta=0``; ours is the paper's ``grpo`` with ``beta=0.04``.
  Every case below sets both sides explicitly.
- TRL 1.16 multiplies the KL term by the importance ratio by default (``use_bias_correction_kl``, from
  DeepSeek-V3.2, December 2025); ours is the plain k3 term of the paper's GRPO (and of TRL before it), so a
  default run stays what it was. The cases set ``use_bias_correction_kl=False``.
- TRL's ``dapo`` divides by the token count of the whole generation batch across processes (divided by the
  number of processes); ours divides by the tokens of each process's batch and DDP averages. On one process,
  as here, they are the same number; with several, ours weighs each process's batch equally.
- TRL masks truncated completions by zeroing their completion mask at generation (also their attention); we
  zero only their loss weight. The loss and gradients are the same (their tokens carry no loss either way).
- TRL's ``scale_rewards="batch"`` takes the std over every process's rewards; ours over the process's batch.
  (Advantages are inputs here; ``tests/test_grpo_menu.py`` checks the scaling by hand.)
"""

from __future__ import annotations

import pytest
import torch

from perception_r1.model.policy import DEFAULT_MODEL
from perception_r1.train.grpo import grpo_loss, sampler_correction
from perception_r1.train.sampling import Draw, loss_mask

trl = pytest.importorskip("trl")

B, P, T, BUDGET, TEMPERATURE = 4, 5, 6, 8, 0.7


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from datasets import Dataset
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(DEFAULT_MODEL))
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model = Qwen2ForCausalLM(config).double()
    out = tmp_path_factory.mktemp("trl")
    model.save_pretrained(out / "model")  # with beta > 0 TRL loads its reference model from the model's path
    model.config._name_or_path = str(out / "model")
    gen = torch.Generator().manual_seed(1)
    prompt_ids = torch.randint(10, 500, (B, P), generator=gen)
    prompt_mask = torch.ones(B, P, dtype=torch.long)
    prompt_mask[1, :2] = 0  # left padding
    completion_ids = torch.randint(10, 500, (B, T), generator=gen)
    completion_mask = torch.ones(B, T, dtype=torch.long)
    completion_mask[0, 4:] = 0  # ended early (EOS at 3)
    completion_mask[2, 2:] = 0
    batch = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
             "completion_mask": completion_mask, "advantages": torch.tensor([1.2, -0.4, 0.9, 1.5], dtype=torch.float64)}  # not zero-sum: no cancellation
    logps = our_logprobs(model, batch).detach()
    noise = torch.randn(2, B, T, generator=gen, dtype=torch.float64)
    batch["old_per_token_logps"] = logps + 0.3 * noise[0]  # ratios around 1, many outside the clip range
    batch["ref_per_token_logps"] = logps + 0.5 * noise[1]
    batch["sampling_per_token_logps"] = logps + 0.2 * noise[1].flip(0)  # a sampler that differs a little
    return model, tokenizer, Dataset.from_dict({"prompt": ["a", "b"]}), batch, out


def our_logprobs(model, batch, dtype=torch.float64) -> torch.Tensor:
    """(B, T) log-probs of the completion tokens, as Policy.token_logprobs computes them from the logits (it
    takes them in float32: ``dtype``)."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    logits = model(input_ids=ids, attention_mask=attention).logits[:, P - 1:-1].to(dtype) / TEMPERATURE
    picked = logits.gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    return picked - logits.logsumexp(-1)


def trl_trainer(setup, **args):
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer, data, _, out = setup
    config = GRPOConfig(output_dir=str(out), report_to="none", use_cpu=True, bf16=False, num_generations=2,
                        per_device_train_batch_size=2, max_completion_length=BUDGET, temperature=TEMPERATURE,
                        disable_tqdm=True, save_strategy="no", use_bias_correction_kl=False, **args)
    trainer = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                          args=config, train_dataset=data, processing_class=tokenizer)
    trainer.current_gradient_accumulation_steps = 1  # the training loop sets it; one micro-batch per step here
    return trainer


def grads_of(model, loss) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


# (TRL's GRPOConfig arguments, ours) for each loss both sides have
CASES = {
    "grpo": ({"loss_type": "grpo", "beta": 0.04, "epsilon": 0.2},
             {"how": "grpo", "beta": 0.04, "clip_eps": 0.2}),
    "dr_grpo": ({"loss_type": "dr_grpo", "beta": 0.04, "epsilon": 0.2},
                {"how": "dr_grpo", "beta": 0.04, "clip_eps": 0.2, "max_tokens": BUDGET}),
    "dapo clip-higher, a cut-off answer masked": (
        {"loss_type": "dapo", "beta": 0.0, "epsilon": 0.2, "epsilon_high": 0.28, "mask_truncated_completions": True},
        {"how": "dapo", "beta": 0.0, "clip_eps": 0.2, "clip_eps_high": 0.28, "truncated": 3}),
    "gspo (sequence ratios, GSPO's clip range)": (
        {"loss_type": "grpo", "beta": 0.0, "epsilon": 3e-4, "epsilon_high": 4e-4, "importance_sampling_level": "sequence"},
        {"how": "grpo", "beta": 0.0, "clip_eps": 3e-4, "clip_eps_high": 4e-4, "level": "sequence"}),
    "sequence ratios with KL and clip-higher": (
        {"loss_type": "grpo", "beta": 0.04, "epsilon": 0.2, "epsilon_high": 0.28, "importance_sampling_level": "sequence"},
        {"how": "grpo", "beta": 0.04, "clip_eps": 0.2, "clip_eps_high": 0.28, "level": "sequence"}),
    "grpo with the sampler correction (TRL: vLLM token_truncate)": (
        {"loss_type": "grpo", "beta": 0.04, "epsilon": 0.2},
        {"how": "grpo", "beta": 0.04, "clip_eps": 0.2, "correction_cap": 2.0}),
}


def test_trls_log_probs_are_ours_to_float32_precision(setup):
    model, _, _, batch, _ = setup
    trainer = trl_trainer(setup, loss_type="grpo", beta=0.0)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    theirs, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, attention, T)
    ours = our_logprobs(model, batch, torch.float32)
    mask = batch["completion_mask"].bool()
    assert (theirs - ours)[mask].abs().max() <= 2e-6 * ours[mask].abs().max()  # a few float32 ulps, temperature 0.7 both


@pytest.mark.parametrize("case", list(CASES))
def test_our_loss_and_gradients_equal_trls(setup, case, monkeypatch):
    model, _, _, batch, _ = setup
    trl_args, ours = dict(CASES[case][0]), dict(CASES[case][1])
    trainer = trl_trainer(setup, **trl_args)
    model.train()

    def same_logprobs(model_, input_ids, attention_mask, logits_to_keep, **kw):  # TRL's inputs, our float64 maths
        assert logits_to_keep == T and torch.equal(input_ids[:, P:], batch["completion_ids"])
        logps = our_logprobs(model_, {**batch, "completion_mask": attention_mask[:, P:]})
        return logps, torch.zeros_like(logps), None

    monkeypatch.setattr(trainer, "_get_per_token_logps_and_entropies", same_logprobs)
    inputs = {k: v for k, v in batch.items() if k != "sampling_per_token_logps"}
    if not trl_args["beta"]:
        inputs.pop("ref_per_token_logps")
    mask = batch["completion_mask"].double()
    if (row := ours.pop("truncated", None)) is not None:
        # TRL zeroes a cut-off completion's mask at generation; ours is the Draw's loss mask
        rollout = type("R", (), {"completion_mask": mask, "truncated": torch.arange(B) == row})()
        mask = loss_mask(Draw([None] * B, rollout, torch.zeros(B), {}), mask_truncated=True)
        inputs["completion_mask"] = batch["completion_mask"] * (torch.arange(B) != row).long().unsqueeze(1)
        assert mask[row].sum() == 0
    weights = None
    if (cap := ours.pop("correction_cap", None)) is not None:
        weights = sampler_correction(batch["old_per_token_logps"], batch["sampling_per_token_logps"], mask, cap)
        # TRL computes this ratio while generating with vLLM (not callable here without it); its loss applies it
        trainer.use_vllm, trainer.vllm_importance_sampling_correction = True, True
        inputs["importance_sampling_ratio"] = weights
    inputs["num_items_in_batch"] = inputs["completion_mask"].sum()

    theirs = trainer._compute_loss(trainer.model, inputs)
    their_grads = grads_of(model, theirs)
    logps = our_logprobs(model, batch)
    loss, _ = grpo_loss(logps, batch["old_per_token_logps"], batch["ref_per_token_logps"], batch["advantages"], mask,
                        token_weights=weights, **ours)
    our_grads = grads_of(model, loss)
    assert loss.item() == pytest.approx(theirs.item(), rel=1e-6)
    assert len(our_grads) == len(their_grads) and any(g.abs().max() > 0 for g in our_grads)
    for ours_g, theirs_g in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(ours_g, theirs_g, rtol=1e-6, atol=1e-6 * float(theirs_g.abs().max()))
