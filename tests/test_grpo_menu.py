"""The RL menu (issue 25) against values computed by hand: reward scaling, clip-higher, sequence-level ratios
(GSPO), truncated completions, dynamic sampling's choice of groups, the sampler correction, presets, the
small-model defaults and the console's warnings."""

import math
from types import SimpleNamespace

import pytest
import torch

from perception_r1.errors import UserError
from perception_r1.model.policy import truncated_rows
from perception_r1.train import config as cfg
from perception_r1.train.advice import signal_warning, step_status
from perception_r1.train.grpo import (
    aggregate,
    clipped_surrogate,
    first_groups,
    group_advantages,
    grpo_loss,
    importance_ratio,
    reward_scaling,
    sampler_correction,
    spread_groups,
)
from perception_r1.train.presets import RECIPES
from perception_r1.train.sampling import Draw, draw_until_spread, kept_advantages, loss_mask


def test_scale_rewards_group_batch_none_and_the_old_booleans():
    rewards = torch.tensor([1.0, 0.0, 3.0, 3.0])  # groups of 2: (1, 0) and (3, 3)
    # group: mean 0.5, std sqrt(0.5) -> +-0.7071; the flat group stays 0
    assert group_advantages(rewards, 2, "group").tolist() == pytest.approx([0.70711, -0.70711, 0, 0], abs=1e-3)
    # batch: the same centring, divided by the batch's std: mean 1.75, sum of squares 0.5625+3.0625+1.5625*2=6.75,
    # unbiased std sqrt(6.75 / 3) = 1.5 -> +-0.5 / 1.5
    assert group_advantages(rewards, 2, "batch").tolist() == pytest.approx([1 / 3, -1 / 3, 0, 0], abs=1e-3)
    assert group_advantages(rewards, 2, "none").tolist() == pytest.approx([0.5, -0.5, 0, 0])
    assert torch.equal(group_advantages(rewards, 2, True), group_advantages(rewards, 2, "group"))
    assert torch.equal(group_advantages(rewards, 2, False), group_advantages(rewards, 2, "none"))
    assert reward_scaling(True) == "group" and reward_scaling(False) == "none"
    with pytest.raises(ValueError, match="scale_rewards 'std'"):
        reward_scaling("std")


def test_clip_higher_lets_a_good_token_rise_further_than_a_bad_one_falls():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.25]]))  # ratios 1.5, 0.5, 1.25 against old log-prob 0
    old = torch.zeros(1, 3)
    pos = clipped_surrogate(logp, old, torch.tensor([1.0]), clip_eps=0.2, clip_eps_high=0.28)
    # A > 0: min(r, clip(r, 0.8, 1.28)) -> 1.28 ; 0.5 ; 1.25 (inside the higher range, clipped at 1.2 before)
    assert pos.tolist()[0] == pytest.approx([-1.28, -0.5, -1.25])
    neg = clipped_surrogate(logp, old, torch.tensor([-1.0]), clip_eps=0.2, clip_eps_high=0.28)
    # A < 0: -min(-r, -clip(r)) = max(r, clip(r)) -> 1.5 ; 0.8 (the lower range is still 0.2) ; 1.25
    assert neg.tolist()[0] == pytest.approx([1.5, 0.8, 1.25])
    same = clipped_surrogate(logp, old, torch.tensor([1.0]), clip_eps=0.2)  # no clip_eps_high: symmetric
    assert same.tolist()[0] == pytest.approx([-1.2, -0.5, -1.2])


