"""Export the whole gallery to one portable archive, and import such an archive, all or nothing.

The archive is a zip file::

    manifest.json   format, version, counts, the sha256 of gallery.json and of every image
    gallery.json    people (name, external id, notes, metadata) with their faces (model id, embedding,
                    box, landmarks, quality, image name), and each model's calibration
    images/<sha256>.<type>

Import checks everything before the store keeps anything: the manifest, the gallery's checksum,
that every image is listed, present and hashes to its name, that embeddings are well formed. With a
key, the manifest also carries an HMAC-SHA256, so an archive rewritten consistently by someone
without the key is refused too. Any failure raises :class:`ArchiveError` and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from faceid.errors import ArchiveError, ConflictError
from faceid.store.photos import PreparedFace
from faceid.store.records import ImportReport
from faceid.store.schema import Face, ModelVersion, Person, name_key
from faceid.store.types import utcnow

if TYPE_CHECKING:
    from faceid.store.store import Store

log = logging.getLogger(__name__)

FORMAT = "faceid-gallery"
VERSION = 1
MANIFEST = "manifest.json"
GALLERY = "gallery.json"
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_GALLERY_BYTES = 4 * 1024 * 1024 * 1024


def _encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode("ascii")


def _decode_vector(text: str, where: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise ArchiveError(f"{where}: embedding is not base64") from None
    if len(raw) % 4:
        raise ArchiveError(f"{where}: embedding has a size that is not whole float32 values")
    vector = np.frombuffer(raw, "<f4").astype(np.float32)
    if not np.all(np.isfinite(vector)):
        raise ArchiveError(f"{where}: embedding has non-finite values")
    return vector


def _sign(manifest: dict[str, Any], key: bytes) -> str:
    body = json.dumps({k: v for k, v in manifest.items() if k != "signature"}, sort_keys=True).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _iso(value: datetime) -> str:
    return value.isoformat()


def export_archive(store: Store, path: str | os.PathLike[str], key: bytes | None = None, progress: bool = True) -> dict:
    """Write every person, face, stored image and calibration to the zip file ``path``.

    Written under a temporary name and renamed, so ``path`` is never half an archive.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with Session(store.engine) as session, session.begin():
        if store.backend == "postgresql":  # one snapshot for the whole export
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        people = list(session.scalars(select(Person).order_by(Person.id)))
        faces_by_person: dict[int, list[Face]] = {}
        for face in session.scalars(select(Face).order_by(Face.id)):
            faces_by_person.setdefault(face.person_id, []).append(face)
        models = list(session.scalars(select(ModelVersion)))
        images: dict[str, tuple[str, str]] = {}
        gallery_people: list[dict[str, Any]] = []
        for person in people:
            faces: list[dict[str, Any]] = []
            for face in faces_by_person.get(person.id, []):
                image = None
                if face.image_sha256 and face.image_type:
                    image = f"{face.image_sha256}.{face.image_type}"
                    images[image] = (face.image_sha256, face.image_type)
                faces.append(
                    {
                        "model_id": face.model_id,
                        "embedding": _encode_vector(face.embedding),
                        "image": image,
                        "box": face.box,
                        "landmarks": face.landmarks,
                        "quality": face.quality,
                        "size": face.size,
                        "created_at": _iso(face.created_at),
                    }
                )
            gallery_people.append(
                {
                    "name": person.name,
                    "external_id": person.external_id,
                    "notes": person.notes,
                    "metadata": person.meta or {},
                    "created_at": _iso(person.created_at),
                    "faces": faces,
                }
            )
        gallery_models = [
            {
                "model_id": m.model_id,
                "dim": m.dim,
                "threshold": m.threshold,
                "method": m.method,
                "calibration": m.calibration,
                "cohort": base64.b64encode(m.cohort).decode("ascii") if m.cohort else None,
            }
            for m in models
        ]
    from faceid.store.corrections import export_negatives  # "not this person" exemplars travel with their people

    gallery = {"people": gallery_people, "models": gallery_models, "negatives": export_negatives(store)}
    gallery_bytes = json.dumps(gallery).encode()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": utcnow().isoformat(),
        "people": len(gallery_people),
        "faces": sum(len(p["faces"]) for p in gallery_people),
        "model_ids": sorted({f["model_id"] for p in gallery_people for f in p["faces"]}),
        "gallery_sha256": hashlib.sha256(gallery_bytes).hexdigest(),
        "images": {},
    }
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".export-", suffix=".part", delete=False) as handle:
        tmp = Path(handle.name)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            archive.writestr(GALLERY, gallery_bytes)
            for name, (sha, image_type) in tqdm(
                sorted(images.items()), desc="exporting images", unit="image", disable=not progress, leave=False
            ):
                data = store.files.read(sha, image_type)
                if hashlib.sha256(data).hexdigest() != sha:
                    raise ArchiveError(f"the stored image {name} is damaged (its content does not match its name)")
                archive.writestr(f"images/{name}", data, compress_type=zipfile.ZIP_STORED)
                manifest["images"][name] = len(data)
            if key:
                manifest["signature"] = _sign(manifest, key)
            archive.writestr(MANIFEST, json.dumps(manifest, indent=1))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "exported %d people, %d faces, %d images to %s", manifest["people"], manifest["faces"], len(images), target
    )
    return {k: v for k, v in manifest.items() if k not in ("images", "signature")} | {
        "image_count": len(images),
        "path": str(target),
        "signed": bool(key),
    }


