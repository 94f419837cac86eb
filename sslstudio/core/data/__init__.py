"""Image data: scanning folders, the decoded cache, batch loading."""
