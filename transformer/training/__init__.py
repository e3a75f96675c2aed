"""Training: losses, the optimizer recipe, checkpoints, several machines, and the loop."""
