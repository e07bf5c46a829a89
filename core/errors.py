"""Errors a user can fix: the CLI prints them as one line on stderr and exits with code 2.

``UserError`` is defined with the contract (the bottom layer, which raises it); this is its public home."""

from perception_r1.contract import RewardError, UserError

__all__ = ["RewardError", "UserError"]
