"""Image decoding for every part of the studio and the exported tool: numpy + Pillow only."""
