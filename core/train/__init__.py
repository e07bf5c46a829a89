"""Training: the GRPO maths, the trainer and its step, rewards, run configs, checkpoints, SFT, launching."""
