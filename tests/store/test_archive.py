"""Export to one archive and import it elsewhere; a damaged or tampered archive is refused and changes nothing."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from faceid.errors import ArchiveError, ConflictError
from faceid.store import PreparedFace, Store
from faceid.store.archive import archive_summary, export_archive, import_archive
from faceid.store.match import METHOD_COHORT, Calibration

from .helpers import PNG_1PX, TEST_MODEL, random_embeddings, table_counts


def png(seed: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def fill(store: Store) -> None:
    vectors = random_embeddings(4)
    faces = [
        PreparedFace(embedding=vectors[i], model_id=TEST_MODEL, image=png(i), image_type="png", box=[1, 2, 3, 4])
        for i in range(3)
    ]
    store.enroll_prepared("Ada", faces[:2], external_id="A", notes="n", metadata={"k": [1, 2]})
    store.enroll_prepared("Bob", faces[2:])
    store.enroll_embeddings("Cy", vectors[3:])  # no stored image
    store.save_calibration(Calibration(TEST_MODEL, METHOD_COHORT, 0.8, 0.01, 200, cohort=random_embeddings(30, seed=5)))


def rewrite(archive: Path, target: Path, change: dict[str, bytes | None]) -> None:
    """Copy ``archive`` to ``target`` with some members replaced (or dropped, for None)."""
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            if info.filename in change:
                if change[info.filename] is not None:
                    out.writestr(info.filename, change[info.filename])  # type: ignore[arg-type]
            else:
                out.writestr(info.filename, source.read(info))
        for name, data in change.items():
            if name not in source.namelist() and data is not None:
                out.writestr(name, data)


def test_round_trip(store: Store, tmp_path: Path) -> None:
    fill(store)
    archive = tmp_path / "gallery.zip"
    summary = export_archive(store, archive, progress=False)
    assert summary["people"] == 3 and summary["faces"] == 4 and summary["image_count"] == 3
    assert archive_summary(archive)["faces"] == 4

    with Store(tmp_path / "elsewhere", None, model_id=TEST_MODEL) as copy:
        report = import_archive(copy, archive, progress=False)
        assert report.people_enrolled == 3 and report.faces_enrolled == 4
        ada = copy.get_person("Ada")
        assert (ada.external_id, ada.notes, ada.metadata, ada.face_count) == ("A", "n", {"k": [1, 2]}, 2)
        original = {f.image_sha256: f.embedding for f in store.faces("Ada", with_embeddings=True)}
        for face in copy.faces("Ada", with_embeddings=True):
            np.testing.assert_array_equal(face.embedding, original[face.image_sha256])
            assert (
                copy.face_image(face.id)[0]
                == store.face_image(next(f.id for f in store.faces("Ada") if f.image_sha256 == face.image_sha256))[0]
            )
        calibration = copy.calibration(TEST_MODEL)
        assert calibration is not None and calibration.cohort is not None and calibration.cohort.shape == (30, 128)
        assert copy.identify_embedding(random_embeddings(4)[3]).candidates[0].name == "Cy"
        assert copy.check()["ok"]
        with pytest.raises(ConflictError):
            import_archive(copy, archive, progress=False)
        assert import_archive(copy, archive, skip_existing=True, progress=False).people_enrolled == 0


@pytest.mark.parametrize(
    "damage",
    ["gallery", "image", "extra", "missing image", "truncated", "not zip", "manifest", "embedding"],
)
def test_damaged_archive_changes_nothing(store: Store, tmp_path: Path, damage: str) -> None:
    fill(store)
    archive = tmp_path / "gallery.zip"
    export_archive(store, archive, progress=False)
    with zipfile.ZipFile(archive) as source:
        manifest = json.loads(source.read("manifest.json"))
        gallery = json.loads(source.read("gallery.json"))
    image = "images/" + sorted(manifest["images"])[0]
    bad = tmp_path / "bad.zip"
    if damage == "gallery":
        gallery["people"][0]["name"] = "Mallory"
        rewrite(archive, bad, {"gallery.json": json.dumps(gallery).encode()})
    elif damage == "image":
        rewrite(archive, bad, {image: PNG_1PX})
    elif damage == "extra":
        rewrite(archive, bad, {"images/evil.sh": b"rm -rf /"})
    elif damage == "missing image":
        rewrite(archive, bad, {image: None})
    elif damage == "truncated":
        bad.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    elif damage == "not zip":
        bad.write_bytes(b"hello")
    elif damage == "manifest":
        manifest["version"] = 99
        rewrite(archive, bad, {"manifest.json": json.dumps(manifest).encode()})
    elif damage == "embedding":
        # Consistent tampering (checksum updated too) of an embedding's content is caught by validation.
        gallery["people"][0]["faces"][0]["embedding"] = "not base64!"
        data = json.dumps(gallery).encode()
        import hashlib

        manifest["gallery_sha256"] = hashlib.sha256(data).hexdigest()
        rewrite(archive, bad, {"gallery.json": data, "manifest.json": json.dumps(manifest).encode()})

    # Import into the same store (same backend), emptied of the exported people.
    for person in store.list_people():
        store.delete_person(person.id)
    store.enroll_embeddings("Resident", random_embeddings(1, seed=7))
    before = table_counts(store), sorted(p.name for _, p in store.files.all_files())
    with pytest.raises(ArchiveError):
        import_archive(store, bad, progress=False)
    assert (table_counts(store), sorted(p.name for _, p in store.files.all_files())) == before
    assert store.check()["ok"]
    assert import_archive(store, archive, progress=False).people_enrolled == 3  # the intact one still imports


def test_signed_archive(store: Store, tmp_path: Path) -> None:
    fill(store)
    archive = tmp_path / "signed.zip"
    export_archive(store, archive, key=b"secret", progress=False)
    assert archive_summary(archive, key=b"secret")["people"] == 3
    with pytest.raises(ArchiveError, match="signature"):
        archive_summary(archive, key=b"wrong")
    # Someone without the key rewrites the gallery and updates every checksum: the signature catches it.
    with zipfile.ZipFile(archive) as source:
        manifest = json.loads(source.read("manifest.json"))
        gallery = json.loads(source.read("gallery.json"))
    gallery["people"][0]["name"] = "Mallory"
    data = json.dumps(gallery).encode()
    import hashlib

    manifest["gallery_sha256"] = hashlib.sha256(data).hexdigest()
    forged = tmp_path / "forged.zip"
    rewrite(archive, forged, {"gallery.json": data, "manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(ArchiveError, match="signature"):
        archive_summary(forged, key=b"secret")
    unsigned = tmp_path / "unsigned.zip"
    export_archive(store, unsigned, progress=False)
    with pytest.raises(ArchiveError, match="not signed"):
        archive_summary(unsigned, key=b"secret")
