"""The headless engine: data, augmentations, models, methods, trainer. Never imports Qt."""
