"""Face detectors, found by name. Each implements :class:`faceid.vision.types.Detector`."""

from __future__ import annotations

from collections.abc import Callable

from faceid.vision.types import Detector

# "fast" is BlazeFace (video, small CPUs); "mmod" is dlib's CNN detector (exact port, slower);
# "hog" is dlib's HOG detector (needs dlib-bin; frontal faces only).
DEFAULT_DETECTOR = "fast"


def _fast(upsample: int, device: str, threads: int | None) -> Detector:
    from faceid.vision.blazeface import BlazeFaceDetector

    return BlazeFaceDetector(device=device, threads=threads)


def _mmod(upsample: int, device: str, threads: int | None) -> Detector:
    from faceid.vision.mmod import MmodDetector

    return MmodDetector(upsample=upsample, device=device, threads=threads)


def _hog(upsample: int, device: str, threads: int | None) -> Detector:
    from faceid.vision.hog import HogDetector

    return HogDetector(upsample=max(upsample, 1))


DETECTORS: dict[str, Callable[[int, str, int | None], Detector]] = {"fast": _fast, "mmod": _mmod, "hog": _hog}


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
