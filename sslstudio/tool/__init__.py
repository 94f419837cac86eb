"""The exported tool: use a bundle (docs/bundle-format.md) with numpy, pillow and onnxruntime.

Never torch, never ``sslstudio.core``, and PySide6 only inside ``viewer`` when a window is asked
for (tests/tool/test_isolation.py holds this). Entry point: ``sslstudio-tool`` (``__main__``).
"""
