"""The desktop window: thin Qt views over :mod:`sslstudio.core`, fed by the trainer's events.

Nothing here is imported by the core, and importing :mod:`sslstudio.gui.app` does not import
torch: the window appears first, torch loads in the background (see ``catalog.py``).
"""
