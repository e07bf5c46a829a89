"""The GRPO math against values computed by hand."""

import math

import pytest
import torch

from perception_r1.train.grpo import (
    aggregate,
    clipped_surrogate,
    group_advantages,
    grpo_loss,
    k3_kl,
    zero_std_fraction,
)


def test_group_advantages_std_normalised_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5])  # two groups of 2
    adv = group_advantages(rewards, group_size=2)
    # group 1: mean 0.5, unbiased std sqrt(0.5) -> +-0.5/0.7071 = +-0.7071; group 2: all equal -> 0
    assert adv.tolist() == pytest.approx([math.sqrt(0.5), -math.sqrt(0.5), 0.0, 0.0], abs=1e-3)


def test_group_advantages_mean_only():
    rewards = torch.tensor([3.0, 1.0, 2.0, 10.0, 10.0, 13.0])
    adv = group_advantages(rewards, group_size=3, scale=False)
    assert adv.tolist() == pytest.approx([1.0, -1.0, 0.0, -1.0, -1.0, 2.0])


def test_group_advantages_rejects_ragged_groups():
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(torch.zeros(4), group_size=3)


def test_zero_std_fraction():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.2, 0.2])
    assert zero_std_fraction(rewards, 2) == pytest.approx(2 / 3)


def test_clipped_surrogate_by_hand():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))  # ratios 1.5, 0.5, 1.1 against old log-prob 0
    old = torch.zeros(1, 3)
    pos = clipped_surrogate(logp, old, torch.tensor([2.0]), clip_eps=0.2)
    # A > 0: min(r*A, clip(r)*A) -> min(3.0, 2.4)=2.4 ; min(1.0, 1.6)=1.0 ; min(2.2, 2.2)=2.2
    assert pos.tolist()[0] == pytest.approx([-2.4, -1.0, -2.2])
    neg = clipped_surrogate(logp, old, torch.tensor([-1.0]), clip_eps=0.2)
    # A < 0: min(-1.5, -1.2) = -1.5 ; min(-0.5, -0.8) = -0.8 ; -1.1
    assert neg.tolist()[0] == pytest.approx([1.5, 0.8, 1.1])


def test_k3_kl_by_hand_and_nonnegative():
    logp = torch.tensor([[math.log(0.5), math.log(0.25)]])
    ref = torch.tensor([[math.log(0.25), math.log(0.25)]])
    kl = k3_kl(logp, ref)
    # delta = ref - logp = log(0.5) -> exp = 0.5 ; 0.5 - log 0.5 - 1 = 0.19315 ; equal -> 0
    assert kl.tolist()[0] == pytest.approx([0.5 - math.log(0.5) - 1.0, 0.0])
    rand = k3_kl(torch.randn(8, 16), torch.randn(8, 16))
    assert (rand >= -1e-7).all()


def test_aggregations_by_hand():
    per_token = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    assert aggregate(per_token, mask, "grpo").item() == pytest.approx((2.0 + 4.0) / 2)
    assert aggregate(per_token, mask, "dapo").item() == pytest.approx(10.0 / 4)
    assert aggregate(per_token, mask, "dr_grpo", max_tokens=5).item() == pytest.approx(10.0 / (2 * 5))
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        aggregate(per_token, mask, "nope")


def test_grpo_loss_on_policy_gradient_pushes_up_good_rollouts():
    # On-policy (old == current): loss gradient must raise log-prob of positive-advantage tokens.
    logits = torch.zeros(2, 3, requires_grad=True)
    logp = torch.log_softmax(logits, dim=-1)[:, :1].expand(2, 2)  # (N=2, T=2)
    adv = torch.tensor([1.0, -1.0])
    loss, stats = grpo_loss(logp, logp.detach(), logp.detach(), adv, torch.ones(2, 2), beta=0.04)
    loss.backward()
    assert logits.grad[0, 0] < 0 < logits.grad[1, 0]  # gradient descent increases row 0's token, lowers row 1's
    assert stats["kl"] == pytest.approx(0.0) and stats["clip_fraction"] == 0.0
