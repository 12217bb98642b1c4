"""faceid: self-hosted face identity.

>>> import faceid
>>> faces = faceid.analyze("photo.jpg")
>>> faceid.distance(faces[0].embedding, other.embedding) < 0.6   # same person?
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Analyzer", "Face", "__version__", "analyze", "distance", "load_image"]

if TYPE_CHECKING:
    from faceid.vision.analyzer import Analyzer, distance
    from faceid.vision.image import ImageSource, load_image
    from faceid.vision.types import Face

_default_analyzer: Analyzer | None = None


def analyze(image: ImageSource) -> list[Face]:
    """Every face in a photo, with the photo pipeline (created on first call). For video frames, use an
    ``Analyzer()`` (the fast pipeline) and its ``analyze_many``."""
    global _default_analyzer
    if _default_analyzer is None:
        from faceid.vision.analyzer import photo_analyzer

        _default_analyzer = photo_analyzer()
    return _default_analyzer.analyze(image)


def __getattr__(name: str) -> Any:
    # Importing lazily keeps `import faceid` quick and free of onnxruntime until it is needed.
    if name in ("Analyzer", "distance"):
        from faceid.vision import analyzer

        return getattr(analyzer, name)
    if name == "Face":
        from faceid.vision.types import Face

        return Face
    if name == "load_image":
        from faceid.vision.image import load_image

        return load_image
    raise AttributeError(f"module 'faceid' has no attribute {name!r}")
