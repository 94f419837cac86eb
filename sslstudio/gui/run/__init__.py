"""The bridge between the window and the engine: workers on QThreads, one run at a time."""
