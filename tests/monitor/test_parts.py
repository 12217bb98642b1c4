"""The monitor's parts on their own: tracker, cut detection, quality, vote, keys, the on-disk queue, the
server-gallery recogniser against the store's own decision."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from faceid.monitor.agent import camera_name
from faceid.monitor.events import idempotency_key
from faceid.monitor.outbox import Outbox
from faceid.monitor.quality import assess, eye_ratio
from faceid.monitor.recognize import FrameDecision, GalleryRecognizer, Sample, StoreRecognizer, vote
from faceid.monitor.sources import Backoff, SourceError, parse_source, redact
from faceid.monitor.tracker import CutDetector, Tracker
from faceid.thresholds import MONITOR_NAME_MIN_QUALITY, MONITOR_TRACK_MAX_GAP_SECONDS
from faceid.vision.types import Detection

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


def detection(x: float, y: float, side: float = 60.0, score: float = 0.9) -> Detection:
    return Detection(np.array([x, y, x + side, y + side], np.float32), score)


def step(tracker: Tracker, index: int, detections: list[Detection] | None, fps: float = 30.0):
    time = index / fps
    return tracker.update(time, T0 + timedelta(seconds=time), index, detections)


# -- tracking -----------------------------------------------------------------------------------------------


def test_a_moving_face_is_one_track_even_when_detected_every_other_frame() -> None:
    tracker = Tracker()
    for i in range(60):
        alive, ended = step(tracker, i, [detection(100 + 6 * i, 80)] if i % 2 == 0 else None)
        assert not ended
    assert len(alive) == 1 and alive[0].confirmed and alive[0].hits == 30
    (track,) = tracker.finish()
    assert track.first_index == 0 and track.last_index == 58


def test_two_faces_two_tracks_and_a_gap_ends_a_track() -> None:
    tracker = Tracker()
    for i in range(10):
        alive, _ = step(tracker, i, [detection(50, 50), detection(300, 60)])
    assert sorted(t.id for t in alive) == [1, 2]
    ended_at = None
    for i in range(10, 80):
        _, ended = step(tracker, i, [detection(50, 50)])
        if ended:
            ended_at = i
            assert [t.id for t in ended] == [2]
            break
    assert ended_at is not None and (ended_at - 9) / 30 > MONITOR_TRACK_MAX_GAP_SECONDS


def test_a_single_stray_detection_is_never_a_track() -> None:
    tracker = Tracker()
    step(tracker, 0, [detection(400, 200)])
    for i in range(1, 40):
        _, ended = step(tracker, i, [])
        assert not ended
    assert tracker.finish() == []


def test_cut_detector_separates_a_change_of_shot_from_motion() -> None:
    rng = np.random.default_rng(0)
    shot = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    cuts = CutDetector(20.0)
    assert not cuts.is_cut(shot)
    assert not cuts.is_cut(shot)
    brighter = np.clip(shot.astype(np.int16) + 10, 0, 255).astype(np.uint8)  # the lights come up a little
    assert not cuts.is_cut(brighter)
    assert cuts.is_cut(255 - brighter)
    assert not CutDetector(0).is_cut(shot)


# -- quality --------------------------------------------------------------------------------------------------


def test_quality_prefers_a_large_sharp_frontal_face() -> None:
    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    blurred = np.full_like(sharp, 128)
    frontal = Detection(np.array([50, 50, 150, 150], np.float32), 0.9, np.array([[80, 90], [124, 90]], np.float32))
    profile = Detection(np.array([50, 50, 150, 150], np.float32), 0.9, np.array([[95, 90], [105, 90]], np.float32))
    small = Detection(np.array([50, 50, 70, 70], np.float32), 0.9, np.array([[54, 58], [63, 58]], np.float32))
    assert eye_ratio(frontal) == pytest.approx(0.44)
    best = assess(sharp, frontal)
    assert best.score > 0.8
    assert assess(blurred, frontal).score < 0.01
    assert assess(sharp, profile).pose_score == pytest.approx(0.0, abs=1e-6)
    assert assess(sharp, small).score < best.score / 2


# -- the vote ---------------------------------------------------------------------------------------------------


def decision(person: int | None, score: float = 0.8, confidence: float = 0.99) -> FrameDecision:
    name = None if person is None else f"person {person}"
    return FrameDecision(person, name, 0.5, score, 0.94, confidence if person else 0.0, person or 1, name)


def samples(*items: tuple[int | None, float]) -> list[Sample]:
    return [Sample(i / 10, i, quality, decision(person)) for i, (person, quality) in enumerate(items)]


def test_vote_names_the_person_holding_most_of_the_quality_weight() -> None:
    verdict = vote(samples((7, 0.8), (7, 0.7), (None, 0.3)))
    assert verdict is not None and verdict.person_id == 7 and verdict.name == "person 7"
    assert verdict.share == pytest.approx(1.5 / 1.8) and verdict.confidence == pytest.approx(0.99 * 1.5 / 1.8)
    assert vote([]) is None


def test_vote_needs_a_majority_and_a_tie_is_unknown() -> None:
    split = vote(samples((7, 0.4), (8, 0.35), (None, 0.3)))
    assert split is not None and split.person_id is None and split.confidence == 0.0
    tie = vote(samples((7, 0.5), (None, 0.5)))
    assert tie is not None and tie.person_id is None


def test_poor_frames_cannot_name_anyone() -> None:
    poor = MONITOR_NAME_MIN_QUALITY / 2
    verdict = vote(samples((7, poor), (7, poor), (7, poor)))
    assert verdict is not None and verdict.person_id is None and verdict.votes == {"unknown": pytest.approx(3 * poor)}


# -- keys, names ------------------------------------------------------------------------------------------------


def test_idempotency_keys_depend_only_on_what_a_rerun_sees_again() -> None:
    key = idempotency_key("door", "file:abc", 1.2345, 3)
    assert key == idempotency_key("door", "file:abc", 1.2345, 3)
    assert key.startswith("mon-") and len(key) <= 200
    others = {
        idempotency_key("hall", "file:abc", 1.2345, 3),
        idempotency_key("door", "file:abd", 1.2345, 3),
        idempotency_key("door", "file:abc", 1.2355, 3),
        idempotency_key("door", "file:abc", 1.2345, 4),
    }
    assert key not in others and len(others) == 4


def test_sources_are_told_apart_and_credentials_never_shown() -> None:
    assert parse_source("0") == ("camera", "0")
    assert parse_source("/dev/video2") == ("camera", "/dev/video2")
    assert parse_source("rtsp://cam/stream")[0] == "stream"
    assert parse_source("gst:v4l2src ! appsink") == ("gstreamer", "v4l2src ! appsink")
    assert parse_source("clip.mp4") == ("file", "clip.mp4")
    with pytest.raises(SourceError):
        parse_source("ftp://host/x")
    with pytest.raises(SourceError):
        parse_source("  ")
    assert redact("rtsp://admin:secret@10.0.0.2:554/live") == "rtsp://admin:***@10.0.0.2:554/live"
    assert camera_name("rtsp://admin:secret@10.0.0.2:554/live") == "10.0.0.2-554-live"
    assert camera_name("/videos/door.mp4") == "door" and camera_name("0") == "camera-0"


def test_backoff_grows_to_its_cap() -> None:
    backoff = Backoff(0.5, 8.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    jittered = Backoff(1.0, 10.0)
    assert all(0.8 <= jittered.delay(1) <= 1.2 for _ in range(50))


# -- the queue ----------------------------------------------------------------------------------------------------


def test_the_queue_keeps_one_row_per_key_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    assert outbox.put("k1", {"source": "door"}, b"\xff\xd8jpeg")
    assert outbox.put("k2", {"source": "door"}, None)
    assert not outbox.put("k1", {"source": "other"}, None)  # a re-run: kept as first queued
    first = outbox.pending()[0]
    outbox.mark_sent(first.id, 41)
    outbox.close()

    reopened = Outbox(path)
    assert reopened.counts() == {"pending": 1, "sent": 1, "failed": 0}
    assert not reopened.put("k1", {"source": "door"}, None)  # sent rows still block a re-queue
    (item,) = reopened.pending()
    assert item.key == "k2" and item.fields == {"source": "door"}
    reopened.mark_failed(item.id, "HTTP 415")
    assert reopened.counts() == {"pending": 0, "sent": 1, "failed": 1}
    reopened.close()


def test_the_queue_takes_events_from_several_threads(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")

    def fill(offset: int) -> None:
        for i in range(25):
            outbox.put(f"k{offset + i}", {"n": str(i)}, None)

    threads = [threading.Thread(target=fill, args=(100 * t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outbox.counts()["pending"] == 100
    outbox.close()


# -- the server's gallery decides as the store does ----------------------------------------------------------------


def gallery_payload(store, include_cohort: bool = True) -> dict:
    """What GET /api/v1/gallery/embeddings answers for this store (built the same way)."""
    matcher = store.matcher()
    calibration = store.calibration()
    people: dict[int, dict] = {}
    for person in store.list_people():
        faces = store.faces(person.id, with_embeddings=True)
        people[person.id] = {
            "id": person.id,
            "name": person.name,
            "face_ids": [f.id for f in faces],
            "embeddings": [[round(float(v), 7) for v in f.embedding] for f in faces],
        }
    body = {
        "model_id": store.model_id,
        "version": 1,
        "threshold": float(matcher.threshold()),
        "method": matcher.method,
        "calibrated": calibration is not None,
        "dim": len(next(iter(people.values()))["embeddings"][0]) if people else 256,
        "people": list(people.values()),
    }
    if include_cohort and calibration is not None and calibration.cohort is not None:
        body["cohort"] = np.asarray(calibration.cohort, np.float32).round(7).tolist()
        body["calibration"] = calibration.summary()
    return json.loads(json.dumps(body))


def test_the_server_gallery_gives_the_stores_decision(enrolled_store_dir: Path) -> None:
    from faceid.store import Store

    with Store(enrolled_store_dir) as store:
        local = StoreRecognizer(store)
        remote = GalleryRecognizer(gallery_payload(store))
        assert remote.method == local.describe()["method"] == "centroid-cohort"
        assert remote.threshold == pytest.approx(local.describe()["threshold"], abs=1e-6)
        faces = store.faces("Lin-Manuel Miranda", with_embeddings=True)
        rng = np.random.default_rng(2)
        dim = len(faces[0].embedding)
        probes = [faces[0].embedding + rng.normal(0, s, dim).astype(np.float32) for s in (0.0, 0.02, 0.04, 0.06, 0.1)]
        probes += [rng.normal(0, 0.09, dim).astype(np.float32) for _ in range(5)]
        named = 0
        for probe in probes:
            a, b = local.identify(probe), remote.identify(probe)
            assert a.person_id == b.person_id and a.nearest_id == b.nearest_id
            assert a.score == pytest.approx(b.score, abs=1e-4)
            if a.person_id is not None:
                named += 1
                # interpolated from the thresholds by gallery size: close to the stored tail's answer
                assert abs(a.confidence - b.confidence) < 0.05
                # the stranger rate reported with a connected monitor's events too, not "uncalibrated"
                assert a.stranger_rate is not None and b.stranger_rate is not None
                assert b.stranger_rate == pytest.approx(1.0 - b.confidence)
            else:
                assert b.stranger_rate is None
        assert named >= 3
