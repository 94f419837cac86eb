"""Step 4, Train: the page and its parts."""
