"""Built-in task plugins (grounding, counting, OCR, detection) and the helpers plugins share:
``geometry`` (the one place that converts and compares boxes), ``matching`` (Hungarian assignment) and
``rows`` (reading data files for a task's ``load``, bad rows named file:row)."""
