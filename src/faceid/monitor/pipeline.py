"""The monitor's loop: frames -> faces -> tracks -> a few embedded frames per track -> one event per track.

Three threads share the work, so that two cores are both busy: the reader decodes (PyAV / OpenCV, outside
the GIL), the main loop detects and tracks on every frame it is given (or every other one, see
``detect_fps``) and scores each face's quality, and one worker computes landmarks, the aligned chip and the
descriptor for the frames chosen, then asks the recogniser. The descriptor costs more than the detector,
so it runs on a handful of frames per track (the first good one once the track is confirmed, then the best
one of every ``embed_interval`` seconds, at most ``max_embeddings``): that is what keeps the monitor faster
than real time on a small CPU.

When a track ends (no detection for ``MONITOR_TRACK_MAX_GAP_SECONDS``, or the source ended) the track's
frames vote (:func:`faceid.monitor.recognize.vote`) and one event is emitted to every sink, with the best
face of the winning label, its frame, and a key that a re-run reproduces.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import numpy as np

from faceid.models.runtime import one_blas_thread
from faceid.monitor.events import MonitorEvent, encode_jpeg, face_crop, idempotency_key
from faceid.monitor.quality import Quality, assess
from faceid.monitor.recognize import (
    FrameDecision,
    Recognizer,
    Sample,
    Verdict,
    template_verdict,
    track_template,
    vote,
)
from faceid.monitor.sources import Frame, Source
from faceid.monitor.tracker import CutDetector, Track, Tracker
from faceid.thresholds import (
    MONITOR_CUT_THRESHOLD,
    MONITOR_DECODER_SHRINK_FACTOR,
    MONITOR_DETECT_FPS,
    MONITOR_EMBED_INTERVAL_SECONDS,
    MONITOR_EMBED_MIN_QUALITY,
    MONITOR_MAX_EMBEDDINGS_PER_TRACK,
    MONITOR_MIN_FACE_PX,
    MONITOR_NAME_MIN_QUALITY,
)
from faceid.vision.tiles import MAX_TILES, detect_in_tiles
from faceid.vision.types import Detection, Detector

log = logging.getLogger(__name__)

UNKNOWN_POLICIES = ("keep", "no-snapshot", "drop")
LIVE_QUEUE = 2  # frames buffered from a live source: older ones are dropped, the monitor shows the present
FILE_QUEUE = 8
STATUS_LOG_SECONDS = 60.0  # a live monitor says how it keeps up this often (INFO)


class EventSink(Protocol):
    def emit(self, event: MonitorEvent) -> None: ...


class FrameOutput(Protocol):
    """Something that takes annotated frames: the output video (every frame), the live preview (while watched)."""

    def wants(self, frame: Frame) -> bool: ...

    def write(self, frame: Frame, annotated: np.ndarray) -> None: ...


@dataclass
class PipelineOptions:
    """How the loop detects, tracks, embeds and reports: what a caller tunes (``faceid monitor``'s options).
    The agent adds the camera to make :class:`MonitorOptions`."""

    detect_fps: float = MONITOR_DETECT_FPS  # detector runs per second of video; 0: every frame
    embed_interval: float = MONITOR_EMBED_INTERVAL_SECONDS
    max_embeddings: int = MONITOR_MAX_EMBEDDINGS_PER_TRACK
    min_face_px: float = MONITOR_MIN_FACE_PX
    min_quality: float = MONITOR_EMBED_MIN_QUALITY
    unknown: str = "keep"  # keep (with the images), no-snapshot (the event only), drop (no event)
    realtime: bool = False  # pace a file at its frame rate, as if it were a camera
    max_seconds: float | None = None  # stop after this much media time
    cut_threshold: float = MONITOR_CUT_THRESHOLD  # 0: never end tracks at a change of shot
    # The detector also looks at N x N overlapping tiles of each frame (small faces in big frames; N^2 + 1
    # detector runs); 1: the whole frame only.
    detect_tiles: int = 1

    def __post_init__(self) -> None:
        if self.unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown-face policy must be one of {', '.join(UNKNOWN_POLICIES)}")
        if not 1 <= self.detect_tiles <= MAX_TILES:
            raise ValueError(f"detect tiles must be 1 to {MAX_TILES} (N x N tiles)")


@dataclass(kw_only=True)
class MonitorOptions(PipelineOptions):
    """The pipeline's options for one camera."""

    camera: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.camera or len(self.camera) > 200:
            raise ValueError("the camera id must be 1-200 characters")

    @classmethod
    def for_camera(cls, camera: str, options: PipelineOptions | None = None) -> MonitorOptions:
        base = options if options is not None else PipelineOptions()
        return cls(camera=camera, **{f.name: getattr(base, f.name) for f in fields(PipelineOptions)})


@dataclass
class MonitorStats:
    frames: int = 0
    detected_frames: int = 0
    detections: int = 0
    tracks: int = 0
    tracks_without_face: int = 0  # confirmed tracks with no frame good enough to embed
    embeddings: int = 0
    events: int = 0
    known: int = 0
    unknown: int = 0
    dropped_frames: int = 0
    cuts: int = 0
    reconnects: int = 0
    media_seconds: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of the whole process, every thread (models loaded before)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        return self.media_seconds / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in vars(self).items()},
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "media_seconds": round(self.media_seconds, 3),
            "fps": round(self.fps, 2),
            "realtime_factor": round(self.realtime_factor, 3),
        }


