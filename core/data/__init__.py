"""Samples: synthetic splits, real-data loading through the tasks, JSONL and atomic file writes."""