def test_sequence_level_ratio_is_the_geometric_mean_over_the_mask():
    logp = torch.log(torch.tensor([[2.0, 0.5, 8.0], [4.0, 1.0, 1.0]]))
    old = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    seq = importance_ratio(logp, old, mask, "sequence")
    # row 0: sqrt(2 * 0.5) = 1 (the masked 8 does not count); row 1: (4 * 1 * 1) ** (1/3)
    assert seq.shape == (2, 1) and seq.squeeze(1).tolist() == pytest.approx([1.0, 4 ** (1 / 3)])
    # GSPO's clip range 3e-4 / 4e-4: row 1's ratio 1.587 is clipped to 1.0004 for a positive advantage
    loss = clipped_surrogate(logp, old, torch.tensor([1.0, 1.0]), 3e-4, 4e-4, "sequence", mask)
    assert loss.squeeze(1).tolist() == pytest.approx([-1.0, -1.0004])
    # aggregated like any per-token loss: a (N, 1) term weighs each token of its row
    assert aggregate(loss, mask, "dr_grpo", max_tokens=4).item() == pytest.approx(-(1.0 * 2 + 1.0004 * 3) / (2 * 4))
    with pytest.raises(ValueError, match="sequence needs the mask"):
        importance_ratio(logp, old, None, "sequence")


def test_truncated_rows_are_those_without_eos_that_used_the_whole_budget():
    ids = torch.tensor([[5, 9, 0], [5, 6, 7], [9, 0, 0]])  # EOS = 9; pad 0
    assert truncated_rows(ids, [9], max_new_tokens=3).tolist() == [False, True, False]
    assert truncated_rows(ids, [9], max_new_tokens=4).tolist() == [False, False, False]  # stopped before the budget


def _draw(rewards, completion_mask=None, truncated=None):
    n = len(rewards)
    rollout = SimpleNamespace(completion_mask=torch.ones(n, 2) if completion_mask is None else completion_mask,
                              truncated=truncated, sampler_logprobs=None)
    records = [SimpleNamespace(advantage=None) for _ in range(n)]
    return Draw(records, rollout, torch.tensor(rewards), {})


def test_truncated_completions_get_no_loss_weight():
    draw = _draw([1.0, 0.0], truncated=torch.tensor([False, True]))
    assert loss_mask(draw, mask_truncated=True).tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert loss_mask(draw, mask_truncated=False).tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_spread_groups_and_first_groups_across_draws():
    assert spread_groups(torch.tensor([1.0, 1.0, 0.0, 0.5]), 2).tolist() == [False, True]
    kept = first_groups([torch.tensor([True, False, True]), torch.tensor([True, True])], want=3)
    assert [k.tolist() for k in kept] == [[True, False, True], [True, False]]  # the first 3, in draw order


def test_dynamic_sampling_draws_until_enough_groups_differ():
    tries = [[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 2.0, 2.0], [0.0, 1.0, 0.5, 0.0]]  # G=2: spreads 0, 1, 2 groups
    calls = []
    draws, counts = draw_until_spread(lambda t: calls.append(t) or _draw(tries[t]), prompts=2, group_size=2,
                                      max_tries=8)
    assert calls == [0, 1, 2]  # try 1 found one group, try 2 the second: then it stops
    assert counts == {"groups_drawn": 6, "groups_kept": 2, "sampling_tries": 3}
    assert [d.kept().tolist() for d in draws] == [[False] * 4, [True, True, False, False], [True, True, False, False]]
    advantages = kept_advantages(draws, 2, "none")
    assert [a.tolist() for a in advantages] == [[0, 0, 0, 0], [0.5, -0.5, 0, 0], [-0.5, 0.5, 0, 0]]
    assert [r.advantage for r in draws[1].records] == [0.5, -0.5, 0, 0]
    assert loss_mask(draws[1], False).tolist() == [[1, 1], [1, 1], [0, 0], [0, 0]]


def test_dynamic_sampling_is_bounded_and_falls_back_to_the_first_draw():
    draws, counts = draw_until_spread(lambda t: _draw([1.0, 1.0]), prompts=4, group_size=2, max_tries=3)
    assert counts == {"groups_drawn": 3, "groups_kept": 0, "sampling_tries": 3}
    assert draws[0].keep is None and not draws[1].kept().any()  # trains on the first draw as a plain step would