@dataclass
class _Candidate:
    quality: Quality
    detection: Detection
    frame: Frame


@dataclass
class _TrackState:
    track: Track
    detections: int = 0
    best_size: float = 0.0
    slot_start: float | None = None
    slot_best: _Candidate | None = None
    submitted: int = 0
    pending: list[tuple[Future[FrameDecision], _Candidate]] = field(default_factory=list)
    samples: list[tuple[Sample, _Candidate | None]] = field(default_factory=list)
    verdict: Verdict | None = None


def detect_in_frame(detector: Detector, frame: Frame, tiles: int = 1) -> list[Detection]:
    """The faces in ``frame``, in its pixels; with ``tiles`` > 1, in its tiles too (faceid.vision.tiles).

    A big decoded frame (MONITOR_DECODER_SHRINK_FACTOR) is shrunk by the decoder to what the detector looks at
    anyway, so that only the frames with a face get converted to RGB whole (for their quality and descriptors).
    """
    if tiles > 1:
        return detect_in_tiles(detector, frame.rgb, tiles)
    size = detector.input_size
    longest = max(frame.width, frame.height)
    if size is None or not frame.shrinks_cheaply or longest < MONITOR_DECODER_SHRINK_FACTOR * size:
        return list(detector.detect(frame.rgb))
    width = max(1, round(frame.width * size / longest))
    height = max(1, round(frame.height * size / longest))
    found = detector.detect(frame.shrunk(width, height))
    return [detection.scaled(frame.width / width, frame.height / height) for detection in found]


class _Reader:
    """Reads a source on its own thread into a small queue (live: dropping the oldest frame when full)."""

    _END = object()

    def __init__(self, source: Source, realtime: bool) -> None:
        self.source = source
        self.live = source.live
        self.realtime = realtime and not source.live
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=LIVE_QUEUE if self.live else FILE_QUEUE)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faceid-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            for frame in self.source.frames():
                if self._stop.is_set():
                    break
                if self.realtime:
                    self._stop.wait(max(0.0, started + frame.time - time.monotonic()))
                self._put(frame)
        except BaseException as error:
            self._error = error
        finally:
            self._put(self._END, always=True)

    def _put(self, item: Any, always: bool = False) -> None:
        while not self._stop.is_set() or always:
            try:
                if self.live and item is not self._END:
                    self._queue.put_nowait(item)
                else:
                    self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.live and item is not self._END:
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()
                        self.dropped += 1
                elif always:
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()  # the consumer has gone: make room for the end marker

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is self._END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def stop(self) -> None:
        self._stop.set()
        self.source.close()
        self._thread.join(timeout=10)