class _Reader:
    """Validated access to an archive's members."""

    def __init__(self, path: Path, key: bytes | None) -> None:
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise ArchiveError(f"{path}: no such file") from None
        except (zipfile.BadZipFile, OSError) as error:
            raise ArchiveError(f"{path}: not a faceid archive, or damaged ({error})") from None
        self.manifest = self._manifest(key)
        self.gallery = self._gallery()

    def _read(self, name: str, limit: int) -> bytes:
        try:
            info = self.zip.getinfo(name)
        except KeyError:
            raise ArchiveError(f"{self.path}: {name} is missing from the archive") from None
        if info.file_size > limit:
            raise ArchiveError(f"{self.path}: {name} is larger than allowed ({info.file_size} bytes)")
        try:
            return self.zip.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:  # CRC error, truncation...
            raise ArchiveError(f"{self.path}: {name} is damaged ({error})") from None

    def _manifest(self, key: bytes | None) -> dict[str, Any]:
        try:
            manifest = json.loads(self._read(MANIFEST, 1 << 30))
        except ValueError:
            raise ArchiveError(f"{self.path}: the manifest is not valid JSON") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ArchiveError(f"{self.path}: not a faceid gallery archive")
        if manifest.get("version") != VERSION:
            raise ArchiveError(f"{self.path}: archive version {manifest.get('version')!r} is not supported")
        if not isinstance(manifest.get("images"), dict) or not isinstance(manifest.get("gallery_sha256"), str):
            raise ArchiveError(f"{self.path}: the manifest is incomplete")
        signature = manifest.get("signature")
        if key is not None:
            if not isinstance(signature, str):
                raise ArchiveError(f"{self.path}: the archive is not signed, but a key was given")
            if not hmac.compare_digest(signature, _sign(manifest, key)):
                raise ArchiveError(f"{self.path}: the signature does not match (tampered, or another key)")
        elif signature is not None:
            log.warning("%s is signed but no key was given: its signature is not checked", self.path)
        listed = {f"images/{name}" for name in manifest["images"]} | {MANIFEST, GALLERY}
        extra = sorted(set(self.zip.namelist()) - listed)
        if extra:
            raise ArchiveError(f"{self.path}: unexpected file(s) in the archive: {', '.join(extra[:5])}")
        return manifest

    def _gallery(self) -> dict[str, Any]:
        data = self._read(GALLERY, MAX_GALLERY_BYTES)
        if hashlib.sha256(data).hexdigest() != self.manifest["gallery_sha256"]:
            raise ArchiveError(f"{self.path}: gallery.json does not match its checksum (tampered or damaged)")
        try:
            gallery = json.loads(data)
        except ValueError:
            raise ArchiveError(f"{self.path}: gallery.json is not valid JSON") from None
        if not isinstance(gallery, dict) or not isinstance(gallery.get("people"), list):
            raise ArchiveError(f"{self.path}: gallery.json has no list of people")
        return gallery

    def image(self, name: str) -> tuple[bytes, str, str]:
        """The bytes of a listed image, checked against its listed size and its content-addressed name."""
        if name not in self.manifest["images"]:
            raise ArchiveError(f"{self.path}: a face refers to image {name}, which the manifest does not list")
        sha, _, image_type = name.partition(".")
        data = self._read(f"images/{name}", MAX_IMAGE_BYTES)
        if len(data) != self.manifest["images"][name] or hashlib.sha256(data).hexdigest() != sha:
            raise ArchiveError(f"{self.path}: image {name} does not match its checksum (tampered or damaged)")
        return data, sha, image_type


