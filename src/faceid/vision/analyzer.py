"""The face pipeline: detect -> 5 landmarks -> aligned chip -> 128-D descriptor."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property

import numpy as np

from faceid.vision.align import face_chips
from faceid.vision.detect import DEFAULT_DETECTOR, create_detector
from faceid.vision.embed import DescriptorEmbedder
from faceid.vision.image import ImageSource, load_image
from faceid.vision.landmarks import ShapePredictorLandmarker
from faceid.vision.types import Detection, Detector, Embedder, Face, Landmarker

log = logging.getLogger(__name__)

CHIP_SIZE = 150
CHIP_PADDING = 0.25
SECOND_OPINIONS = (None, "sface")


class Analyzer:
    """Finds faces and computes their descriptors. Models load on first use.

    ``detector`` is a name ("fast", "mmod", "hog") or any object with the Detector interface;
    ``upsample`` lets MMOD find faces under ~80 px; ``mirror`` averages each descriptor with its
    mirror image's (more accurate, twice the embedding cost); ``device`` picks the ONNX Runtime
    execution provider ("cpu", "cuda", "tensorrt"); ``threads`` caps the threads per model.
    ``second_opinion="sface"`` fuses dlib's descriptor with SFace's (:class:`faceid.vision.sface.FusedEmbedder`,
    256 values, its own ``model_id``; needs `faceid models fetch`).
    """

    def __init__(
        self,
        detector: str | Detector = DEFAULT_DETECTOR,
        *,
        upsample: int = 0,
        mirror: bool = False,
        device: str = "cpu",
        threads: int | None = None,
        min_face_size: float = 0.0,
        landmarker: Landmarker | None = None,
        embedder: Embedder | None = None,
        second_opinion: str | None = None,
    ) -> None:
        if second_opinion not in SECOND_OPINIONS:
            choices = ", ".join(str(c) for c in SECOND_OPINIONS)
            raise ValueError(f"unknown second opinion {second_opinion!r}; choose from {choices}")
        if second_opinion is not None and embedder is not None:
            raise ValueError("give either an embedder or a second opinion, not both")
        self.detector_name = detector if isinstance(detector, str) else getattr(detector, "name", "custom")
        self._detector = None if isinstance(detector, str) else detector
        self.upsample = upsample
        self.mirror = mirror
        self.device = device
        self.threads = threads
        self.min_face_size = min_face_size
        self._landmarker = landmarker
        self._embedder = embedder
        self.second_opinion = second_opinion

    @cached_property
    def detector(self) -> Detector:
        if self._detector is not None:
            return self._detector
        return create_detector(self.detector_name, upsample=self.upsample, device=self.device, threads=self.threads)

    @cached_property
    def landmarker(self) -> Landmarker:
        return self._landmarker or ShapePredictorLandmarker()

    @cached_property
    def embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        if self.second_opinion == "sface":
            from faceid.vision.sface import FusedEmbedder

            return FusedEmbedder(device=self.device, threads=self.threads, mirror=self.mirror)
        return DescriptorEmbedder(device=self.device, threads=self.threads, mirror=self.mirror)

    @property
    def model_id(self) -> str:
        """Names the descriptor model; embeddings with different ids must not be compared."""
        return str(getattr(self.embedder, "model_id", "custom"))

    def with_embedder(self, embedder: Embedder) -> Analyzer:
        """The same pipeline (detector and landmarker shared, not loaded again) describing faces with
        ``embedder``: another model version, say."""
        return Analyzer(
            self.detector,
            upsample=self.upsample,
            mirror=self.mirror,
            device=self.device,
            threads=self.threads,
            min_face_size=self.min_face_size,
            landmarker=self.landmarker,
            embedder=embedder,
        )

    @property
    def pipeline_id(self) -> str:
        """Names what this analyzer computes, for caches of its descriptors: the model and the embedding
        options that change the numbers (mirror averaging). Descriptors of one model_id are comparable
        whatever the pipeline; those of one pipeline_id are identical."""
        mirror = bool(getattr(self.embedder, "mirror", self.mirror))
        return self.model_id + ("+mirror" if mirror else "")

    def detect(self, image: ImageSource) -> list[Detection]:
        rgb = load_image(image)
        found = [d for d in self.detector.detect(rgb) if min(d.width, d.height) >= self.min_face_size]
        return sorted(found, key=lambda d: (-(d.width * d.height), -d.score))

    def analyze(self, image: ImageSource, max_faces: int | None = None) -> list[Face]:
        """Every face in the image, largest first, with landmarks, chip and descriptor."""
        rgb = load_image(image)
        detections = [d for d in self.detector.detect(rgb) if min(d.width, d.height) >= self.min_face_size]
        detections.sort(key=lambda d: (-(d.width * d.height), -d.score))
        if max_faces is not None:
            detections = detections[:max_faces]
        return self.faces_from_detections(rgb, detections)

    def analyze_many(
        self, images: Iterable[ImageSource], max_faces: int | None = None, workers: int | None = None
    ) -> Iterator[list[Face]]:
        """The faces of each image (video frames, a photo folder), in order, several images at a time.

        ``workers`` images are in flight at once (default: one per core), at most twice that many read
        ahead from ``images``, so a stream is never drained. Each model session also has its own threads;
        an analyzer made with ``threads=1`` leaves the cores to the images instead, which on a small CPU is
        the fastest way through a video (bench/RESULTS.md). An image that cannot be read raises when its
        turn comes, as ``analyze`` would.
        """
        workers = workers or _available_cores()
        if workers <= 1:
            for image in images:
                yield self.analyze(image, max_faces)
            return
        self.warm_up()
        with ThreadPoolExecutor(workers, thread_name_prefix="faceid-analyze") as pool:
            pending: deque[Future[list[Face]]] = deque()
            for image in images:
                pending.append(pool.submit(self.analyze, image, max_faces))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def warm_up(self) -> None:
        """Load every model now (they otherwise load on first use), e.g. before serving or sharing threads."""
        self.detector.detect(np.zeros((CHIP_SIZE, CHIP_SIZE, 3), np.uint8))
        self.landmarker.landmarks(np.zeros((CHIP_SIZE, CHIP_SIZE, 3), np.uint8), np.array([20, 20, 120, 120]))
        self.embedder.embed(np.zeros((1, CHIP_SIZE, CHIP_SIZE, 3), np.uint8))

    def faces_from_detections(self, rgb: np.ndarray, detections: list[Detection]) -> list[Face]:
        """Landmarks, chips and descriptors for detections already found in ``rgb``."""
        if not detections:
            return []
        boxes = np.stack([d.box for d in detections])
        batch = getattr(self.landmarker, "landmarks_batch", None)
        landmarks = list(batch(rgb, boxes)) if batch else [self.landmarker.landmarks(rgb, box) for box in boxes]
        chips = face_chips(rgb, landmarks, size=CHIP_SIZE, padding=CHIP_PADDING)
        # An embedder that aligns faces its own way (a second opinion) reads the image and the landmarks too.
        embed_faces = getattr(self.embedder, "embed_faces", None)
        embeddings = embed_faces(rgb, landmarks, chips) if embed_faces else self.embedder.embed(chips)
        return [
            Face(box=d.box.astype(np.float32), score=d.score, landmarks=points, chip=chip, embedding=embedding)
            for d, points, chip, embedding in zip(detections, landmarks, chips, embeddings, strict=True)
        ]

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 aligned chips -> (N, 128) float32 descriptors, batched."""
        return self.embedder.embed(np.asarray(chips))


