"""Step 5, Runs: the page and its parts."""
