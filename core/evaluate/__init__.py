"""Evaluation: greedy evaluation of a policy, offline scoring, the HTML report, perceptual perplexity."""
