"""Built-in task plugins (grounding, counting, OCR, detection) and the helpers plugins share:
``geometry`` (the one place that converts and compares boxes) and ``matching`` (Hungarian assignment)."""
