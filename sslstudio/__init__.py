"""SSL Studio: self-supervised pretraining on your own images, in a window or headless.

Importing this package is cheap on purpose (no torch, no Qt): the window must appear
before torch has finished importing.
"""

__version__ = "0.1.0"