def test_parts_of_a_batch_add_up_to_the_whole_batch():
    """Dynamic sampling's draws are separate forwards: with the batch's row and token counts their losses sum to
    the loss of the kept rows taken together, for every aggregation."""
    torch.manual_seed(0)
    per_token, mask = torch.randn(4, 3), torch.tensor([[1.0, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]])
    for how in ("grpo", "dapo", "dr_grpo"):
        whole = aggregate(per_token, mask, how, max_tokens=3)
        parts = sum(aggregate(per_token[s], mask[s], how, 3, rows=4, tokens=mask.sum().item())
                    for s in (slice(0, 1), slice(1, 4)))
        assert parts.item() == pytest.approx(whole.item(), rel=1e-6), how


def test_sampler_correction_is_the_capped_ratio_without_gradient():
    old = torch.log(torch.tensor([[0.5, 0.4, 0.3]])).requires_grad_()
    sampler = torch.log(torch.tensor([[0.25, 0.4, 0.01]]))
    w = sampler_correction(old, sampler, torch.tensor([[1.0, 1.0, 0.0]]), cap=2.0)
    # 0.5 / 0.25 = 2 ; 0.4 / 0.4 = 1 ; the masked token weighs 0 (its ratio 30 would have been capped)
    assert w.tolist()[0] == pytest.approx([2.0, 1.0, 0.0]) and not w.requires_grad
    w = sampler_correction(old, torch.log(torch.tensor([[0.1, 0.8, 0.3]])), torch.ones(1, 3), cap=3.0)
    assert w.tolist()[0] == pytest.approx([3.0, 0.5, 1.0])  # 5 capped at 3


def test_grpo_loss_weights_the_surrogate_but_not_the_kl():
    logp = torch.log(torch.tensor([[0.5, 0.5]]))
    ref = torch.log(torch.tensor([[0.25, 0.5]]))
    mask, adv = torch.ones(1, 2), torch.tensor([1.0])
    weights = torch.tensor([[2.0, 0.5]])
    loss, _ = grpo_loss(logp, logp.detach(), ref, adv, mask, beta=0.1, token_weights=weights)
    kl0 = 0.5 - math.log(0.5) - 1.0  # k3 at the first token; 0 at the second
    assert loss.item() == pytest.approx(((-2.0 + 0.1 * kl0) + (-0.5)) / 2)


