"""The desktop window: thin Qt views over :mod:`sslstudio.core`, fed by the trainer's events.

Nothing here is imported by the core, and importing :mod:`sslstudio.gui.app` does not import
torch: the window appears first, torch loads in the background (see ``catalog.py``).
"""

from sslstudio.gui import qt_compat

# before any widget exists: some PySide6 builds would otherwise abort the process after a
# few tens of thousands of Qt calls on Python 3.11 (see qt_compat)
qt_compat.apply()
