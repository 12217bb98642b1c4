"""A track decides by its template: the quality-weighted mean of its frames' descriptors."""

from __future__ import annotations

import numpy as np

from faceid.monitor.recognize import FrameDecision, Sample, template_verdict, track_template
from faceid.thresholds import MONITOR_NAME_MIN_QUALITY


def _sample(vector: list[float], quality: float, person: int | None = None) -> Sample:
    decision = FrameDecision(
        person_id=person,
        name=None if person is None else f"person {person}",
        distance=0.5,
        score=0.5,
        threshold=0.6,
        confidence=0.9 if person else 0.0,
        embedding=np.asarray(vector, np.float32),
    )
    return Sample(0.0, 0, quality, decision)


def test_template_is_the_quality_weighted_mean_of_good_frames() -> None:
    good = [_sample([1.0, 0.0], 0.8), _sample([0.0, 1.0], 0.2)]
    poor = _sample([9.0, 9.0], MONITOR_NAME_MIN_QUALITY / 2)
    template = track_template([*good, poor])
    assert template is not None
    assert np.allclose(template, [0.8, 0.2])  # the poor frame does not pull it
    assert np.allclose(track_template([poor]), [9.0, 9.0])  # unless it is all there is
    assert track_template([]) is None


def test_the_template_decides_and_the_votes_stay_on_record() -> None:
    samples = [_sample([1.0, 0.0], 0.5, None), _sample([1.0, 0.1], 0.3, 7)]
    named = FrameDecision(7, "person 7", 0.4, 0.4, 0.6, 0.99, stranger_rate=0.01)
    verdict = template_verdict(samples, named)
    # One frame of two passed on its own: a vote alone would say unknown, the template names them.
    assert verdict.known and verdict.person_id == 7 and verdict.stranger_rate == 0.01
    assert verdict.votes == {"unknown": 0.5, "person 7": 0.3} and verdict.frames == 2
    unknown = template_verdict(samples, FrameDecision(None, None, 0.7, 0.9, 0.6, 0.0))
    assert not unknown.known and unknown.confidence == 0.0
    poor = [_sample([1.0, 0.0], MONITOR_NAME_MIN_QUALITY / 2, None)]
    assert not template_verdict(poor, named).known  # frames too poor to name anyone never name anyone
