"""Bulk import from a folder tree, and what a kill in the middle of one leaves behind."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

from faceid.store import Store
from faceid.store.bulk import BY_CENTROID, BY_PLACE, BY_RECURRENCE, Choice, choose_faces, import_folder
from faceid.store.config import resolve_database_url

REPO = Path(__file__).resolve().parents[2]


def jpeg_variant(source: Path, number: int, width: int = 360) -> bytes:
    """The photo scaled down and re-encoded so that each copy has different bytes (its own image file)."""
    image = Image.open(source).convert("RGB")
    image = image.resize((width, round(image.height * width / image.width)))
    pixels = np.asarray(image).copy()
    pixels[:16, :16] = ((37 * number) % 256, (91 * number) % 256, number // 7 % 256)  # survives JPEG coding
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def make_tree(root: Path, media_dir: Path, people: int) -> None:
    """``people`` folders of two single-face photos each (variants of the media photos)."""
    sources = [media_dir / "obama.jpg", media_dir / "obama2.jpg", media_dir / "biden.jpg", media_dir / "obama3.jpg"]
    sources = [s if s.is_file() else media_dir / "test_images" / s.name for s in sources]
    for number in range(people):
        folder = root / f"Person_{number:02d}"
        folder.mkdir(parents=True)
        for photo in range(2):
            source = sources[(number + photo) % len(sources)]
            (folder / f"Person_{number:02d}_{photo + 1:04d}.jpg").write_bytes(jpeg_variant(source, 2 * number + photo))


def test_import_reports_what_it_skipped(photo_store: Store, media_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root, media_dir, 2)
    mixed = root / "Mixed_Bag"
    mixed.mkdir()
    (mixed / "good.jpg").write_bytes(jpeg_variant(media_dir / "obama.jpg", 99))
    (mixed / "two.jpg").write_bytes((media_dir / "two_people.jpg").read_bytes())
    (mixed / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), (30, 90, 30)).save(buffer, format="PNG")
    (mixed / "lawn.png").write_bytes(buffer.getvalue())
    (mixed / "notes.txt").write_text("ignored: not a photo")
    (root / "Empty_Folder").mkdir()
    nobody = root / "No_Face_Anywhere"
    nobody.mkdir()
    (nobody / "lawn.png").write_bytes(buffer.getvalue())

    report = import_folder(photo_store, root, pick="one", progress=False)  # strict
    assert report.people_enrolled == 3 and report.faces_enrolled == 5
    reasons = {Path(item["path"]).name: item["reason"] for item in report.skipped_images}
    assert reasons["two.jpg"].startswith("several faces")
    assert reasons["broken.jpg"].startswith("unreadable")
    assert reasons["lawn.png"] == "no face"
    assert {p["name"]: p["reason"] for p in report.skipped_people} == {
        "Empty Folder": "no photos",
        "No Face Anywhere": "no usable photo",
    }
    assert photo_store.get_person("Mixed Bag").face_count == 1
    assert report.to_dict()["skipped_by_reason"] == {"several faces": 1, "unreadable": 1, "no face": 2}

    again = import_folder(photo_store, root, progress=False)
    assert again.people_enrolled == 0
    assert {p["reason"] for p in again.skipped_people} >= {"already in the store"}
    assert photo_store.check()["ok"]


def test_a_photo_with_someone_in_the_background_keeps_the_subject(
    photo_store: Store, media_dir: Path, tmp_path: Path, analyzer: object
) -> None:
    """In Barack Obama's folder, two photos show Joe Biden too, larger: Obama's face is the one taken."""
    root = tmp_path / "tree"
    folder = root / "Barack_Obama"
    folder.mkdir(parents=True)
    (folder / "alone.jpg").write_bytes(jpeg_variant(media_dir / "obama.jpg", 1))
    (folder / "with_biden.jpg").write_bytes((media_dir / "two_people.jpg").read_bytes())
    (folder / "with_biden_too.jpg").write_bytes(
        (media_dir / "knn_examples" / "test" / "obama_and_biden.jpg").read_bytes()
    )
    obama = analyzer.analyze(media_dir / "obama.jpg")[0].embedding  # type: ignore[attr-defined]

    def obamas_face(photo: Path) -> int:  # 1 = the largest
        faces = analyzer.analyze(photo)  # type: ignore[attr-defined]
        return 1 + int(np.argmin([np.linalg.norm(f.embedding - obama) for f in faces]))

    report = import_folder(photo_store, root, progress=False)
    assert report.people_enrolled == 1 and report.faces_enrolled == 3 and report.skipped_images == []
    taken = {Path(item["path"]).name: item for item in report.chosen}
    assert set(taken) == {"with_biden.jpg", "with_biden_too.jpg"}
    for name, item in taken.items():
        assert item["face"] == obamas_face(folder / name) != 1 and item["faces"] == 2
        assert item["how"] == BY_CENTROID
    assert report.to_dict()["chosen_by_rule"] == {BY_CENTROID: 2}


def test_the_face_taken_without_single_face_photos() -> None:
    subject, other, stranger = np.eye(3, dtype=np.float32)
    near = subject + 0.05
    # No single-face photo: the face every photo shows, whatever its size.
    assert [c.index for c in choose_faces([np.stack([other, subject]), np.stack([stranger, near])])] == [1, 1]
    assert {c.how for c in choose_faces([np.stack([other, subject]), np.stack([stranger, near])])} == {BY_RECURRENCE}
    # One photo, nothing to compare with: the most central of the faces nearly as large as the largest.
    boxes = np.array([[0, 0, 100, 100], [160, 60, 240, 140], [195, 95, 205, 105]], np.float32)  # largest first
    only = choose_faces([np.stack([other, subject, stranger])], boxes=[boxes], image_sizes=[(200, 400)])
    assert only == [Choice(1, BY_PLACE)]  # the tiny face in the very middle is too small to be the subject
    assert choose_faces([np.stack([other, subject])])[0] == Choice(0, BY_PLACE)  # no boxes: the largest
    # Strict and largest, as asked.
    photos = [subject[None, :], np.stack([other, near])]
    assert [c.index for c in choose_faces(photos, "subject")] == [0, 1]
    assert [c.index for c in choose_faces(photos, "largest")] == [0, 0]
    assert [c.index for c in choose_faces(photos, "one")] == [0, None]


def _faceid(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from faceid.cli import main; sys.exit(main())", *args]


def _store_args(data_dir: Path, db_url: str | None) -> list[str]:
    return ["--data-dir", str(data_dir), *(["--db", db_url] if db_url else [])]


@pytest.mark.slow
def test_killed_import_leaves_whole_people_only(
    media_dir: Path, tmp_path: Path, data_dir: Path, db_url: str | None, analyzer: object
) -> None:
    root = tmp_path / "tree"
    people = 8
    make_tree(root, media_dir, people)
    engine = create_engine(resolve_database_url(db_url, data_dir))
    process = subprocess.Popen(
        _faceid("people", "import", str(root), "--quiet", *_store_args(data_dir, db_url)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    journal = data_dir / "journal"
    caught_mid_write = False
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the import ended before it could be killed: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                with engine.connect() as connection:
                    enrolled = connection.execute(text("SELECT count(*) FROM people")).scalar_one()
            except Exception:  # the tables may not exist yet
                enrolled = 0
            pending = journal.is_dir() and any(journal.glob("*.json"))
            if enrolled >= 2 and pending:  # killed between writing a person's files and committing them
                caught_mid_write = True
                break
            if enrolled >= 5:
                break
            time.sleep(0.002)
        else:
            pytest.fail("the import made no progress")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        engine.dispose()

    with Store(data_dir, db_url, analyzer=analyzer) as store:  # opening finishes the killed writer's clean-up
        report = store.check()
        assert report["ok"], report
        assert report["people_without_faces"] == [] and report["pending_journals"] == []
        enrolled = store.list_people()
        assert 2 <= len(enrolled) < people
        assert all(p.face_count == 2 for p in enrolled)  # every person whole, or not there at all
        assert report["images"] == 2 * len(enrolled)
        assert not any((data_dir / "tmp").iterdir())

        rest = import_folder(store, root, progress=False)  # a second run finishes the job
        assert rest.people_enrolled == people - len(enrolled)
        assert store.count_people() == people and store.count_faces() == 2 * people
        assert store.check()["ok"]
    print(f"killed {'while writing a person' if caught_mid_write else 'between people'}")


def test_writer_killed_between_files_and_commit(tmp_path: Path, data_dir: Path, db_url: str | None) -> None:
    """A deterministic kill at the worst moment: image files written, transaction not committed."""
    script = f"""
import os, signal
import numpy as np
from faceid.store import Store, PreparedFace
store = Store({str(data_dir)!r}, {db_url!r}, model_id="m")
store.enroll_embeddings("Before", np.ones((1, 128), np.float32))
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
store._write = die
face = PreparedFace(embedding=np.zeros(128, np.float32), model_id="m", image=b"not checked here", image_type="jpg")
store.enroll_prepared("Ghost", [face])
"""
    finished = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert finished.returncode == -signal.SIGKILL
    orphans = list((data_dir / "images").glob("??/??/*"))
    journals = list((data_dir / "journal").glob("*.json"))
    assert len(orphans) == 1 and len(journals) == 1  # the kill left a file that nothing references...
    with Store(data_dir, db_url, model_id="m") as store:  # ...and the next open removes it
        assert [p.name for p in store.list_people()] == ["Before"]
        assert list((data_dir / "images").glob("??/??/*")) == []
        assert store.check()["ok"]