def test_recipes_fill_what_the_user_did_not_set_and_beat_a_tasks_settings(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("recipe: dapo\nclip_eps_high: 0.3\n")
    config = cfg.resolve(path, {"beta": 0.01})
    assert (config["clip_eps_low"], config["clip_eps_high"], config["beta"]) == (0.2, 0.3, 0.01)  # the user's win
    assert config["dynamic_sampling"] and config["mask_truncated_completions"] and config["loss_aggregation"] == "dapo"
    given = cfg.explicit_keys(cfg.read_config_file(path), {"beta": 0.01})
    task = SimpleNamespace(name="t", tiny_run_defaults={"scale_rewards": True, "loss_aggregation": "grpo", "steps": 9})
    cfg.apply_task_defaults(config, [task], given, 2_500_000)
    assert config["loss_aggregation"] == "dapo" and config["steps"] == 9  # the recipe's key is chosen, not a default
    gspo = cfg.resolve(None, {"recipe": "gspo"})
    assert (gspo["importance_sampling_level"], gspo["clip_eps_low"], gspo["clip_eps_high"]) == ("sequence", 3e-4, 4e-4)
    assert cfg.resolve(None, {"recipe": "dr_grpo"})["scale_rewards"] == "none"
    assert set(RECIPES) == {"paper", "dapo", "dr_grpo", "gspo"}
    with pytest.raises(UserError, match="key 'recipe'"):
        cfg.resolve(None, {"recipe": "ppo"})


def test_the_menu_defaults_off_and_its_keys_are_validated():
    config = cfg.resolve()
    assert (config["recipe"], config["clip_eps_low"], config["clip_eps_high"], config["dynamic_sampling"],
            config["mask_truncated_completions"], config["sampler_correction_cap"],
            config["importance_sampling_level"], config["scale_rewards"]) == (None, None, None, False, False, None,
                                                                               "token", True)
    for bad, key in [({"clip_eps_high": 0}, "clip_eps_high"), ({"clip_eps_low": float("nan")}, "clip_eps_low"),
                     ({"dynamic_sampling_max_tries": 0}, "dynamic_sampling_max_tries"),
                     ({"sampler_correction_cap": 0.5}, "sampler_correction_cap"),
                     ({"scale_rewards": "std"}, "scale_rewards"), ({"importance_sampling_level": "seq"}, "importance")]:
        with pytest.raises(UserError, match=key):
            cfg.resolve(None, bad)
    assert cfg.resolve(None, {"scale_rewards": "batch"})["scale_rewards"] == "batch"


def test_a_task_without_small_model_settings_gets_those_that_worked_for_the_built_ins():
    from perception_r1.tasks import tiny_rl

    config = cfg.resolve()
    bare = SimpleNamespace(name="new", tiny_run_defaults={})
    assert sorted(cfg.apply_task_defaults(config, [bare], set(), 2_500_000)) == sorted(cfg.SMALL_TASK_DEFAULTS)
    assert (config["temperature"], config["prompts_per_step"], config["eval_samples"]) == (0.7, 8, 256)
    built_in = tiny_rl.settings(steps=60, max_new_tokens=160)  # the same numbers the built-in tasks use
    assert {k: built_in[k] for k in cfg.SMALL_TASK_DEFAULTS} == cfg.SMALL_TASK_DEFAULTS
    big = cfg.resolve()
    assert cfg.apply_task_defaults(big, [bare], set(), 2_000_000_000) == [] and big["temperature"] == 1.0


def _steps(flat, skipped, start=1):
    return [{"step": start + i, "reward": 0.0, "kl": 0.0, "zero_std_groups": f, "update_skipped": s}
            for i, (f, s) in enumerate(zip(flat, skipped, strict=True))]


def test_the_console_says_when_updates_are_skipped_or_groups_are_flat():
    config = {"temperature": 0.7, "dynamic_sampling": False}
    line = signal_warning(_steps([1.0] * 5, [True] * 5), config, every=5)
    assert "steps 1-5: 5 of 5 updates skipped" in line and "100% of groups" in line
    assert "dynamic_sampling=true" in line and "temperature" in line and "format reward" in line
    assert "dynamic_sampling=true" not in signal_warning(_steps([0.75] * 5, [False] * 5),
                                                         {**config, "dynamic_sampling": True,
                                                          "dynamic_sampling_max_tries": 4}, every=5)
    assert signal_warning(_steps([0.4] * 5, [False] * 5), config, every=5) is None  # most groups differ
    assert signal_warning(_steps([1.0] * 4, [True] * 4), config, every=5) is None  # not 5 steps yet
    assert signal_warning(_steps([1.0] * 5, [True] * 5, start=2), config, every=5) is None  # once per 5 steps
    status = step_status({"reward": 0.0, "kl": 0.0, "zero_std_groups": 1.0, "update_skipped": True})
    assert status == "reward 0.000  kl 0.0000  flat groups 100%  update skipped"
    assert "skipped" not in step_status({"reward": 0.5, "kl": 0.1, "zero_std_groups": 0.25, "update_skipped": False})


class _Toy(torch.nn.Module):
    """A policy whose every token's logit is one shared parameter vector: log-probs by indexing."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.3, -0.2, 0.5, 0.1, -0.4]))

    def token_logprobs(self, rollout, model=None, temperature=1.0):
        return torch.log_softmax(self.w / temperature, -1)[rollout.completion_ids]


def _trainer(config):
    from contextlib import nullcontext
    from functools import partial

    from perception_r1.train.trainer import Trainer

    toy = _Toy()
    accelerator = SimpleNamespace(backward=lambda loss: loss.backward(), no_sync=lambda model: nullcontext(),
                                  clip_grad_norm_=torch.nn.utils.clip_grad_norm_, gather=lambda t: t, device="cpu")
    full = {**cfg.resolve(), "beta": 0.0, "max_new_tokens": 3, **config}
    stub = SimpleNamespace(config=full, policy=toy, model=toy, optimizer=torch.optim.SGD(toy.parameters(), lr=1.0),
                           accelerator=accelerator, reference=None)
    stub._ref_logprobs = partial(Trainer._ref_logprobs, stub)
    stub._nothing_to_learn = partial(Trainer._nothing_to_learn, stub)
    return toy, partial(Trainer.update, stub)


def _rollout_draw(ids, mask, keep=None):
    rollout = SimpleNamespace(completion_ids=torch.tensor(ids), completion_mask=torch.tensor(mask), truncated=None,
                              sampler_logprobs=None)
    return Draw([None] * len(ids), rollout, torch.zeros(len(ids)), {}, None if keep is None else torch.tensor(keep))


@pytest.mark.parametrize("how", ["grpo", "dapo", "dr_grpo"])
def test_an_update_over_two_draws_equals_one_over_their_kept_rows(how):
    """Dynamic sampling's parts, each a forward and backward of its own, give the step the kept rows' gradient."""
    ids = [[0, 1, 2], [3, 4, 0], [2, 2, 1], [4, 0, 3]]
    mask = [[1.0, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]]
    adv = torch.tensor([0.8, -0.8, 1.1, -1.1])
    toy, update = _trainer({"loss_aggregation": how})
    update([_rollout_draw(ids, mask)], [adv])
    whole = toy.w.detach().clone()
    junk_ids, junk_mask = [[1, 1, 1], [2, 3, 4], [0, 0, 0]], [[1.0, 1, 1], [1, 1, 0], [1, 0, 0]]  # dropped rows
    a = _rollout_draw(ids[:2] + junk_ids[:1], mask[:2] + junk_mask[:1], [True, True, False])  # parts of unequal
    b = _rollout_draw(junk_ids + ids[2:], junk_mask + mask[2:], [False, False, False, True, True])  # sizes
    toy, update = _trainer({"loss_aggregation": how})
    metrics = update([a, b], [torch.cat([adv[:2], torch.zeros(1)]), torch.cat([torch.zeros(3), adv[2:]])])
    assert torch.allclose(toy.w.detach(), whole, rtol=1e-6, atol=1e-7) and not metrics["update_skipped"]


def test_later_passes_divide_by_the_first_passs_log_probs():
    """updates_per_batch=2: the second pass's loss is the surrogate at the once-updated weights against the
    log-probs the rollout had before any update (not against themselves: that ratio would be 1)."""
    ids, mask, adv = [[0, 1, 2], [3, 4, 0]], [[1.0, 1, 1], [1, 1, 0]], torch.tensor([1.0, -1.0])
    toy, update = _trainer({"updates_per_batch": 2, "clip_eps": 0.05})
    draw = _rollout_draw(ids, mask)
    old = toy.token_logprobs(draw.rollout).detach()
    twin = _Toy()  # one SGD step (lr 1, gradient clipped to norm 1) by hand
    loss, _ = grpo_loss(twin.token_logprobs(draw.rollout), old, None, adv, torch.tensor(mask), clip_eps=0.05, beta=0.0)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
    with torch.no_grad():
        twin.w -= twin.w.grad
    second, stats = grpo_loss(twin.token_logprobs(draw.rollout), old, None, adv, torch.tensor(mask), clip_eps=0.05,
                              beta=0.0)
    metrics = update([draw], [adv])
    assert metrics["loss"] == pytest.approx(second.item(), rel=1e-6)
    assert metrics["clip_fraction"] == pytest.approx(stats["clip_fraction"]) and stats["clip_fraction"] > 0
