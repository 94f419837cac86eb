"""Reusable widgets: generated config forms, throttled plots, the thumbnail grid."""