def _people(reader: _Reader) -> Iterator[tuple[dict[str, Any], list[PreparedFace], list[str | None]]]:
    """Each person of the archive with their faces, validated (images are checked when written)."""
    seen: set[str] = set()
    for number, person in enumerate(reader.gallery["people"]):
        where = f"{reader.path}: person #{number + 1}"
        if not isinstance(person, dict) or not isinstance(person.get("name"), str) or not person["name"].strip():
            raise ArchiveError(f"{where} has no name")
        key = name_key(person["name"])
        if key in seen:
            raise ArchiveError(f"{where}: the name {person['name']!r} appears twice")
        seen.add(key)
        if not isinstance(person.get("faces", []), list) or not isinstance(person.get("metadata", {}), dict):
            raise ArchiveError(f"{where} is malformed")
        faces = []
        images: list[str | None] = []
        for face in person.get("faces", []):
            if not isinstance(face, dict) or not isinstance(face.get("model_id"), str):
                raise ArchiveError(f"{where}: a face is malformed")
            embedding = _decode_vector(str(face.get("embedding", "")), where)
            image = face.get("image")
            if image is not None and (not isinstance(image, str) or image not in reader.manifest["images"]):
                raise ArchiveError(f"{where}: a face refers to an image the archive does not list")
            faces.append(
                PreparedFace(
                    embedding=embedding,
                    model_id=face["model_id"],
                    image=None,
                    image_type=image.partition(".")[2] if image else None,
                    box=face.get("box"),
                    landmarks=face.get("landmarks"),
                    quality=face.get("quality"),
                    size=face.get("size"),
                    label=image or "",
                )
            )
            images.append(image)
        yield person, faces, images


def import_archive(
    store: Store,
    path: str | os.PathLike[str],
    *,
    key: bytes | None = None,
    skip_existing: bool = False,
    progress: bool = True,
) -> ImportReport:
    """Import an archive made by :func:`export_archive`, in one transaction.

    People whose name or external id is already in the store make the import fail (nothing changes)
    unless ``skip_existing``, which leaves them out and reports them.
    """
    reader = _Reader(Path(path), key)
    entries = list(_people(reader))
    report = ImportReport()
    with store._read() as session:
        names = {k for (k,) in session.execute(select(Person.name_key))}
        externals = {k for (k,) in session.execute(select(Person.external_id)) if k}
        calibrated = {k for (k,) in session.execute(select(ModelVersion.model_id))}
    chosen = []
    for person, faces, images in entries:
        external = person.get("external_id")
        if name_key(person["name"]) in names or (external and external in externals):
            if not skip_existing:
                raise ConflictError(
                    f"{person['name']!r} (or their external id) is already in the store; nothing was imported "
                    "(use --skip-existing to import the others)"
                )
            report.skip_person(person["name"], "already in the store")
            continue
        chosen.append((person, faces, images))
    image_names = sorted({name for _, _, images in chosen for name in images if name})

    with store.files.writing(store.referenced_images) as batch:
        batch.declare([(n.partition(".")[0], n.partition(".")[2]) for n in image_names])
        for name in tqdm(image_names, desc="checking images", unit="image", disable=not progress, leave=False):
            data, sha, image_type = reader.image(name)
            batch.put_known(data, sha, image_type)
        with store._write() as session:
            face_ids: list[int] = []
            now = utcnow()
            for person, faces, images in chosen:
                row = Person(
                    name=" ".join(person["name"].split()),
                    name_key=name_key(person["name"]),
                    external_id=person.get("external_id") or None,
                    notes=person.get("notes"),
                    meta=person.get("metadata") or {},
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                rows = [
                    store._face_row(row.id, face, image.partition(".")[0] if image else None)
                    for face, image in zip(faces, images, strict=True)
                ]
                session.add_all(rows)
                session.flush()
                face_ids.extend(r.id for r in rows)
                report.people_enrolled += 1
                report.faces_enrolled += len(rows)
            for model in reader.gallery.get("models", []):
                if not isinstance(model, dict) or model.get("model_id") in calibrated or model.get("threshold") is None:
                    continue
                session.add(
                    ModelVersion(
                        model_id=str(model["model_id"]),
                        dim=int(model.get("dim") or 128),
                        threshold=float(model["threshold"]),
                        method=model.get("method"),
                        calibration=model.get("calibration"),
                        cohort=base64.b64decode(model["cohort"]) if model.get("cohort") else None,
                        created_at=now,
                        updated_at=now,
                    )
                )
            from faceid.store.corrections import add_negatives, invalidate

            imported = {" ".join(person["name"].split()) for person, _, _ in chosen}
            add_negatives(session, store, reader.gallery.get("negatives", []), only=imported)
            store._log_faces(session, face_ids)
    store._matchers.clear()
    invalidate(store)
    log.info("imported %d people with %d faces from %s", report.people_enrolled, report.faces_enrolled, path)
    return report


def archive_summary(path: str | os.PathLike[str], key: bytes | None = None) -> dict[str, Any]:
    """Check an archive without importing it; returns its manifest's counts."""
    reader = _Reader(Path(path), key)
    for _person in _people(reader):
        pass
    for name in reader.manifest["images"]:
        reader.image(name)
    return {k: v for k, v in reader.manifest.items() if k not in ("images", "signature")}
