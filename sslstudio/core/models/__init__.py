"""Backbones (a registry) and heads (block lists)."""
