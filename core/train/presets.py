"""Named RL recipes (``--set recipe=NAME``): the published settings as run-config keys.

A recipe fills the keys the user did not set (a key given in the config file or by a flag wins), and the
keys it fills count as the user's, so a task's small-model settings do not override them. Each cites its
source; what a recipe leaves out keeps its usual default (the learning rate, for one, follows the model's
size: 1e-6 from 100M parameters is the Perception-R1 paper's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # Perception-R1 (arXiv 2504.07954, section 4 / appendix): GRPO with G=8, KL 0.04, clip 0.2, temperature
    # 1.0, advantages scaled by the group's std, per-sequence token means.
    "paper": {"group_size": 8, "beta": 0.04, "clip_eps": 0.2, "clip_eps_low": None, "clip_eps_high": None,
              "temperature": 1.0, "loss_aggregation": "grpo", "scale_rewards": "group",
              "importance_sampling_level": "token"},
    # DAPO (arXiv 2503.14476): clip-higher (0.2 / 0.28), token-level loss, no KL term, dynamic sampling
    # (groups whose rewards are all equal are dropped and more are drawn), overlong filtering (answers cut
    # off at the token budget get no loss).
    "dapo": {"clip_eps_low": 0.2, "clip_eps_high": 0.28, "loss_aggregation": "dapo", "beta": 0.0,
             "dynamic_sampling": True, "mask_truncated_completions": True, "scale_rewards": "group",
             "importance_sampling_level": "token"},
    # Dr. GRPO (arXiv 2503.20783, "Understanding R1-Zero-Like Training"): no division by the group's std
    # and a constant normaliser (sum over tokens / (N x max_new_tokens)): neither question difficulty nor
    # answer length biases the gradient.
    "dr_grpo": {"scale_rewards": "none", "loss_aggregation": "dr_grpo", "importance_sampling_level": "token"},
    # GSPO (arXiv 2507.18071): one importance ratio per sequence (the geometric mean of its tokens'),
    # clipped to [1 - 3e-4, 1 + 4e-4], per-sequence loss, no KL term (TRL's GSPO example uses the same).
    "gspo": {"importance_sampling_level": "sequence", "clip_eps_low": 3e-4, "clip_eps_high": 4e-4,
             "loss_aggregation": "grpo", "beta": 0.0},
}


def recipe_keys(name: str | None) -> dict[str, Any]:
    """The keys recipe ``name`` sets ({} for None); an unknown name is a ValueError naming the known ones."""
    if name is None:
        return {}
    if name not in RECIPES:
        raise ValueError(f"recipe '{name}' is not one of {', '.join(RECIPES)}")
    return dict(RECIPES[name])


def apply_recipe(config: dict[str, Any], given: set[str]) -> list[str]:
    """Fill ``config`` from its ``recipe`` for every key not in ``given``; returns the keys filled."""
    keys = recipe_keys(config.get("recipe"))
    filled = [k for k in keys if k not in given]
    config.update({k: keys[k] for k in filled})
    return filled


def recipe_name(from_file: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None) -> str | None:
    """The recipe a config file and the flags ask for (the flags win)."""
    return (overrides or {}).get("recipe") or (from_file or {}).get("recipe")
