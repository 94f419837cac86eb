"""Step 1, Data: the page and its parts."""
