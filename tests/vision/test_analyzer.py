"""The pipeline as a whole: analyze_many gives, image for image, what analyze gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import faceid
from faceid.errors import ImageError


def _photos(media_dir: Path) -> list[Path]:
    names = ["obama.jpg", "two_people.jpg", "biden.jpg", "alex-lacamoire.png", "obama_small.jpg", "obama2.jpg"]
    return [media_dir / name for name in names]


def test_analyze_many_matches_analyze_in_order(media_dir: Path) -> None:
    photos = _photos(media_dir)
    analyzer = faceid.Analyzer(threads=1)
    one_by_one = [analyzer.analyze(photo) for photo in photos]
    together = list(analyzer.analyze_many(iter(photos), workers=2))
    assert [len(faces) for faces in together] == [len(faces) for faces in one_by_one] == [1, 2, 1, 1, 1, 1]
    for expected, got in zip(one_by_one, together, strict=True):
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_array_equal(a.box, b.box)
            np.testing.assert_array_equal(a.chip, b.chip)
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)


def test_analyze_many_reads_a_stream_lazily(media_dir: Path) -> None:
    consumed: list[int] = []

    def frames():
        for index in range(100):
            consumed.append(index)
            yield media_dir / "obama_small.jpg"

    results = faceid.Analyzer(threads=1).analyze_many(frames(), workers=2)
    next(results)
    assert len(consumed) <= 5  # two workers read at most four ahead
    results.close()


def test_analyze_many_raises_for_a_bad_image_in_turn(media_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    results = faceid.Analyzer(threads=1).analyze_many([media_dir / "obama.jpg", broken], workers=2)
    assert len(next(results)) == 1
    with pytest.raises(ImageError):
        next(results)
