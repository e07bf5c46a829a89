"""What the console says about a run's learning signal, as pure functions of ``metrics.jsonl`` rows.

GRPO learns only from groups whose rollouts got different rewards. When most groups are flat, or updates are
skipped because no group anywhere differed, ``metrics.jsonl`` records it (``zero_std_groups``,
``update_skipped``), but a user watching the console saw only "reward 0.000 kl 0.0000"; these lines say it
there, with what to try.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: share of flat groups over the recent steps above which the console warns ("most groups")
FLAT_WARNING = 0.5


def step_status(metrics: Mapping[str, Any]) -> str:
    """The per-step console line's numbers: reward, KL, share of flat groups, dynamic sampling's groups kept
    and, when it happened, that the update was skipped."""
    parts = [f"reward {metrics['reward']:.3f}", f"kl {metrics['kl']:.4f}",
             f"flat groups {metrics.get('zero_std_groups', 0.0):.0%}"]
    if "groups_kept" in metrics:
        parts.append(f"kept {metrics['groups_kept']}/{metrics['groups_drawn']} groups")
    if metrics.get("update_skipped"):
        parts.append("update skipped")
    return "  ".join(parts)


def signal_warning(recent: Sequence[Mapping[str, Any]], config: Mapping[str, Any], every: int) -> str | None:
    """A warning when, over the last ``every`` steps, updates were skipped or most groups had no reward spread;
    None otherwise. Said at most once per ``every`` steps (when the latest step is a multiple of it)."""
    if len(recent) < every or recent[-1]["step"] % every:
        return None
    window = recent[-every:]
    skipped = sum(bool(m.get("update_skipped")) for m in window)
    flat = sum(m.get("zero_std_groups", 0.0) for m in window) / len(window)
    if not skipped and flat <= FLAT_WARNING:
        return None
    first, last = window[0]["step"], window[-1]["step"]
    what = []
    if skipped:
        what.append(f"{skipped} of {len(window)} updates skipped (no group had a reward difference)")
    what.append(f"{flat:.0%} of groups had all-equal rewards")
    return (f"warning: steps {first}-{last}: {', '.join(what)}; GRPO learns only from groups whose answers score "
            f"differently. Try: {'; '.join(remedies(config))}; and check in completions.jsonl that answers parse")


def remedies(config: Mapping[str, Any]) -> list[str]:
    """What to try for a weak signal, given what the run already does."""
    tries = []
    if not config.get("dynamic_sampling"):
        tries.append("--set dynamic_sampling=true (draws more prompts until groups differ)")
    elif config.get("dynamic_sampling_max_tries", 0) < 16:
        tries.append(f"more draws per step (--set dynamic_sampling_max_tries={2 * config['dynamic_sampling_max_tries']})")
    tries.append(f"a higher temperature for more varied answers (now {config.get('temperature', 1.0):g})")
    tries.append("a reward the model can already earn part of, e.g. a format reward (--reward NAME:WEIGHT)")
    return tries
