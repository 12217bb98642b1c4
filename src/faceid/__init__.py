"""faceid: self-hosted face identity.

>>> import faceid
>>> faces = faceid.analyze("photo.jpg")
>>> faceid.same_person(faces[0], other)   # by the descriptor's own threshold
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Analyzer", "Face", "__version__", "analyze", "distance", "load_image", "same_person"]

if TYPE_CHECKING:
    from faceid.vision.analyzer import Analyzer, distance, same_person
    from faceid.vision.image import ImageSource, load_image
    from faceid.vision.types import Face

_default_analyzer: Analyzer | None = None


def analyze(image: ImageSource) -> list[Face]:
    """Every face in a photo, with the photo pipeline (created on first call): dlib's descriptor fused with
    SFace's, 256 values (compare with :func:`same_person`). For video frames, use an ``Analyzer()`` (the fast
    pipeline, dlib's 128 values) and its ``analyze_many``."""
    global _default_analyzer
    if _default_analyzer is None:
        from faceid.vision.analyzer import photo_analyzer

        _default_analyzer = photo_analyzer()
    return _default_analyzer.analyze(image)


def __getattr__(name: str) -> Any:
    # Importing lazily keeps `import faceid` quick and free of onnxruntime until it is needed.
    if name in ("Analyzer", "distance", "same_person"):
        from faceid.vision import analyzer

        return getattr(analyzer, name)
    if name == "Face":
        from faceid.vision.types import Face

        return Face
    if name == "load_image":
        from faceid.vision.image import load_image

        return load_image
    raise AttributeError(f"module 'faceid' has no attribute {name!r}")
