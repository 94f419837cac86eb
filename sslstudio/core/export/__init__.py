"""Bundles for use outside the studio: weights, ONNX, index, manifest."""
