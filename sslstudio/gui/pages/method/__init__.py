"""Step 3, Method: the page and its parts."""
