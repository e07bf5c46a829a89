"""Built-in task plugins (grounding, counting, OCR, detection) and the helpers plugins share:
``geometry`` (the one place that converts and compares boxes), ``matching`` (Hungarian assignment),
``answers`` (the answer grammar: bounded answer body, fences, JSON, numbers, the Qwen2-VL number grid)
``text_metrics`` (edit distance and the OCR metrics) and ``rows`` (reading data files for a task's ``load``, bad
rows named file:row). A task module imports helpers, never another task."""
