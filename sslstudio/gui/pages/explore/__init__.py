"""Step 6, Explore: the page and its parts."""
