"""Training engine (accelerate), checkpoints and batched evaluation runs."""
