"""Augmentations: per-image random parameters, batched, one path for preview and training."""
