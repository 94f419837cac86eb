"""One page per step of the workflow: Data, Augment, Method, Train."""
