"""Face detectors, found by name. Each implements :class:`faceid.vision.types.Detector`."""

from __future__ import annotations

from collections.abc import Callable

from faceid.vision.types import Detector

# "fast" is BlazeFace (video, small CPUs); "mmod" is dlib's CNN detector (exact port, slower); "photo" is
# BlazeFace's faces with MMOD's boxes (the most accurate, a cost per face: faceid.vision.refine);
# "hog" is dlib's HOG detector (needs dlib-bin; frontal faces only).
DEFAULT_DETECTOR = "fast"
# The pipelines by kind of input: photos (enrollment, identify by photo, import, evaluation) take the most
# accurate path measured, video the fast one (bench/RESULTS.md, "Photo pipeline").
PHOTO_DETECTOR = "photo"
PHOTO_MIRROR = True
# Photos are described by dlib's descriptor fused with SFace's (faceid.vision.sface): on faces-dev it halves the
# pair errors (99.11% -> 99.53%) and lifts DIR at FPIR 1% from 86% to 97% at 50 people, for ~3x the cost per
# face (bench/RESULTS.md, "A second opinion" and "Decisions out of the box"). None: dlib's descriptor alone.
PHOTO_SECOND_OPINION: str | None = "sface"
VIDEO_DETECTOR = "fast"
VIDEO_MIRROR = False


def _fast(upsample: int, device: str, threads: int | None) -> Detector:
    from faceid.vision.blazeface import BlazeFaceDetector

    return BlazeFaceDetector(device=device, threads=threads)


def _mmod(upsample: int, device: str, threads: int | None) -> Detector:
    from faceid.vision.mmod import MmodDetector

    return MmodDetector(upsample=upsample, device=device, threads=threads)


def _photo(upsample: int, device: str, threads: int | None) -> Detector:
    from faceid.vision.refine import RefinedDetector

    return RefinedDetector(device=device, threads=threads)


def _hog(upsample: int, device: str, threads: int | None) -> Detector:
    from faceid.vision.hog import HogDetector

    return HogDetector(upsample=max(upsample, 1))


DETECTORS: dict[str, Callable[[int, str, int | None], Detector]] = {
    "fast": _fast,
    "photo": _photo,
    "mmod": _mmod,
    "hog": _hog,
}


def create_detector(name: str, upsample: int = 0, device: str = "cpu", threads: int | None = None) -> Detector:
    factory = DETECTORS.get(name)
    if factory is None:
        raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
    return factory(upsample, device, threads)


def detector_signature(detector: Detector) -> str:
    """A string naming a detector and its settings, for keying cached results."""
    settings = {
        key: value
        for key, value in sorted(vars(detector).items())
        if not key.startswith("_")
        and isinstance(value, str | int | float | bool | tuple | dict)
        and key not in ("device", "threads")
    }
    return f"{detector.name}{settings}"
