"""The face database: people, their faces and events, on SQLite or PostgreSQL, one transaction per operation.

>>> store = Store("~/faces")                       # SQLite in ~/faces, images beside it
>>> alice = store.enroll("Alice", ["alice.jpg"])   # one photo is enough
>>> store.identify("door-camera.jpg")[0].person    # a Candidate, or None for unknown
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faceid.errors import BadInputError, ConflictError, NotFoundError
from faceid.store.camera import CameraCalibration, CameraCalibrations
from faceid.store.config import describe_url, resolve_data_dir, resolve_database_url
from faceid.store.database import WRITE_OPTION, Database, open_database
from faceid.store.files import ImageFolder
from faceid.store.gallery_cache import Gallery, current_version
from faceid.store.match import Calibration, Matcher
from faceid.store.photos import Pick, PreparedFace, prepare_face, source_bytes
from faceid.store.records import (
    Candidate,
    EventRecord,
    FaceImage,
    FaceRecord,
    FirstFace,
    GalleryFaces,
    Identification,
    PersonRecord,
)
from faceid.store.schema import NAME_MAX, Event, Face, FaceLog, ModelVersion, Person, StoreState, name_key
from faceid.store.types import utcnow
from faceid.vision.image import ImageSource
from faceid.vision.sface import descriptor_dimensions

if TYPE_CHECKING:
    from faceid.vision.analyzer import Analyzer
    from faceid.vision.types import Detection
    from faceid.vision.types import Face as DetectedFace

log = logging.getLogger(__name__)

PersonRef = int | str
IN_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit


def _chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _clean_name(name: str) -> str:
    if not isinstance(name, str):
        raise BadInputError(f"a name must be text, not {type(name).__name__}")
    cleaned = " ".join(name.split())
    if not cleaned:
        raise BadInputError("a person needs a non-empty name")
    if len(cleaned) > NAME_MAX:
        raise BadInputError(f"a name has at most {NAME_MAX} characters")
    return cleaned


def _clean_external_id(external_id: str | None) -> str | None:
    if external_id is None:
        return None
    if not isinstance(external_id, str) or not external_id.strip():
        raise BadInputError("an external id must be non-empty text")
    return external_id.strip()


class Store:
    """A face database in ``data_dir`` (SQLite there by default, or the PostgreSQL at ``db``).

    ``analyzer`` is the :class:`faceid.Analyzer` used for photos (created on first need);
    ``index`` is "auto" (exact, approximate past a size), "exact", "approx" (FAISS IVF in memory, either
    database) or "pgvector" (HNSW inside PostgreSQL). The schema is
    migrated when the store opens, and files left by an interrupted operation are cleaned up.
    ``database`` is an open :class:`~faceid.store.database.Database` to use instead of ``db`` (one that the
    accounts and the audit log share); by default the process's one for the URL.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        db: str | None = None,
        *,
        analyzer: Analyzer | None = None,
        index: str = "auto",
        model_id: str | None = None,
        database: Database | None = None,
    ) -> None:
        self.data_dir = resolve_data_dir(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if database is not None and db is not None:
            raise BadInputError("give a store either a database URL or an open database, not both")
        self.database = database or open_database(resolve_database_url(db, self.data_dir))
        self.url = self.database.url
        self.engine: Engine = self.database.engine
        self.backend = self.database.backend
        self.files = ImageFolder(self.data_dir)
        self.files.recover(self.referenced_images)
        self._analyzer = analyzer
        self._model_id = model_id
        self.index_mode = index
        self._galleries: dict[str, Gallery] = {}
        self._matchers: dict[str, Matcher] = {}
        self._lock = threading.Lock()  # guards the two dicts above; each gallery has its own lock
        self._cameras = CameraCalibrations()
        log.debug("opened store %s (images in %s)", describe_url(self.url), self.files.images)

    # -- plumbing -------------------------------------------------------------------------------

    def close(self) -> None:
        for gallery in self._galleries.values():
            gallery.save()
        self.database.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({describe_url(self.url)!r}, data_dir={str(self.data_dir)!r})"

    @property
    def analyzer(self) -> Analyzer:
        if self._analyzer is None:
            from faceid.vision.analyzer import photo_analyzer

            self._analyzer = photo_analyzer()
        return self._analyzer

    @property
    def model_id(self) -> str:
        """The descriptor model that new faces are enrolled and searched with (the analyzer's, unless
        the store was opened with ``model_id`` to work on embeddings alone)."""
        return self._model_id or self.analyzer.model_id

    @contextlib.contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any error."""
        with (
            self.engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
            Session(bind=connection, expire_on_commit=False, autoflush=False) as session,
        ):
            try:
                with session.begin():
                    yield session
            except IntegrityError as error:
                raise ConflictError(_integrity_message(error)) from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def referenced_images(self, shas: Collection[str]) -> set[str]:
        """Those of ``shas`` that some face or event still uses."""
        found: set[str] = set()
        items = list(shas)
        with Session(self.engine) as session:
            for chunk in _chunks(items):
                found.update(session.scalars(select(Face.image_sha256).where(Face.image_sha256.in_(chunk))))
                found.update(session.scalars(select(Event.snapshot_sha256).where(Event.snapshot_sha256.in_(chunk))))
        return found

    def _log_faces(self, session: Session, face_ids: Iterable[int]) -> None:
        """Record that these faces changed, so every process's index catches up."""
        ids = sorted(set(face_ids))
        version = self._bump(session)
        if ids:
            session.execute(insert(FaceLog), [{"version": version, "face_id": f} for f in ids])

    @staticmethod
    def _bump(session: Session) -> int:
        """Move the gallery version on (also for renames, so cached names are refreshed)."""
        return int(
            session.execute(
                update(StoreState)
                .where(StoreState.id == 1)
                .values(gallery_version=StoreState.gallery_version + 1)
                .returning(StoreState.gallery_version)
            ).scalar_one()
        )

    # -- people ---------------------------------------------------------------------------------

    def _person(self, session: Session, ref: PersonRef, *, lock: bool = False) -> Person:
        """A person by id (int or digits), exact name, or external id."""
        query = select(Person)
        if lock and self.backend == "postgresql":
            query = query.with_for_update()
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise BadInputError(f"a person is named by id or name, not {type(ref).__name__}")
        if isinstance(ref, int):
            person = session.scalar(query.where(Person.id == ref))
            if person is None:
                raise NotFoundError(f"no person with id {ref}")
            return person
        person = session.scalar(query.where(Person.name_key == name_key(ref)))
        if person is None and ref.strip().isdigit():
            person = session.scalar(query.where(Person.id == int(ref.strip())))
        if person is None:
            person = session.scalar(query.where(Person.external_id == ref.strip()))
        if person is None:
            raise NotFoundError(f"no person named {ref!r}")
        return person

    def _face_counts(self, session: Session, person_ids: Sequence[int]) -> dict[int, int]:
        counts: dict[int, int] = {}
        for chunk in _chunks(list(person_ids)):
            rows = session.execute(
                select(Face.person_id, func.count()).where(Face.person_id.in_(chunk)).group_by(Face.person_id)
            )
            counts.update({int(p): int(n) for p, n in rows})
        return counts

    def _record(self, session: Session, person: Person) -> PersonRecord:
        return PersonRecord.of(person, self._face_counts(session, [person.id]).get(person.id, 0))

    def _check_free(
        self, session: Session, name: str | None, external_id: str | None, exclude: int | None = None
    ) -> None:
        if name is not None:
            taken = session.scalar(select(Person.id).where(Person.name_key == name_key(name)))
            if taken is not None and taken != exclude:
                raise ConflictError(f"a person named {name!r} already exists (id {taken})")
        if external_id is not None:
            taken = session.scalar(select(Person.id).where(Person.external_id == external_id))
            if taken is not None and taken != exclude:
                raise ConflictError(f"external id {external_id!r} already belongs to person {taken}")

    def get_person(self, ref: PersonRef) -> PersonRecord:
        with self._read() as session:
            return self._record(session, self._person(session, ref))

    def list_people(self, query: str | None = None, limit: int | None = None, offset: int = 0) -> list[PersonRecord]:
        """People ordered by name; ``query`` keeps those whose name contains it (any case) or whose
        external id equals it."""
        statement = select(Person).order_by(Person.name_key, Person.id).offset(offset)
        if query:
            pattern = "%" + name_key(query).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            statement = statement.where(or_(Person.name_key.like(pattern, escape="\\"), Person.external_id == query))
        if limit is not None:
            statement = statement.limit(limit)
        with self._read() as session:
            people = list(session.scalars(statement))
            counts = self._face_counts(session, [p.id for p in people])
            return [PersonRecord.of(p, counts.get(p.id, 0)) for p in people]

    def person_names(self, person_ids: Iterable[int | None]) -> dict[int, str]:
        """The names of these people by id (None and unknown ids are left out)."""
        ids = sorted({int(p) for p in person_ids if p is not None})
        names: dict[int, str] = {}
        if not ids:
            return names
        with self._read() as session:
            for chunk in _chunks(ids):
                rows = session.execute(select(Person.id, Person.name).where(Person.id.in_(chunk)))
                names.update({int(i): str(n) for i, n in rows})
        return names

    def find_people(self, query: str, limit: int = 20) -> list[PersonRecord]:
        return self.list_people(query=query, limit=limit)

    def count_people(self) -> int:
        with self._read() as session:
            return int(session.scalar(select(func.count()).select_from(Person)) or 0)

    def count_faces(self, model_id: str | None = None) -> int:
        statement = select(func.count()).select_from(Face)
        if model_id is not None:
            statement = statement.where(Face.model_id == model_id)
        with self._read() as session:
            return int(session.scalar(statement) or 0)

    def prepare(self, image: ImageSource, pick: Pick = "one") -> PreparedFace:
        """Detect and describe the single face of a photo (or the largest, with ``pick="largest"``)."""
        return prepare_face(self.analyzer, image, pick)

    def enroll(
        self,
        name: str,
        images: Sequence[ImageSource] | ImageSource,
        *,
        external_id: str | None = None,
        notes: str | None = None,
        metadata: dict[str, Any] | None = None,
        pick: Pick = "one",
    ) -> PersonRecord:
        """Create a person from one photo or several. Every photo must show one face (or pick the
        largest); any refused photo refuses the whole enrollment."""
        single = isinstance(images, str | os.PathLike | bytes | bytearray | memoryview | np.ndarray)
        photos: list[ImageSource] = (
            [cast(ImageSource, images)]
            if single or not isinstance(images, Sequence)
            else list(cast(Sequence[ImageSource], images))
        )
        if not photos:
            raise BadInputError("enrolling needs at least one photo")
        name = _clean_name(name)
        external_id = _clean_external_id(external_id)
        with self._read() as session:  # fail fast, before the slow part; the transaction checks again
            self._check_free(session, name, external_id)
        prepared = [self.prepare(photo, pick) for photo in photos]
        return self.enroll_prepared(name, prepared, external_id=external_id, notes=notes, metadata=metadata)

    def enroll_prepared(
        self,
        name: str,
        faces: Sequence[PreparedFace],
        *,
        external_id: str | None = None,
        notes: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> PersonRecord:
        """Create a person with faces already described (from :meth:`prepare`, an archive or a bulk import)."""
        record, _ = self._enroll(name, faces, external_id=external_id, notes=notes, metadata=metadata)
        log.info("enrolled %s (id %d) with %d face(s)", record.name, record.id, record.face_count)
        return record

    def enroll_from_event(
        self,
        event_id: int,
        name: str,
        face: PreparedFace,
        *,
        external_id: str | None = None,
        notes: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[PersonRecord, EventRecord]:
        """Create a person from the face an event is about (described by the caller, from the event's snapshot)
        and attribute the event to them, if it was of an unknown face, in one transaction: either the person,
        their face and the event's new person are all stored, or nothing is. Returns the person and the event."""
        record, event = self._enroll(
            name, [face], external_id=external_id, notes=notes, metadata=metadata, event_id=event_id
        )
        assert event is not None
        log.info("enrolled %s (id %d) from event %d", record.name, record.id, event_id)
        return record, event

    def _enroll(
        self,
        name: str,
        faces: Sequence[PreparedFace],
        *,
        external_id: str | None,
        notes: str | None,
        metadata: dict[str, Any] | None,
        event_id: int | None = None,
    ) -> tuple[PersonRecord, EventRecord | None]:
        """A new person with ``faces``; with ``event_id``, that event (when unknown) becomes theirs, all in
        one transaction."""
        name = _clean_name(name)
        external_id = _clean_external_id(external_id)
        if metadata is not None and not isinstance(metadata, dict):
            raise BadInputError("metadata must be a JSON object")
        event: EventRecord | None = None
        with self.files.writing(self.referenced_images) as batch:
            stored = [self._store_image(batch, face) for face in faces]
            with self._write() as session:
                self._check_free(session, name, external_id)
                now = utcnow()
                person = Person(
                    name=name,
                    name_key=name_key(name),
                    external_id=external_id,
                    notes=notes,
                    meta=metadata or {},
                    created_at=now,
                    updated_at=now,
                )
                session.add(person)
                session.flush()
                rows = [self._face_row(person.id, face, sha) for face, sha in zip(faces, stored, strict=True)]
                session.add_all(rows)
                session.flush()
                self._log_faces(session, [row.id for row in rows])
                if event_id is not None:
                    event = self._attribute_event(session, event_id, person.id)
                record = PersonRecord.of(person, len(rows))
        return record, event

    def _attribute_event(self, session: Session, event_id: int, person_id: int) -> EventRecord:
        """Make an unknown event ``person_id``'s (an event already of someone stays theirs). This changes nothing
        that the gallery or any index derives from, so no gallery version is bumped for it."""
        query = select(Event).where(Event.id == event_id)
        if self.backend == "postgresql":
            query = query.with_for_update()
        event = session.scalar(query)
        if event is None:
            raise NotFoundError(f"no event with id {event_id}")
        if event.person_id is None:
            event.person_id = person_id
            session.flush()
        return EventRecord.of(event)

    def enroll_embeddings(
        self,
        name: str,
        embeddings: np.ndarray,
        model_id: str | None = None,
        **person_fields: Any,
    ) -> PersonRecord:
        """Create a person from descriptors alone (no stored image), e.g. synthesised or computed elsewhere."""
        model = model_id or self.model_id
        vectors = np.asarray(embeddings, np.float32)
        vectors = vectors.reshape(1, -1) if vectors.ndim == 1 else vectors
        return self.enroll_prepared(name, [PreparedFace(embedding=v, model_id=model) for v in vectors], **person_fields)

    @staticmethod
    def _store_image(batch: Any, face: PreparedFace) -> str | None:
        if face.image is None:
            return None
        return str(batch.put(face.image, face.image_type or "bin"))

    @staticmethod
    def _face_row(person_id: int, face: PreparedFace, sha: str | None) -> Face:
        embedding = np.asarray(face.embedding, np.float32).reshape(-1)
        if not np.all(np.isfinite(embedding)):
            raise BadInputError(f"{face.label or 'a face'}: its descriptor has non-finite values")
        return Face(
            person_id=person_id,
            model_id=face.model_id,
            embedding=embedding,
            image_sha256=sha,
            image_type=face.image_type if sha else None,
            box=face.box,
            landmarks=face.landmarks,
            quality=face.quality,
            size=face.size,
            created_at=utcnow(),
        )

    def add_faces(self, ref: PersonRef, images: Sequence[ImageSource], pick: Pick = "one") -> list[FaceRecord]:
        """Add photos to an existing person (each must show one face, or pick the largest)."""
        with self._read() as session:
            self._person(session, ref)
        prepared = [self.prepare(image, pick) for image in images]
        return self.add_prepared(ref, prepared)

    def add_prepared(self, ref: PersonRef, faces: Sequence[PreparedFace]) -> list[FaceRecord]:
        if not faces:
            raise BadInputError("no faces to add")
        with self.files.writing(self.referenced_images) as batch:
            stored = [self._store_image(batch, face) for face in faces]
            with self._write() as session:
                person = self._person(session, ref, lock=True)
                rows = [self._face_row(person.id, face, sha) for face, sha in zip(faces, stored, strict=True)]
                session.add_all(rows)
                person.updated_at = utcnow()
                session.flush()
                self._log_faces(session, [row.id for row in rows])
                return [FaceRecord.of(row) for row in rows]

    def faces(self, ref: PersonRef, with_embeddings: bool = False) -> list[FaceRecord]:
        with self._read() as session:
            person = self._person(session, ref)
            rows = session.scalars(select(Face).where(Face.person_id == person.id).order_by(Face.id))
            return [FaceRecord.of(row, with_embeddings) for row in rows]

    def get_face(self, face_id: int) -> FaceRecord:
        with self._read() as session:
            face = session.get(Face, face_id)
            if face is None:
                raise NotFoundError(f"no face with id {face_id}")
            return FaceRecord.of(face, with_embedding=True)

    def face_image(self, face_id: int) -> tuple[bytes, str]:
        """The stored source photo of a face and its type ("jpg", "png"...)."""
        face = self.get_face(face_id)
        if face.image_sha256 is None or face.image_type is None:
            raise NotFoundError(f"face {face_id} has no stored image")
        return self.files.read(face.image_sha256, face.image_type), face.image_type

    def first_faces(self, person_ids: Sequence[int]) -> dict[int, FirstFace]:
        """Each person's earliest face that has a stored image (what shows them as a thumbnail), by person id;
        people without one are left out."""
        found: dict[int, FirstFace] = {}
        if not person_ids:
            return found
        with self._read() as session:
            for chunk in _chunks(list(dict.fromkeys(person_ids))):
                first = (
                    select(Face.person_id, func.min(Face.id).label("face_id"))
                    .where(Face.person_id.in_(chunk), Face.image_sha256.is_not(None))
                    .group_by(Face.person_id)
                    .subquery()
                )
                rows = session.execute(
                    select(first.c.person_id, Face.id, Face.image_sha256).join(Face, Face.id == first.c.face_id)
                )
                found.update({int(p): FirstFace(int(f), str(sha)) for p, f, sha in rows})
        return found

    def face_images(self, face_ids: Sequence[int] | None = None) -> list[FaceImage]:
        """Where each face's stored photo is and where its landmarks are in it, with whose face it is, in face
        id order: the faces ``face_ids`` (those that exist), or every face of every model."""
        statement = (
            select(Face.id, Face.person_id, Person.name, Face.image_sha256, Face.image_type, Face.landmarks)
            .join(Person, Person.id == Face.person_id)
            .order_by(Face.id)
        )
        with self._read() as session:
            if face_ids is None:
                rows = list(session.execute(statement))
            else:
                rows = []
                for chunk in _chunks(sorted({int(f) for f in face_ids})):
                    rows.extend(session.execute(statement.where(Face.id.in_(chunk))))
        return [FaceImage(int(f), int(p), str(n), sha, kind, marks) for f, p, n, sha, kind, marks in rows]

    def faces_by_model(self) -> dict[str, int]:
        """How many faces each descriptor model has."""
        with self._read() as session:
            rows = session.execute(select(Face.model_id, func.count()).group_by(Face.model_id)).all()
        return {str(m): int(n) for m, n in rows}

    def gallery_version(self) -> int:
        """The counter that every change to the faces (or to a name) moves on: equal versions, equal gallery."""
        with self._read() as session:
            return current_version(session)

    def gallery_faces(self, model_id: str | None = None) -> GalleryFaces:
        """Every face of ``model_id`` (default: the store's model) with its descriptor, in face id order, and the
        gallery version they are of (read in the same transaction)."""
        model = model_id or self.model_id
        with self._read() as session:
            version = current_version(session)
            rows = session.execute(
                select(Face.id, Face.person_id, Face.embedding, Face.image_sha256)
                .where(Face.model_id == model)
                .order_by(Face.id)
            ).all()
        return GalleryFaces(
            model_id=model,
            version=version,
            face_ids=np.array([r[0] for r in rows], np.int64),
            person_ids=np.array([r[1] for r in rows], np.int64),
            embeddings=np.stack([np.asarray(r[2], np.float32).reshape(-1) for r in rows])
            if rows
            else np.zeros((0, 0), np.float32),
            has_image=np.array([r[3] is not None for r in rows], bool),
        )

    def remove_face(self, face_id: int) -> FaceRecord:
        """Delete one face (and its image file if nothing else uses it)."""
        with self.files.removing(self.referenced_images) as batch, self._write() as session:
            face = session.get(Face, face_id)
            if face is None:
                raise NotFoundError(f"no face with id {face_id}")
            record = FaceRecord.of(face)
            if face.image_sha256 and face.image_type:
                batch.declare([(face.image_sha256, face.image_type)])
            session.delete(face)
            session.execute(update(Person).where(Person.id == record.person_id).values(updated_at=utcnow()))
            session.flush()
            self._log_faces(session, [face_id])
        return record

    def update_person(
        self,
        ref: PersonRef,
        *,
        name: str | None = None,
        external_id: str | None = None,
        notes: str | None = None,
        metadata: dict[str, Any] | None = None,
        merge_metadata: bool = False,
        clear_external_id: bool = False,
    ) -> PersonRecord:
        """Rename or edit a person. ``metadata`` replaces theirs, or is merged into it with ``merge_metadata``."""
        new_name = _clean_name(name) if name is not None else None
        new_external = _clean_external_id(external_id)
        if metadata is not None and not isinstance(metadata, dict):
            raise BadInputError("metadata must be a JSON object")
        with self._write() as session:
            person = self._person(session, ref, lock=True)
            self._check_free(session, new_name, new_external, exclude=person.id)
            if new_name is not None:
                person.name, person.name_key = new_name, name_key(new_name)
                self._bump(session)
            if clear_external_id:
                person.external_id = None
            elif new_external is not None:
                person.external_id = new_external
            if notes is not None:
                person.notes = notes or None
            if metadata is not None:
                person.meta = {**(person.meta or {}), **metadata} if merge_metadata else dict(metadata)
            person.updated_at = utcnow()
            session.flush()
            return self._record(session, person)

    def merge_people(self, keep: PersonRef, absorb: PersonRef) -> PersonRecord:
        """Move every face and event of ``absorb`` to ``keep`` and delete ``absorb``. ``keep``'s name stays;
        their notes are joined, metadata combined (``keep`` wins), and ``absorb``'s external id kept if
        ``keep`` has none."""
        with self._write() as session:
            kept = self._person(session, keep, lock=True)
            gone = self._person(session, absorb, lock=True)
            if kept.id == gone.id:
                raise BadInputError("cannot merge a person with themselves")
            moved = list(session.scalars(select(Face.id).where(Face.person_id == gone.id)))
            session.execute(update(Face).where(Face.person_id == gone.id).values(person_id=kept.id))
            session.execute(update(Event).where(Event.person_id == gone.id).values(person_id=kept.id))
            from faceid.store.inbox_schema import FaceNegative, Visitor  # the inbox's: named visitors, negatives

            session.execute(update(Visitor).where(Visitor.person_id == gone.id).values(person_id=kept.id))
            session.execute(update(FaceNegative).where(FaceNegative.person_id == gone.id).values(person_id=kept.id))
            external = gone.external_id
            notes = "\n".join(n for n in (kept.notes, gone.notes) if n)
            metadata = {**(gone.meta or {}), **(kept.meta or {})}
            session.delete(gone)
            session.flush()
            if kept.external_id is None and external is not None:
                kept.external_id = external
            kept.notes = notes or None
            kept.meta = metadata
            kept.updated_at = utcnow()
            session.flush()
            self._log_faces(session, moved)
            return self._record(session, kept)

    def delete_person(self, ref: PersonRef) -> dict[str, Any]:
        """Delete a person with everything of theirs: faces, embeddings, events and the image files
        that nothing else uses. Returns what was deleted."""
        with self.files.removing(self.referenced_images) as batch, self._write() as session:
            person = self._person(session, ref, lock=True)
            faces = session.execute(
                select(Face.id, Face.image_sha256, Face.image_type).where(Face.person_id == person.id)
            ).all()
            events = session.execute(
                select(Event.id, Event.snapshot_sha256, Event.snapshot_type).where(Event.person_id == person.id)
            ).all()
            batch.declare([(sha, kind) for _, sha, kind in [*faces, *events] if sha and kind])
            session.execute(delete(Event).where(Event.person_id == person.id))
            session.execute(delete(Face).where(Face.person_id == person.id))
            session.execute(delete(Person).where(Person.id == person.id))
            self._log_faces(session, [f[0] for f in faces])
            summary = {"id": person.id, "name": person.name, "faces": len(faces), "events": len(events)}
        log.info("deleted %s (id %d): %d face(s), %d event(s)", summary["name"], summary["id"], len(faces), len(events))
        return summary

    # -- events ---------------------------------------------------------------------------------

    def record_event(
        self,
        *,
        person_id: int | None,
        source: str | None = None,
        time: datetime | None = None,
        distance: float | None = None,
        confidence: float | None = None,
        snapshot: bytes | None = None,
        track_id: str | None = None,
        idempotency_key: str | None = None,
        model_id: str | None = None,
        box: Sequence[float] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Record a recognition (``person_id`` None = unknown). Repeating an ``idempotency_key`` returns
        the event recorded the first time and changes nothing."""
        if idempotency_key is not None:
            existing = self.event_by_key(idempotency_key)
            if existing is not None:
                return existing
        snapshot_type = source_bytes(snapshot)[1] if snapshot is not None else None
        try:
            with self.files.writing(self.referenced_images) as batch:
                sha = batch.put(snapshot, snapshot_type or "bin") if snapshot is not None else None
                with self._write() as session:
                    if person_id is not None and session.get(Person, person_id) is None:
                        raise NotFoundError(f"no person with id {person_id}")
                    event = Event(
                        time=time or utcnow(),
                        source=source,
                        person_id=person_id,
                        distance=distance,
                        confidence=confidence,
                        snapshot_sha256=sha,
                        snapshot_type=snapshot_type if sha else None,
                        track_id=track_id,
                        idempotency_key=idempotency_key,
                        model_id=model_id,
                        box=[float(v) for v in box] if box is not None else None,
                        meta=metadata or {},
                        created_at=utcnow(),
                    )
                    session.add(event)
                    session.flush()
                    record = EventRecord.of(event)
            if person_id is None and record.metadata.get("template"):  # an unknown face: into the inbox
                from faceid.store.visitors import observe_event

                observe_event(self, record.id, record.model_id)
            return record
        except ConflictError:
            if idempotency_key is not None:  # another process recorded it first
                existing = self.event_by_key(idempotency_key)
                if existing is not None:
                    return existing
            raise

    def event_by_key(self, key: str) -> EventRecord | None:
        """The event recorded with idempotency key ``key``, if any."""
        with self._read() as session:
            event = session.scalar(select(Event).where(Event.idempotency_key == key))
            return EventRecord.of(event) if event is not None else None

    def get_event(self, event_id: int) -> EventRecord:
        """One event by id (NotFoundError when there is none)."""
        with self._read() as session:
            event = session.get(Event, event_id)
            if event is None:
                raise NotFoundError(f"no event with id {event_id}")
            return EventRecord.of(event)

    def events_after(self, event_id: int, limit: int = 500) -> list[EventRecord]:
        """Events with an id above ``event_id``, oldest first: what was recorded since (ids only grow)."""
        with self._read() as session:
            rows = session.scalars(select(Event).where(Event.id > event_id).order_by(Event.id).limit(limit))
            return [EventRecord.of(e) for e in rows]

    def last_event_id(self, *, unknown_only: bool = False) -> int:
        """The newest event's id (of an unknown face, with ``unknown_only``); 0 when there is none."""
        statement = select(func.max(Event.id))
        if unknown_only:
            statement = statement.where(Event.person_id.is_(None))
        with self._read() as session:
            return int(session.scalar(statement) or 0)

    def count_events(self, *, unknown_only: bool = False, since: datetime | None = None) -> int:
        """How many events there are (of unknown faces, with ``unknown_only``; at or after ``since``)."""
        statement = select(func.count()).select_from(Event)
        if unknown_only:
            statement = statement.where(Event.person_id.is_(None))
        if since is not None:
            statement = statement.where(Event.time >= since)
        with self._read() as session:
            return int(session.scalar(statement) or 0)

    def list_events(
        self,
        *,
        person: PersonRef | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        unknown_only: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[EventRecord]:
        """Events, newest first."""
        statement = select(Event).order_by(Event.time.desc(), Event.id.desc()).limit(limit).offset(offset)
        with self._read() as session:
            if person is not None:
                statement = statement.where(Event.person_id == self._person(session, person).id)
            if unknown_only:
                statement = statement.where(Event.person_id.is_(None))
            if source is not None:
                statement = statement.where(Event.source == source)
            if since is not None:
                statement = statement.where(Event.time >= since)
            if until is not None:
                statement = statement.where(Event.time < until)
            return [EventRecord.of(e) for e in session.scalars(statement)]

    def delete_events(self, event_ids: Sequence[int]) -> int:
        with self.files.removing(self.referenced_images) as batch, self._write() as session:
            rows = session.execute(
                select(Event.id, Event.snapshot_sha256, Event.snapshot_type).where(Event.id.in_(list(event_ids)))
            ).all()
            batch.declare([(sha, kind) for _, sha, kind in rows if sha and kind])
            session.execute(delete(Event).where(Event.id.in_([r[0] for r in rows])))
            return len(rows)

    # -- identification -------------------------------------------------------------------------

    def gallery(self, model_id: str | None = None) -> Gallery:
        model = model_id or self.model_id
        with self._lock:
            gallery = self._galleries.get(model)
            if gallery is None:
                gallery = Gallery(self.engine, model, self.index_mode, cache_dir=self.data_dir / "index")
                self._galleries[model] = gallery
            return gallery

    def matcher(self, model_id: str | None = None) -> Matcher:
        model = model_id or self.model_id
        matcher = self._matchers.get(model)
        if matcher is None:
            matcher = Matcher(self.gallery(model), self._load_calibration(model))
            with self._lock:
                matcher = self._matchers.setdefault(model, matcher)
        return matcher

    def identify(self, image: ImageSource, top_k: int = 5, max_faces: int | None = None) -> list[Identification]:
        """Identify every face in a photo (largest first). A photo with no face gives an empty list."""
        from faceid.vision.image import load_image

        rgb = load_image(image)
        detections = self.analyzer.detect(rgb)
        if max_faces is not None:
            detections = detections[:max_faces]
        return [result for _, result in self.identify_faces(rgb, detections, top_k)]

    def identify_faces(
        self, rgb: np.ndarray, detections: Sequence[Detection], top_k: int = 5, camera: str | None = None
    ) -> list[tuple[DetectedFace, Identification]]:
        """Describe faces already found in ``rgb`` and identify each: the face (with its descriptor) and the
        answer, whose box is the detection's."""
        faces = self.analyzer.faces_from_detections(rgb, list(detections))
        return [(face, self._identify_face(face, top_k, self.model_id, camera)) for face in faces]

    def _identify_face(
        self, face: DetectedFace, top_k: int, model_id: str, camera: str | None = None
    ) -> Identification:
        result = self.identify_embedding(face.embedding, top_k=top_k, model_id=model_id, camera=camera)
        return _with_box(result, [round(float(v), 2) for v in np.asarray(face.box).reshape(-1)])

    def identify_embedding(
        self, embedding: np.ndarray, top_k: int = 5, model_id: str | None = None, camera: str | None = None
    ) -> Identification:
        """The open-set answer for one descriptor; ``camera`` applies that camera's own calibration."""
        matcher = self.matcher(model_id)
        # Two at least: the decision compares the best person with the second (ambiguous).
        ranked = matcher.rank(np.asarray(embedding, np.float32).reshape(-1), max(top_k, 2))
        names = matcher.gallery.names([c.person_id for c in ranked])
        candidates = [
            Candidate(c.person_id, names.get(c.person_id, "?"), c.distance, c.score, c.face_id) for c in ranked
        ]
        result = matcher.decide(candidates, self.camera_calibration(camera, matcher) if camera else None)
        from faceid.store.corrections import apply_negatives  # "not this person" corrections

        return apply_negatives(self, result, embedding, matcher)

    def camera_calibration(self, camera: str, matcher: Matcher | None = None) -> CameraCalibration:
        """What decides for ``camera``: the model's calibration, scaled by the camera's own strangers once it has
        seen enough (faceid.store.camera)."""
        from faceid.thresholds import CAMERA_COHORT_MAX

        matcher = matcher or self.matcher()
        model = matcher.gallery.model_id

        def templates() -> list[np.ndarray]:
            with self._read() as session:
                rows = session.execute(
                    select(Event.meta)
                    .where(Event.source == camera, Event.person_id.is_(None), Event.model_id == model)
                    .order_by(Event.id.desc())
                    .limit(2 * CAMERA_COHORT_MAX)
                ).all()
            found = [
                np.asarray(m["template"], np.float32) for (m,) in rows if isinstance(m, dict) and m.get("template")
            ]
            dim = matcher.calibration.dim if matcher.calibration is not None else descriptor_dimensions(model)
            return [t for t in found if t.shape == (dim,)]

        with self._read() as session:
            version = (
                session.scalar(select(StoreState.gallery_version).where(StoreState.id == 1)),
                session.scalar(select(func.max(Event.id)).where(Event.source == camera)),
            )
        return self._cameras.get(camera, matcher, templates, version)

    def cameras(self) -> list[str]:
        """Every camera (event source) that recorded an event."""
        with self._read() as session:
            return sorted(s for s in session.scalars(select(Event.source).distinct()) if s)

    # -- calibration ----------------------------------------------------------------------------

    def _load_calibration(self, model_id: str) -> Calibration | None:
        """The model's calibration: the store's own (``faceid calibrate``, or a fine-tune's), else the one
        shipped with faceid for that model, else None (the uncalibrated distance rule)."""
        with self._read() as session:
            row = session.get(ModelVersion, model_id)
            if row is not None and row.threshold is not None:
                return Calibration.from_row(row)
        from faceid.store.shipped import load_shipped

        return load_shipped(model_id)

    def calibration(self, model_id: str | None = None) -> Calibration | None:
        return self._load_calibration(model_id or self.model_id)

    def save_calibration(self, calibration: Calibration) -> None:
        """Store the threshold, method and cohort for ``calibration.model_id`` (replacing any before)."""
        with self._write() as session:
            row = session.get(ModelVersion, calibration.model_id)
            if row is None:
                row = ModelVersion(model_id=calibration.model_id, dim=calibration.dim, created_at=utcnow())
                session.add(row)
            calibration.fill_row(row)
            row.updated_at = utcnow()
        self._matchers.pop(calibration.model_id, None)

    # -- inspection -----------------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Consistency report: every face's image exists, every stored image is used, no person without
        faces from an interrupted import, the gallery log is in step."""
        with self._read() as session:
            used = {
                (sha, kind)
                for sha, kind in session.execute(select(Face.image_sha256, Face.image_type)).all()
                if sha and kind
            }
            used |= {
                (sha, kind)
                for sha, kind in session.execute(select(Event.snapshot_sha256, Event.snapshot_type)).all()
                if sha and kind
            }
            people = int(session.scalar(select(func.count()).select_from(Person)) or 0)
            faces = int(session.scalar(select(func.count()).select_from(Face)) or 0)
            faceless = list(
                session.scalars(select(Person.name).where(~select(Face.id).where(Face.person_id == Person.id).exists()))
            )
        on_disk = {path.name for _, path in self.files.all_files()}
        expected = {f"{sha}.{kind}" for sha, kind in used}
        return {
            "people": people,
            "faces": faces,
            "images": len(on_disk),
            "missing_images": sorted(expected - on_disk),
            "orphan_images": sorted(on_disk - expected),
            "people_without_faces": sorted(faceless),
            "pending_journals": sorted(p.name for p in self.files.journals.glob("*.json")),
            "ok": not (expected - on_disk) and not (on_disk - expected),
        }

    def stats(self) -> dict[str, Any]:
        with self._read() as session:
            models = session.execute(select(Face.model_id, func.count()).group_by(Face.model_id)).all()
            return {
                "database": describe_url(self.url),
                "backend": self.backend,
                "data_dir": str(self.data_dir),
                "people": int(session.scalar(select(func.count()).select_from(Person)) or 0),
                "faces_by_model": {m: int(n) for m, n in models},
                "events": int(session.scalar(select(func.count()).select_from(Event)) or 0),
            }


def _with_box(result: Identification, box: list[float]) -> Identification:
    from dataclasses import replace

    return replace(result, box=box)


def _integrity_message(error: IntegrityError) -> str:
    text = str(error.orig).lower()
    if "name_key" in text:
        return "a person with that name already exists"
    if "external_id" in text:
        return "that external id already belongs to another person"
    if "idempotency_key" in text:
        return "an event with that idempotency key already exists"
    if "foreign key" in text:
        return "it refers to a person or face that no longer exists"
    return f"the change conflicts with the store's contents ({error.orig})"


def open_store(
    data_dir: str | os.PathLike[str] | None = None,
    db: str | None = None,
    *,
    analyzer: Analyzer | None = None,
    index: str = "auto",
    model_id: str | None = None,
    database: Database | None = None,
) -> Store:
    """Open (creating or migrating if needed) the store in ``data_dir`` / at ``db`` (or on ``database``).

    The store follows the active descriptor version; with ``model_id`` it works on embeddings of that model
    alone and loads no model (benchmarks).
    """
    if model_id is not None:
        return Store(data_dir, db, analyzer=analyzer, index=index, model_id=model_id, database=database)
    from faceid.store.versions import VersionedStore

    return VersionedStore(data_dir, db, analyzer=analyzer, index=index, database=database)
