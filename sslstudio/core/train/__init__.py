"""The training loop and everything that plans, paces, saves and watches it."""
