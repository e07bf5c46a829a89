"""The embedded base's recipe: how the shipped tiny model was taught to see (vision warm-up, dense targets,
the one-command base build). A room above ``train/``: it reuses the SFT loss and the optimiser loop."""
