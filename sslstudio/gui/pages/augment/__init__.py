"""Step 2, Augment: the page and its parts."""
