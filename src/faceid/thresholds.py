"""Every tuned number that decides something, named in one place (with where it comes from)."""

from __future__ import annotations

# dlib's decision threshold for its descriptor, stored in the model file (loss_metric_2).
DLIB_DISTANCE_THRESHOLD = 0.6

# Image decoding: refuse images over this many pixels (decompression bombs). 64 MP covers any camera.
MAX_IMAGE_PIXELS = 64_000_000
