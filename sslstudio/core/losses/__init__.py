"""One loss per file; each cites its paper."""
