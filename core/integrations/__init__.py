"""Use the installed tasks from another trainer: TRL's ``GRPOTrainer``, verl and EasyR1.

Each trainer gets the same two things, in its own layout:

* **data**: a task's samples (synthetic, or read by the task's loader) with their images and a prompt, and
  beside each one a ground truth serialised as JSON that carries everything the reward needs (task name,
  sample id, solution, ``image_size``, the coordinate space the model answers in and, for ``resized``
  coordinates, the size the model sees);
* **a reward**: a function with that trainer's own signature that rebuilds the sample from the JSON and
  calls the task's reward through the registry, plus any custom reward, weighted as ``--reward NAME:W``
  weights it in ``perception-r1 run``.

``perception_r1.integrations.common`` holds what the trainers share; ``.trl``, ``.verl`` and ``.easyr1`` each
import their trainer (if at all) only inside themselves. ``perception-r1 export`` writes a task's data for a
trainer with a ready reward file, and ``perception-r1 score --from trl|verl`` scores what the trainer wrote.
"""