class Monitor:
    """Runs the loop over one source until it ends (a file) or :meth:`stop` is called (a live source).

    ``recognizer`` is called for the recogniser to use for each frame (connected mode swaps galleries
    while running). Every sink's ``emit`` is called for each event, in order; an event counts as emitted
    once the sinks returned, so a sink that must not lose events commits before returning.
    """

    def __init__(
        self,
        source: Source,
        analyzer: Any,
        recognizer: Callable[[], Recognizer],
        sinks: Sequence[EventSink],
        options: MonitorOptions,
        outputs: Sequence[FrameOutput] = (),
    ) -> None:
        self.source = source
        self.analyzer = analyzer
        self.recognizer = recognizer
        self.sinks = list(sinks)
        self.options = options
        self.outputs = list(outputs)
        self.tracker = Tracker()
        self.cuts = CutDetector(options.cut_threshold)
        self.stats = MonitorStats()
        self._states: dict[int, _TrackState] = {}
        self._closing: list[_TrackState] = []  # ended tracks waiting for their descriptors
        self._stop = threading.Event()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceid-embed")
        self._last_detect_time: float | None = None
        self._detect_every = 1

    def stop(self) -> None:
        """Finish soon: the current frame, then every open track's event."""
        self._stop.set()

    # -- the loop ------------------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load every model now (a first frame would otherwise wait for them, and timing would count them)."""
        blank = np.zeros((64, 64, 3), np.uint8)
        self.analyzer.detector.detect(blank)
        box = np.array([16, 16, 48, 48], np.float32)
        self.analyzer.faces_from_detections(blank, [Detection(box, 1.0)])

    def run(self) -> MonitorStats:
        with one_blas_thread():
            return self._run()

    def _run(self) -> MonitorStats:
        self.warm_up()
        fps = self.source.fps or 30.0
        if self.options.detect_fps > 0 and not self.source.live:
            self._detect_every = max(1, round(fps / self.options.detect_fps))
        reader = _Reader(self.source, self.options.realtime)
        started = time.perf_counter()
        cpu_started = time.process_time()
        last: Frame | None = None
        next_status = time.monotonic() + STATUS_LOG_SECONDS
        try:
            for frame in reader:
                last = frame
                self._step(frame)
                if self.source.live and time.monotonic() >= next_status:
                    next_status += STATUS_LOG_SECONDS
                    elapsed = time.perf_counter() - started
                    log.info(
                        "%d frames (%.1f fps), %d dropped, %d events, %d reconnection(s)",
                        self.stats.frames,
                        self.stats.frames / max(elapsed, 1e-9),
                        reader.dropped,
                        self.stats.events,
                        int(getattr(self.source, "reconnects", 0)),
                    )
                if self._stop.is_set():
                    break
                if self.options.max_seconds is not None and frame.time >= self.options.max_seconds:
                    break
        finally:
            reader.stop()
            try:
                for track in self.tracker.finish():
                    self._finish(track)
                self._close_ready(wait=True)
            finally:
                self._worker.shutdown(wait=True)
                self.stats.seconds = time.perf_counter() - started
                self.stats.cpu_seconds = time.process_time() - cpu_started
                self.stats.dropped_frames = reader.dropped
                self.stats.reconnects = int(getattr(self.source, "reconnects", 0))
                if last is not None:
                    self.stats.media_seconds = last.time + 1.0 / fps
        return self.stats

    def _should_detect(self, frame: Frame) -> bool:
        if self.source.live:
            period = 1.0 / self.options.detect_fps if self.options.detect_fps > 0 else 0.0
            if self._last_detect_time is not None and frame.time - self._last_detect_time < 0.9 * period:
                return False
            self._last_detect_time = frame.time
            return True
        return frame.index % self._detect_every == 0

    def _step(self, frame: Frame) -> None:
        self.stats.frames += 1
        cut = self.cuts.is_cut(frame.grid(*self.cuts.GRID))
        if cut:
            self.stats.cuts += 1
            self._collect()
            for track in self.tracker.finish():
                self._finish(track)
            self._states.clear()
        detections: list[Detection] | None = None
        if self._should_detect(frame) or cut:  # a new shot: find its faces at once
            detections = detect_in_frame(self.analyzer.detector, frame, self.options.detect_tiles)
            self.stats.detected_frames += 1
            self.stats.detections += len(detections)
        alive, ended = self.tracker.update(frame.time, frame.wall, frame.index, detections)
        for track in alive:
            state = self._states.get(track.id)
            if state is None:
                state = self._states[track.id] = _TrackState(track)
            if track.detection is not None:
                self._observe(state, frame, track.detection)
        self._collect()
        for track in ended:
            self._finish(track)
        self._close_ready()
        live_ids = {t.id for t in alive}
        for track_id in [i for i in self._states if i not in live_ids]:
            del self._states[track_id]  # tentative tracks that never confirmed
        takers = [output for output in self.outputs if output.wants(frame)]
        if takers:  # drawing costs a copy of the frame: only when someone takes it
            annotated = self._annotate(frame, alive)
            for output in takers:
                output.write(frame, annotated)

    # -- choosing frames to embed ------------------------------------------------------------------------

    def _observe(self, state: _TrackState, frame: Frame, detection: Detection) -> None:
        state.detections += 1
        quality = assess(frame.rgb, detection)
        state.best_size = max(state.best_size, quality.size)
        if quality.size < self.options.min_face_px or quality.score < self.options.min_quality:
            return
        candidate = _Candidate(quality, detection, frame)
        if state.slot_best is None or quality.score > state.slot_best.quality.score:
            state.slot_best = candidate
        if state.slot_start is None:
            state.slot_start = frame.time
        if state.submitted >= self.options.max_embeddings or not state.track.confirmed:
            return
        # The first good frame of a confirmed track is embedded at once (an early name for the preview);
        # after that, the best frame of each slot.
        if state.submitted == 0 or frame.time - state.slot_start >= self.options.embed_interval:
            self._submit(state, state.slot_best)
            state.slot_best = None
            state.slot_start = frame.time

    def _submit(self, state: _TrackState, candidate: _Candidate) -> None:
        state.submitted += 1
        self.stats.embeddings += 1
        future = self._worker.submit(self._embed, candidate)
        state.pending.append((future, candidate))

    def _embed(self, candidate: _Candidate) -> FrameDecision:
        recognizer = self.recognizer()
        identify_face = getattr(recognizer, "identify_face", None)
        # The recogniser describes faces itself when it has its own model (it follows model versions).
        if identify_face is not None and getattr(recognizer, "analyzer", "own") is not None:
            decision: FrameDecision = identify_face(candidate.frame.rgb, candidate.detection)
            return decision
        faces = self.analyzer.faces_from_detections(candidate.frame.rgb, [candidate.detection])
        embedding = np.asarray(faces[0].embedding, np.float32)
        return replace(recognizer.identify(embedding), embedding=embedding)

    def _collect(self, state: _TrackState | None = None, wait: bool = False) -> None:
        """Move finished embeddings into their tracks' samples (all tracks, or one, waiting for it)."""
        for current in [state] if state is not None else list(self._states.values()):
            still: list[tuple[Future[FrameDecision], _Candidate]] = []
            changed = False
            for future, candidate in current.pending:
                if not wait and not future.done():
                    still.append((future, candidate))
                    continue
                try:
                    decision = future.result()
                except Exception:
                    log.exception("embedding a face of track %d failed", current.track.id)
                    continue
                sample = Sample(candidate.frame.time, candidate.frame.index, candidate.quality.score, decision)
                current.samples.append((sample, candidate))
                changed = True
            current.pending = still
            if changed:
                current.verdict = vote([s for s, _ in current.samples])
                self._keep_best_frames(current)

    @staticmethod
    def _keep_best_frames(state: _TrackState) -> None:
        """Keep the frame of the best sample of each label only: a long track would otherwise hold
        ``max_embeddings`` full frames in memory."""
        best: dict[int | None, int] = {}
        for i, (sample, candidate) in enumerate(state.samples):
            if candidate is None:
                continue
            label = sample.decision.person_id if sample.quality >= MONITOR_NAME_MIN_QUALITY else None
            j = best.get(label)
            if j is None or sample.quality > state.samples[j][0].quality:
                best[label] = i
        keep = set(best.values())
        state.samples = [(s, c if i in keep else None) for i, (s, c) in enumerate(state.samples)]

    # -- ending a track -----------------------------------------------------------------------------------

    def _finish(self, track: Track) -> None:
        state = self._states.pop(track.id, None)
        if state is None:
            return
        self.stats.tracks += 1
        if state.slot_best is not None and state.submitted < self.options.max_embeddings:
            best_sent = max((c.quality.score for _, c in state.pending), default=0.0)
            best_done = max((s.quality for s, _ in state.samples), default=0.0)
            if state.submitted == 0 or state.slot_best.quality.score > max(best_sent, best_done):
                self._submit(state, state.slot_best)
        state.slot_best = None
        self._closing.append(state)

    def _close_ready(self, wait: bool = False) -> None:
        """Decide and report ended tracks, in the order they ended, each once its descriptors are done (all of
        them, waiting, when ``wait``). The loop goes on with the next frames meanwhile: waiting for the
        descriptor worker at every track's end left a core idle (the 640x360 clip: 2.05 -> 1.85 s, RESULTS)."""
        while self._closing and (wait or all(future.done() for future, _ in self._closing[0].pending)):
            state = self._closing.pop(0)
            self._collect(state, wait=True)
            self._report(state)

    def _report(self, state: _TrackState) -> None:
        track = state.track
        verdict = self._decide(state)
        if verdict is None:
            self.stats.tracks_without_face += 1
            log.debug(
                "track %d (%d detections, largest face %.0f px): no face good enough to recognise",
                track.id,
                state.detections,
                state.best_size,
            )
            return
        if not verdict.known and self.options.unknown == "drop":
            return
        log.debug(
            "track %d, %.2f-%.2f s, %d detections: %s (votes %s)",
            track.id,
            track.first_time,
            track.last_time,
            state.detections,
            verdict.name or "unknown",
            verdict.votes,
        )
        event = self._event(track, state, verdict)
        for sink in self.sinks:
            sink.emit(event)
        self.stats.events += 1
        if event.known:
            self.stats.known += 1
        else:
            self.stats.unknown += 1

    def _decide(self, state: _TrackState) -> Verdict | None:
        """The track's verdict: its template's decision (the quality-weighted mean of its frames' descriptors),
        or the frames' vote when no descriptor was kept."""
        samples = [s for s, _ in state.samples]
        template = track_template(samples)
        if template is None:
            return vote(samples)
        try:
            decision = self.recognizer().identify(template)
        except Exception:
            log.exception("identifying the template of track %d failed; the frames' vote decides", state.track.id)
            return vote(samples)
        return template_verdict(samples, decision)

    def _event(self, track: Track, state: _TrackState, verdict: Verdict) -> MonitorEvent:
        def matches(sample: Sample) -> bool:
            if verdict.person_id is None:
                return True
            return sample.decision.person_id == verdict.person_id and sample.quality >= MONITOR_NAME_MIN_QUALITY

        kept = [(s, c) for s, c in state.samples if c is not None and matches(s)]
        if not kept:  # the template named someone no single frame did: the best frame shows them
            kept = [(s, c) for s, c in state.samples if c is not None]
        _, candidate = max(kept, key=lambda sc: sc[0].quality)
        assert candidate is not None
        images = verdict.known or self.options.unknown == "keep"
        snapshot = encode_jpeg(candidate.frame.rgb) if images else None
        crop, crop_box = face_crop(candidate.frame.rgb, candidate.detection.box) if images else (None, None)
        instant = track.first_wall.timestamp() if self.source.live else track.first_time
        return MonitorEvent(
            key=idempotency_key(self.options.camera, self.source.identity, instant, track.id),
            camera=self.options.camera,
            source=self.source.name,
            track_id=track.id,
            start=track.first_wall,
            end=track.last_wall,
            media_start=track.first_time,
            media_end=track.last_time,
            person_id=verdict.person_id,
            name=verdict.name,
            confidence=verdict.confidence,
            distance=verdict.distance,
            score=verdict.score,
            threshold=verdict.threshold,
            share=verdict.share,
            votes=verdict.votes,
            detections=state.detections,
            embedded=verdict.frames,
            model_id=self.recognizer().model_id,
            box=[round(float(v), 2) for v in candidate.detection.box],
            frame_time=candidate.frame.time,
            quality=candidate.quality.to_dict(),
            snapshot=snapshot,
            crop=encode_jpeg(crop) if crop is not None and crop.size else None,
            crop_box=crop_box,
            ambiguous=verdict.ambiguous,
            stranger_rate=verdict.stranger_rate,
            template=None if verdict.known else track_template([s for s, _ in state.samples]),
        )

    # -- drawing -----------------------------------------------------------------------------------------

    def _annotate(self, frame: Frame, tracks: list[Track]) -> np.ndarray:
        from faceid.monitor.annotate import Label, draw

        labels = []
        for track in tracks:
            state = self._states.get(track.id)
            if state is None or not track.confirmed:
                continue
            verdict = state.verdict
            if verdict is None:
                labels.append(Label(track.box, f"#{track.id} ...", None))
            elif verdict.known:
                labels.append(Label(track.box, f"{verdict.name} {verdict.confidence:.2f}", True))
            else:
                labels.append(Label(track.box, f"#{track.id} unknown", False))
        return draw(frame.rgb, labels)