def photo_analyzer(**options: object) -> Analyzer:
    """The pipeline for photos (enrollment, identify by photo, import, evaluation): the most accurate measured."""
    from faceid.vision.detect import PHOTO_DETECTOR, PHOTO_MIRROR, PHOTO_SECOND_OPINION

    settings: dict[str, object] = {"mirror": PHOTO_MIRROR, **options}
    if "embedder" not in settings:
        settings.setdefault("second_opinion", PHOTO_SECOND_OPINION)
    return Analyzer(str(settings.pop("detector", PHOTO_DETECTOR)), **settings)  # type: ignore[arg-type]


def video_analyzer(**options: object) -> Analyzer:
    """The pipeline for video frames (monitor): the fast one."""
    from faceid.vision.detect import VIDEO_DETECTOR, VIDEO_MIRROR

    settings: dict[str, object] = {"mirror": VIDEO_MIRROR, **options}
    return Analyzer(str(settings.pop("detector", VIDEO_DETECTOR)), **settings)  # type: ignore[arg-type]


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def same_person_threshold(embedding: np.ndarray) -> float:
    """The same-person distance for descriptors like ``embedding``: dlib's 0.6 for its 128 values, 1.0 for
    dlib's fused with SFace's (256 values; faceid.thresholds)."""
    from faceid.thresholds import DLIB_DISTANCE_THRESHOLD, SFACE_FUSED_THRESHOLD

    return SFACE_FUSED_THRESHOLD if np.shape(embedding)[-1] == 256 else DLIB_DISTANCE_THRESHOLD


def same_person(a: Face | np.ndarray, b: Face | np.ndarray) -> bool:
    """Are two faces (or descriptors of one model) the same person, by that model's own threshold?
    One pair of photos; identification against a gallery uses the store's calibrated rule instead."""
    first = a.embedding if isinstance(a, Face) else np.asarray(a)
    second = b.embedding if isinstance(b, Face) else np.asarray(b)
    if np.shape(first) != np.shape(second):
        raise ValueError(
            f"descriptors of different models cannot be compared ({np.shape(first)} vs {np.shape(second)})"
        )
    return float(distance(first, second)) < same_person_threshold(first)


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Euclidean distance between descriptors (dlib's measure; 0.6 is its same-person threshold).

    ``a`` and ``b`` may each be one descriptor (D,) or a stack (N, D); stacks broadcast.
    """
    diff = np.asarray(a, np.float32) - np.asarray(b, np.float32)
    result = np.linalg.norm(diff, axis=-1)
    return float(result) if np.ndim(result) == 0 else result
