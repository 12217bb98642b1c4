"""Descriptor model versions in the store: register, activate with a background re-embed, switch at once, roll back.

A version is a descriptor model: dlib's own (built in, the first parent of all) or a fine-tuned ONNX
file copied into ``<data dir>/models/``, with its sha256, its parent, its fine-tune report and the
scale its descriptors were given so that 0.6 stays the decision threshold. Its ``model_id`` is the one
the faces table and the calibration table (``model_versions``) already key everything by.

Activation re-embeds every stored face with the new version while the active one keeps answering:
new descriptors are staged in ``face_embeddings``, batch by batch, from each face's stored photo and
landmarks. When all are staged, one write transaction keeps the old descriptors in ``face_embeddings``
(for rollback), moves the new ones into ``faces``, logs every face as changed and points
``descriptor_state`` at the new version. Searches started before that commit are answered wholly by
the old version; a search that spans the commit notices (the active version changed under it) and is
answered again by the new one, so no answer mixes versions and none fails. Rolling back activates the
parent again, reusing the kept descriptors, so only faces enrolled since need their photos re-embedded.

Use :class:`VersionedStore` (a :class:`faceid.store.Store` that follows the active version) wherever
photos are enrolled or identified, so that the embedder and the gallery always belong to one version.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import JSON, BigInteger, Float, Integer, String, delete, func, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tqdm import tqdm

from faceid.errors import BadInputError, ConflictError, ImageError, NotFoundError
from faceid.models.registry import sha256_of
from faceid.plain_json import json_default
from faceid.store.photos import Pick
from faceid.store.records import Identification
from faceid.store.schema import MODEL_ID_MAX, Face
from faceid.store.store import Store
from faceid.store.types import Embedding, UTCDateTime, utcnow
from faceid.vision.image import ImageSource

if TYPE_CHECKING:
    from faceid.store.database import Database
    from faceid.store.photos import PreparedFace
    from faceid.store.records import EventRecord, FaceRecord, PersonRecord
    from faceid.vision.analyzer import Analyzer
    from faceid.vision.embed import DescriptorEmbedder
    from faceid.vision.types import Detection, Embedder
    from faceid.vision.types import Face as DetectedFace

log = logging.getLogger(__name__)

MODELS_FOLDER = "models"
RUNS_FOLDER = "finetune"
REEMBED_BATCH = 64
# A search that saw the active version change under it is answered again; two switches within one
# search are already unlikely, three would mean switching in a loop.
IDENTIFY_ATTEMPTS = 3


class VersionBase(DeclarativeBase):
    """The version tables, declared apart from the store's own models (created by migration 0002)."""


class DescriptorVersion(VersionBase):
    __tablename__ = "descriptor_versions"

    model_id: Mapped[str] = mapped_column(String(MODEL_ID_MAX), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(MODEL_ID_MAX))
    kind: Mapped[str] = mapped_column(String(20))  # "builtin" or "finetuned"
    onnx_file: Mapped[str | None] = mapped_column(String(500))  # relative to the data folder
    onnx_sha256: Mapped[str | None] = mapped_column(String(64))
    scale: Mapped[float | None] = mapped_column(Float)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FaceEmbedding(VersionBase):
    """Descriptors of faces by versions other than the one in ``faces``: staged (activation) or kept (rollback)."""

    __tablename__ = "face_embeddings"

    face_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # faces.id, ON DELETE CASCADE
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_MAX), primary_key=True)
    embedding: Mapped[np.ndarray] = mapped_column(Embedding())


class DescriptorState(VersionBase):
    __tablename__ = "descriptor_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    active_model_id: Mapped[str | None] = mapped_column(String(MODEL_ID_MAX))  # None: the built-in model
    previous_model_id: Mapped[str | None] = mapped_column(String(MODEL_ID_MAX))
    activating_model_id: Mapped[str | None] = mapped_column(String(MODEL_ID_MAX))
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    switched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


@dataclass
class VersionRecord:
    model_id: str
    kind: str
    parent_id: str | None
    onnx_file: str | None
    onnx_sha256: str | None
    scale: float | None
    created_at: datetime
    report: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, row: DescriptorVersion) -> VersionRecord:
        return cls(
            row.model_id, row.kind, row.parent_id, row.onnx_file, row.onnx_sha256, row.scale, row.created_at, row.report
        )

    def headline(self) -> str:
        """The report's main figures, in one line."""
        if not self.report:
            return "dlib's trained model" if self.kind == "builtin" else ""
        parts = []
        for key, label in (("guard", "guard"), ("heldout_people", "held-out people")):
            section = self.report.get(key)
            if section and section.get("pairs"):
                before, after = section["original"]["accuracy"], section["new"]["accuracy"]
                parts.append(f"{label} {100 * before:.2f}% -> {100 * after:.2f}%")
        return ", ".join(parts)

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model_id": self.model_id,
            "kind": self.kind,
            "parent": self.parent_id,
            "onnx_file": self.onnx_file,
            "onnx_sha256": self.onnx_sha256,
            "scale": self.scale,
            "created_at": self.created_at,
            "summary": self.headline(),
        }
        if full:
            data["report"] = self.report
        return data


@dataclass
class ActivationProgress:
    target: str
    done: int = 0
    total: int = 0
    finished: bool = False
    error: BaseException | None = None
    result: dict[str, Any] | None = None


class Activation:
    """An activation running in a background thread: ``progress`` while it runs, ``wait()`` for its outcome."""

    def __init__(self, store: VersionedStore, target: str, progress_bar: bool) -> None:
        self.progress = ActivationProgress(target)
        self._thread = threading.Thread(target=self._run, args=(store, target, progress_bar), daemon=True)
        self._thread.start()

    def _run(self, store: VersionedStore, target: str, progress_bar: bool) -> None:
        try:
            self.progress.result = store.activate(target, progress=progress_bar, report=self._report)
        except BaseException as error:  # handed to the caller of wait()
            self.progress.error = error
        finally:
            self.progress.finished = True

    def _report(self, done: int, total: int) -> None:
        self.progress.done, self.progress.total = done, total

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the activation is still running")
        if self.progress.error is not None:
            raise self.progress.error
        assert self.progress.result is not None
        return self.progress.result


class VersionedStore(Store):
    """A store whose embedder, gallery and calibration always belong to the active descriptor version.

    ``analyzer`` supplies the face detector and landmarks (its embedder is replaced per version).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        db: str | None = None,
        *,
        analyzer: Analyzer | None = None,
        index: str = "auto",
        threads: int | None = None,
        model_id: str | None = None,
        database: Database | None = None,
    ) -> None:
        """``model_id`` pins the store to one model's embeddings (benchmarks, tests that enroll descriptors
        directly): it then loads no model and follows no version."""
        if db is not None and not isinstance(db, str):  # a SQLAlchemy URL, e.g. another store's ``url``
            db = db.render_as_string(hide_password=False)
        super().__init__(data_dir, db, analyzer=analyzer, index=index, model_id=model_id, database=database)
        self._pinned = model_id
        self._base_analyzer = analyzer
        self._mirror = bool(analyzer is not None and analyzer.mirror)
        self._threads = threads
        self._embedders: dict[str, Embedder] = {}
        self._analyzers: dict[str, Analyzer] = {}
        self._versions_lock = threading.RLock()  # guards the two dicts above
        self._ensure_builtin()

    def __enter__(self) -> VersionedStore:
        return self

    # -- the versions ----------------------------------------------------------------------------

    @staticmethod
    def builtin_model_id() -> str:
        """dlib's own descriptor: the first parent of every version."""
        from faceid.vision.embed import DESCRIPTOR_MODEL_ID

        return DESCRIPTOR_MODEL_ID

    @staticmethod
    def default_model_id() -> str:
        """The version a new store starts with (``descriptor_state.active_model_id`` NULL): dlib's descriptor
        fused with SFace's where photos are described that way (faceid.vision.detect.PHOTO_SECOND_OPINION)."""
        from faceid.vision.detect import PHOTO_SECOND_OPINION
        from faceid.vision.embed import DESCRIPTOR_MODEL_ID

        if PHOTO_SECOND_OPINION == "sface":
            from faceid.vision.sface import fused_model_id

            return fused_model_id(DESCRIPTOR_MODEL_ID)
        return DESCRIPTOR_MODEL_ID

    def _ensure_builtin(self) -> None:
        builtin, default = self.builtin_model_id(), self.default_model_id()
        with self._read() as session:
            present = all(session.get(DescriptorVersion, m) is not None for m in {builtin, default})
            state = session.get(DescriptorState, 1) is not None
        if present and state:
            return
        try:
            with self._write() as session:
                if session.get(DescriptorVersion, builtin) is None:
                    session.add(
                        DescriptorVersion(model_id=builtin, kind="builtin", parent_id=None, created_at=utcnow())
                    )
                if default != builtin and session.get(DescriptorVersion, default) is None:
                    # A root like dlib's own: rolling back from the default would not go back to anything.
                    session.add(DescriptorVersion(model_id=default, kind="fused", parent_id=None, created_at=utcnow()))
                if session.get(DescriptorState, 1) is None:
                    session.add(DescriptorState(id=1, done=0, total=0, updated_at=utcnow()))
        except ConflictError:
            pass  # another process added them first

    def _row_state(self, session: Any) -> DescriptorState:
        state = session.get(DescriptorState, 1)
        assert state is not None, "descriptor_state has no row (the store was not opened by VersionedStore)"
        return state

    def face_model_id(self, version_id: str) -> str:
        """The model id that faces, galleries and calibrations of a version carry: the version's own, whatever
        the pipeline (mirror averaging, detector), since every pipeline's descriptors share the version's space."""
        return version_id

    def active_model_id(self) -> str:
        """The active version's id: one primary-key read, cheap enough to make before every search."""
        with self._read() as session:
            active = session.scalar(select(DescriptorState.active_model_id).where(DescriptorState.id == 1))
        return active or self.default_model_id()

    def get_version(self, ref: str) -> VersionRecord:
        """A version by id, or by a unique prefix of it."""
        with self._read() as session:
            row = session.get(DescriptorVersion, ref)
            if row is None:
                matches = list(
                    session.scalars(select(DescriptorVersion).where(DescriptorVersion.model_id.startswith(ref)))
                )
                if len(matches) > 1:
                    raise BadInputError(f"{ref!r} names several versions: {', '.join(m.model_id for m in matches)}")
                row = matches[0] if matches else None
            if row is None:
                raise NotFoundError(f"no model version {ref!r} (faceid versions list shows them)")
            return VersionRecord.of(row)

    def active_version(self) -> VersionRecord:
        return self.get_version(self.active_model_id())

    def list_versions(self) -> list[VersionRecord]:
        with self._read() as session:
            rows = session.scalars(select(DescriptorVersion).order_by(DescriptorVersion.created_at))
            return [VersionRecord.of(row) for row in rows]

    def onnx_path(self, version: VersionRecord) -> str:
        """The ONNX file of a version (the built-in model's is built and cached on first use); a fused
        version's is its dlib part's (SFace's file is installed with faceid)."""
        from faceid.vision.sface import split_fused_id

        if (fused := split_fused_id(version.model_id)) is not None:
            return self.onnx_path(self.get_version(fused[0]))
        if version.onnx_file is None:
            from faceid.vision.embed import descriptor_onnx_path

            return descriptor_onnx_path()
        return str(self.data_dir / version.onnx_file)

    def new_run_dir(self) -> Path:
        stamp = utcnow().strftime("%Y%m%d-%H%M%S")
        folder = self.data_dir / RUNS_FOLDER / f"run-{stamp}"
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = self.data_dir / RUNS_FOLDER / f"run-{stamp}-{suffix}"
        return folder

    def register_version(
        self,
        onnx_file: str | os.PathLike[str],
        *,
        parent: str | None = None,
        report: dict[str, Any] | None = None,
        scale: float | None = None,
    ) -> VersionRecord:
        """Copy a descriptor ONNX file into the store as a new version (not activated). Same bytes, same version."""
        from faceid.models.descriptor import INPUT_NAME, OUTPUT_NAME
        from faceid.models.runtime import OnnxSession

        source = Path(onnx_file)
        if not source.is_file():
            raise BadInputError(f"{source}: no such model file")
        try:
            runtime = OnnxSession(source, threads=1)
        except Exception as error:  # ONNX Runtime raises its own exception types for unreadable files
            raise BadInputError(f"{source}: not a usable ONNX model ({error})") from None
        if runtime.input_names != [INPUT_NAME] or runtime.output_names != [OUTPUT_NAME]:
            raise BadInputError(f"{source}: a descriptor model takes {INPUT_NAME!r} and gives {OUTPUT_NAME!r}")
        sha = sha256_of(source)
        model_id = f"ft-{sha[:12]}"
        if parent is not None:
            self.get_version(parent)
        folder = self.data_dir / MODELS_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{model_id}.onnx"
        if not target.is_file() or sha256_of(target) != sha:
            temporary = target.with_name(target.name + ".part")
            shutil.copyfile(source, temporary)
            os.replace(temporary, target)
        with self._write() as session:
            row = session.get(DescriptorVersion, model_id)
            if row is None:
                row = DescriptorVersion(
                    model_id=model_id,
                    kind="finetuned",
                    parent_id=parent,
                    onnx_file=str(target.relative_to(self.data_dir)),
                    onnx_sha256=sha,
                    scale=scale,
                    report=_json_safe(report),
                    created_at=utcnow(),
                )
                session.add(row)
            record = VersionRecord.of(row)
        log.info("registered model version %s (parent %s)", model_id, parent)
        return record

    def register_fused(self, version: VersionRecord, weight: float) -> VersionRecord:
        """The version that fuses ``version``'s descriptor with SFace's (same ONNX file, same parent), so a
        fine-tune of a fused model is fused too. Same version, same id: registering it again returns it."""
        from faceid.vision.sface import fused_model_id

        model_id = fused_model_id(version.model_id, weight)
        with self._write() as session:
            row = session.get(DescriptorVersion, model_id)
            if row is None:
                row = DescriptorVersion(
                    model_id=model_id,
                    kind="fused",
                    parent_id=version.parent_id,
                    onnx_file=version.onnx_file,
                    onnx_sha256=version.onnx_sha256,
                    scale=version.scale,
                    report=_json_safe(version.report) if version.report else None,
                    created_at=utcnow(),
                )
                session.add(row)
            record = VersionRecord.of(row)
        log.info("registered model version %s (parent %s)", model_id, version.parent_id)
        return record

    def calibrate_like_parent(
        self, model_id: str, people: Sequence[str], embeddings: np.ndarray, source: str = ""
    ) -> dict[str, Any]:
        """Give version ``model_id`` an open-set calibration like its parent's (same method, target and
        gallery size), from descriptors of labelled photos of people the version was not trained on.

        Nothing is done when the parent has no calibration (both then decide by the plain distance rule,
        which the fine-tune's rescaling already kept at 0.6) or when there are too few people.
        """
        from faceid.store.calibrate import MIN_IDENTITIES, LabelledFaces, calibrate_faces
        from faceid.store.match import METHOD_DISTANCE, Calibration
        from faceid.vision.sface import descriptor_dimensions, split_fused_id

        version = self.get_version(model_id)
        like = version.parent_id
        fused_parent = split_fused_id(like) if like else None
        if fused_parent is not None and split_fused_id(version.model_id) is None:
            like = fused_parent[0]  # a plain fine-tune of a fused parent is calibrated like the parent's dlib part
        parent = self.calibration(self.face_model_id(like)) if like else None
        if parent is None:
            return {"calibrated": False, "reason": "the parent version has no calibration; the distance rule applies"}
        names = sorted(set(people))
        # Held-out descriptors of another length (a fused version's, from a fine-tune that describes with its
        # dlib part alone) cannot calibrate it: it inherits its parent's stranger distances.
        comparable = np.asarray(embeddings).ndim == 2 and np.asarray(embeddings).shape[1] == descriptor_dimensions(
            version.model_id
        )
        if len(names) < MIN_IDENTITIES or not comparable:
            inherited = parent.details.get("distance_rule")
            if not inherited:
                return {
                    "calibrated": False,
                    "reason": f"{len(names)} held-out people, calibration needs {MIN_IDENTITIES}: run faceid "
                    "calibrate with this version active",
                }
            # Too few people to calibrate on: inherit the parent's stranger distances (the fine-tune rescaled
            # its distances to the parent's operating point), so activation never leaves the store without
            # thresholds by gallery size.
            calibration = Calibration(
                model_id=self.face_model_id(version.model_id),
                method=METHOD_DISTANCE,
                threshold=0.0,
                target_fpir=parent.target_fpir,
                gallery_size=parent.gallery_size,
                dim=parent.dim,
                impostor_tail=np.asarray(inherited["impostor_tail"], np.float32),
                impostor_count=int(inherited["impostor_count"]),
                details={
                    "source": f"inherited from {like}: "
                    + (
                        f"{len(names)} held-out people are too few (calibration needs {MIN_IDENTITIES})"
                        if comparable
                        else "the fine-tune described its held-out people with the dlib part alone"
                    )
                    + "; run faceid calibrate for one of its own",
                },
            )
            calibration.threshold = calibration.threshold_for(calibration.gallery_size)
            self.save_calibration(calibration)
            return {"calibrated": True, "inherited": True, **calibration.summary()}
        counters: dict[str, int] = {}
        paths = []
        for person in people:
            counters[person] = counters.get(person, 0) + 1
            paths.append(f"{person}/{counters[person]:05d}")
        faces = LabelledFaces(
            paths=paths,
            people=np.array(list(people)),
            embeddings=np.asarray(embeddings, np.float32),
            detected=np.ones(len(paths), bool),
        )
        calibration = calibrate_faces(
            faces,
            self.face_model_id(version.model_id),
            method=parent.method,
            target_fpir=parent.target_fpir,
            gallery_size=parent.gallery_size,
            source=source or f"held-out people of the fine-tune of {version.model_id}",
        )
        self.save_calibration(calibration)
        return {"calibrated": True, **calibration.summary()}

    def delete_version(self, ref: str) -> dict[str, Any]:
        from faceid.vision.sface import split_fused_id

        version = self.get_version(ref)
        if version.kind == "builtin" or version.model_id == self.default_model_id():
            raise BadInputError("the built-in model cannot be deleted")
        built_on = [v.model_id for v in self.list_versions() if (split_fused_id(v.model_id) or ("",))[0] == ref]
        built_on = [m for m in built_on if m != version.model_id]
        if built_on:
            raise ConflictError(f"{', '.join(built_on)} fuses {version.model_id}; delete it first")
        with self._write() as session:
            state = self._row_state(session)
            if version.model_id in (state.active_model_id, state.activating_model_id):
                raise ConflictError(f"{version.model_id} is active or being activated; activate another version first")
            ids = [version.model_id, version.model_id + "+mirror"]
            used = session.scalar(select(func.count()).select_from(Face).where(Face.model_id.in_(ids)))
            if used:
                raise ConflictError(f"{used} faces still carry {version.model_id}")
            kept = session.scalar(
                select(func.count()).select_from(FaceEmbedding).where(FaceEmbedding.model_id.in_(ids))
            )
            session.execute(delete(FaceEmbedding).where(FaceEmbedding.model_id.in_(ids)))
            session.execute(
                update(DescriptorVersion)
                .where(DescriptorVersion.parent_id == version.model_id)
                .values(parent_id=version.parent_id)
            )
            session.execute(delete(DescriptorVersion).where(DescriptorVersion.model_id == version.model_id))
        if version.onnx_file and version.kind != "fused":  # a fused version shares its dlib part's file
            (self.data_dir / version.onnx_file).unlink(missing_ok=True)
        return {"model_id": version.model_id, "embeddings": int(kept or 0)}

    # -- one version's embedder and analyzer -------------------------------------------------------

    def embedder_for(self, version: VersionRecord) -> Embedder:
        from faceid.vision.sface import split_fused_id

        with self._versions_lock:
            embedder = self._embedders.get(version.model_id)
            if embedder is None:
                fused = split_fused_id(version.model_id)
                if fused is not None:
                    primary = self.embedder_for(self.get_version(fused[0]))
                    embedder = fused_embedder(primary, fused[1], self._threads, self._mirror)
                else:
                    embedder = version_embedder(self.onnx_path(version), version.model_id, self._threads, self._mirror)
                self._embedders[version.model_id] = embedder
            return embedder

    def analyzer_for(self, version: VersionRecord) -> Analyzer:
        from faceid.vision.analyzer import photo_analyzer

        with self._versions_lock:
            analyzer = self._analyzers.get(version.model_id)
            if analyzer is None:
                base = self._base_analyzer or photo_analyzer(threads=self._threads)
                self._base_analyzer = base
                analyzer = base.with_embedder(self.embedder_for(version))
                self._analyzers[version.model_id] = analyzer
            return analyzer

    # -- the Store, following the active version ---------------------------------------------------

    @property
    def analyzer(self) -> Analyzer:
        if self._pinned is not None:
            return super().analyzer
        return self.analyzer_for(self.active_version())

    @property
    def model_id(self) -> str:
        if self._pinned is not None:
            return self._pinned
        return self.face_model_id(self.active_model_id())

    def prepare(self, image: ImageSource, pick: Pick = "one") -> Any:
        from faceid.store.photos import prepare_face

        return prepare_face(self.analyzer, image, pick)

    def identify_faces(
        self, rgb: np.ndarray, detections: Sequence[Detection], top_k: int = 5, camera: str | None = None
    ) -> list[tuple[DetectedFace, Identification]]:
        """Describe and identify with one whole version: embedder, gallery and threshold alike (asked again
        if a switch happened in between)."""
        if self._pinned is not None:
            return super().identify_faces(rgb, detections, top_k, camera)
        results: list[tuple[DetectedFace, Identification]] = []
        for _ in range(IDENTIFY_ATTEMPTS):
            version = self.active_version()
            model_id = self.face_model_id(version.model_id)
            faces = self.analyzer_for(version).faces_from_detections(rgb, list(detections))
            results = [(face, self._identify_face(face, top_k, model_id, camera)) for face in faces]
            if self.active_model_id() == version.model_id:
                return results
            log.debug("the active version changed during a search; answering again with the new one")
        return results

    def enroll_prepared(self, name: str, faces: Sequence[PreparedFace], **person_fields: Any) -> PersonRecord:
        record = super().enroll_prepared(name, faces, **person_fields)
        self._reconcile_if_stale(faces)
        return record

    def enroll_from_event(
        self, event_id: int, name: str, face: PreparedFace, **person_fields: Any
    ) -> tuple[PersonRecord, EventRecord]:
        person, event = super().enroll_from_event(event_id, name, face, **person_fields)
        self._reconcile_if_stale([face])
        return person, event

    def add_prepared(self, ref: int | str, faces: Sequence[PreparedFace]) -> list[FaceRecord]:
        records = super().add_prepared(ref, faces)
        self._reconcile_if_stale(faces)
        return records

    def _reconcile_if_stale(self, faces: Sequence[PreparedFace]) -> None:
        # Faces described just before a switch committed carry the old version; bring them over now
        # rather than leave them out of every search.
        if self._pinned is not None:
            return
        active = self.face_model_id(self.active_model_id())
        if any(face.model_id != active for face in faces):
            with self._read() as session:
                activating = self._row_state(session).activating_model_id
            if activating is None:
                self.reconcile()

    def reconcile(self) -> int:
        """Re-embed, with the active version, any face that carries another one; returns how many."""
        target = self.active_version()
        embedder = self.embedder_for(target)
        face_model = self.face_model_id(target.model_id)
        fixed = 0
        after = 0
        while True:
            with self._read() as session:
                rows = list(
                    session.execute(
                        select(Face.id, Face.image_sha256, Face.image_type, Face.landmarks)
                        .where(Face.model_id != face_model, Face.id > after)
                        .order_by(Face.id)
                        .limit(REEMBED_BATCH)
                    ).all()
                )
            if not rows:
                return fixed
            after = int(rows[-1][0])
            ids, vectors, unusable = self._describe(embedder, rows)
            if unusable:
                log.warning("%d faces carry another version and have no stored photo to re-embed from", len(unusable))
            with self._write() as session:
                for face_id, vector in zip(ids, vectors, strict=True):
                    session.execute(
                        update(Face)
                        .where(Face.id == face_id, Face.model_id != face_model)
                        .values(model_id=face_model, embedding=vector)
                    )
                self._log_faces(session, ids)
            fixed += len(ids)

    # -- activation --------------------------------------------------------------------------------

    def activation_status(self) -> dict[str, Any]:
        with self._read() as session:
            state = self._row_state(session)
            return {
                "active": state.active_model_id or self.default_model_id(),
                "previous": state.previous_model_id,
                "activating": state.activating_model_id,
                "done": state.done,
                "total": state.total,
                "switched_at": state.switched_at,
            }

    def start_activation(self, ref: str, progress: bool = False) -> Activation:
        """Activate a version in a background thread; searches keep being answered by the current one."""
        return Activation(self, self.get_version(ref).model_id, progress)

    def _missing(self, session: Any, target: str, after: int, limit: int) -> list[Any]:
        """Faces with no descriptor by ``target`` yet (neither in ``faces`` nor staged), by id."""
        staged = select(FaceEmbedding.face_id).where(FaceEmbedding.model_id == target, FaceEmbedding.face_id == Face.id)
        return list(
            session.execute(
                select(Face.id, Face.image_sha256, Face.image_type, Face.landmarks)
                .where(Face.model_id != target, Face.id > after, ~staged.exists())
                .order_by(Face.id)
                .limit(limit)
            ).all()
        )

    def _count_missing(self, session: Any, target: str) -> int:
        staged = select(FaceEmbedding.face_id).where(FaceEmbedding.model_id == target, FaceEmbedding.face_id == Face.id)
        return int(
            session.scalar(select(func.count()).select_from(Face).where(Face.model_id != target, ~staged.exists())) or 0
        )

    def _describe(self, embedder: Embedder, rows: list[Any]) -> tuple[list[int], np.ndarray, list[int]]:
        """Descriptors by ``embedder`` of faces, from their stored photo and landmarks (an embedder that
        describes from the photo itself, as a fused one does, gets it); also the ids that have none."""
        from faceid.vision.align import face_chips
        from faceid.vision.analyzer import CHIP_PADDING, CHIP_SIZE
        from faceid.vision.image import load_image

        embed_faces = getattr(embedder, "embed_faces", None)
        ids, chips, vectors, unusable = [], [], [], []
        for face_id, sha, image_type, landmarks in rows:
            if not sha or not image_type or not landmarks:
                unusable.append(int(face_id))
                continue
            try:
                rgb = load_image(self.files.read(sha, image_type))
            except (OSError, ImageError) as error:
                log.warning("face %d: its photo cannot be read (%s)", face_id, error)
                unusable.append(int(face_id))
                continue
            points = np.asarray(landmarks, np.float32).reshape(-1, 2)
            chip = face_chips(rgb, [points], size=CHIP_SIZE, padding=CHIP_PADDING)[0]
            if embed_faces is not None:
                vectors.append(embed_faces(rgb, [points], chip[None])[0])
            else:
                chips.append(chip)
            ids.append(int(face_id))
        if embed_faces is None:
            described = embedder.embed(np.stack(chips)) if chips else np.zeros((0, 0), np.float32)
        else:
            described = np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
        return ids, described, unusable

    def _stage(self, target: VersionRecord, report: Callable[[int, int], None], bar: Any) -> None:
        """Stage a ``target`` descriptor for every face that lacks one; faces added meanwhile are picked up too."""
        embedder = self.embedder_for(target)
        face_model = self.face_model_id(target.model_id)
        with self._read() as session:
            total = self._count_missing(session, face_model)
        done = 0
        bar.reset(total=total)
        after = 0
        while True:
            with self._read() as session:
                rows = self._missing(session, face_model, after, REEMBED_BATCH)
            if not rows:
                return
            after = int(rows[-1][0])
            ids, vectors, unusable = self._describe(embedder, rows)
            if unusable:
                raise BadInputError(
                    f"{len(unusable)} faces (ids {', '.join(map(str, unusable[:10]))}) have no readable stored "
                    f"photo and landmarks to re-embed from; remove them before activating {target.model_id}"
                )
            with self._write() as session:
                existing = set(session.scalars(select(Face.id).where(Face.id.in_(ids))))
                session.add_all(
                    FaceEmbedding(face_id=i, model_id=face_model, embedding=v)
                    for i, v in zip(ids, vectors, strict=True)
                    if i in existing  # a face deleted meanwhile needs nothing
                )
                state = self._row_state(session)
                done += len(ids)
                total = max(total, done)
                state.done, state.total, state.updated_at = done, total, utcnow()
            bar.total = total
            bar.update(len(ids))
            report(done, total)

    def activate(
        self,
        ref: str,
        progress: bool = False,
        report: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Re-embed every face with version ``ref`` (staged, while searches use the active one), then switch at once."""
        target = self.get_version(ref)
        started = time.monotonic()
        with self._write() as session:
            state = self._row_state(session)
            current = state.active_model_id or self.default_model_id()
            if state.activating_model_id not in (None, target.model_id):
                raise ConflictError(f"{state.activating_model_id} is being activated; wait for it to finish")
            if current == target.model_id:
                return {"active": current, "previous": state.previous_model_id, "faces": 0, "seconds": 0.0}
            state.activating_model_id, state.done, state.total = target.model_id, 0, 0
            state.updated_at = utcnow()
        faces = 0
        try:
            self.embedder_for(target).embed(np.zeros((1, 150, 150, 3), np.uint8))  # load it before the switch
            with tqdm(total=0, desc=f"re-embedding for {target.model_id}", unit="face", disable=not progress) as bar:
                while True:
                    self._stage(target, report or (lambda done, total: None), bar)
                    switched = self._switch(target.model_id, current)
                    if switched is not None:
                        faces = switched
                        break
        except BaseException:
            with self._write() as session:
                state = self._row_state(session)
                if state.activating_model_id == target.model_id:
                    state.activating_model_id = None
            raise
        self._drop_galleries()
        self._reembed_negatives(target)
        seconds = time.monotonic() - started
        log.info("active model version: %s (was %s), %d faces re-embedded", target.model_id, current, faces)
        return {"active": target.model_id, "previous": current, "faces": faces, "seconds": seconds}

    def _reembed_negatives(self, target: VersionRecord) -> None:
        """What the inbox keeps follows the new version, described again from the face crops: the "not this person"
        exemplars, and the visitors' events (their ids kept). A failure here leaves the switch done (logged)."""
        from faceid.store.corrections import reembed_negatives
        from faceid.store.visitors import inbox

        analyzer = self.analyzer_for(target)
        model = self.face_model_id(target.model_id)
        try:
            added = reembed_negatives(self, model, lambda crop: analyzer_embedding(analyzer, crop))
            moved = inbox(self).follow_model(model, lambda crop: analyzer_embedding(analyzer, crop))
        except Exception:  # the version is active; the inbox catches up with `faceid visitors recluster`
            log.exception("the inbox could not follow %s", target.model_id)
            return
        log.info("inbox follows %s: %d negative(s), %s", target.model_id, added, moved)

    def _switch(self, target: str, current: str) -> int | None:
        """The switch, in one transaction; None when faces were added since staging (stage again first)."""
        face_model = self.face_model_id(target)
        with self._write() as session:
            if self._count_missing(session, face_model):
                return None
            state = self._row_state(session)
            if (state.active_model_id or self.default_model_id()) != current:
                raise ConflictError("the active version changed during the activation; activate again")
            moving = list(session.scalars(select(Face.id).where(Face.model_id != face_model)))
            if self.backend == "postgresql":
                insert_kept = (
                    "INSERT INTO face_embeddings (face_id, model_id, embedding) "
                    "SELECT id, model_id, embedding FROM faces WHERE model_id != :target "
                    "ON CONFLICT (face_id, model_id) DO UPDATE SET embedding = excluded.embedding"
                )
            else:
                insert_kept = (
                    "INSERT OR REPLACE INTO face_embeddings (face_id, model_id, embedding) "
                    "SELECT id, model_id, embedding FROM faces WHERE model_id != :target"
                )
            session.execute(text(insert_kept), {"target": face_model})
            session.execute(
                text(
                    "UPDATE faces SET model_id = :target, embedding = (SELECT e.embedding FROM face_embeddings e "
                    "WHERE e.face_id = faces.id AND e.model_id = :target) WHERE model_id != :target"
                ),
                {"target": face_model},
            )
            session.execute(delete(FaceEmbedding).where(FaceEmbedding.model_id == face_model))
            state.previous_model_id = current
            state.active_model_id = None if target == self.default_model_id() else target
            state.activating_model_id = None
            state.switched_at = state.updated_at = utcnow()
            self._log_faces(session, moving)
            return len(moving)

    def _drop_galleries(self) -> None:
        """Forget in-process galleries of versions no longer active: they were emptied by the switch."""
        active = self.face_model_id(self.active_model_id())
        with self._lock:
            for model_id in [m for m in self._galleries if m != active]:
                self._galleries.pop(model_id, None)
                self._matchers.pop(model_id, None)

    def rollback(self, progress: bool = False) -> dict[str, Any]:
        """Activate the active version's parent (the built-in model has none)."""
        active = self.active_version()
        if active.parent_id is None:
            raise BadInputError(f"{active.model_id} has no parent version to roll back to")
        return self.activate(active.parent_id, progress=progress)

    def faces_by_version(self) -> dict[str, int]:
        with self._read() as session:
            rows = session.execute(select(Face.model_id, func.count()).group_by(Face.model_id)).all()
            return {m: int(n) for m, n in rows}


def version_embedder(
    onnx_path: str, model_id: str, threads: int | None = None, mirror: bool = False, device: str = "cpu"
) -> DescriptorEmbedder:
    """A descriptor embedder running ``onnx_path`` whose ``model_id`` names the version."""
    from faceid.vision.embed import DescriptorEmbedder

    class VersionEmbedder(DescriptorEmbedder):
        @property
        def model_id(self) -> str:
            return model_id

    return VersionEmbedder(device=device, threads=threads, mirror=mirror, onnx_path=onnx_path)


def fused_embedder(
    primary: Embedder, weight: float, threads: int | None = None, mirror: bool = False, device: str = "cpu"
) -> Embedder:
    """``primary``'s descriptor fused with SFace's (faceid.vision.sface.FusedEmbedder)."""
    from faceid.vision.sface import FusedEmbedder, SFaceEmbedder

    second = SFaceEmbedder(device=device, threads=threads, mirror=mirror)
    return FusedEmbedder(weight=weight, primary=primary, second=second)  # type: ignore[arg-type]


def analyzer_for_model(
    ref: str, base: Analyzer | None = None, data_dir: str | None = None, db: str | None = None
) -> Analyzer:
    """An analyzer like ``base`` (detector, device, mirror...) that embeds with stored version ``ref``."""
    from faceid.vision.analyzer import Analyzer

    store = VersionedStore(data_dir, db)
    try:
        version = store.get_version(ref)
        path = store.onnx_path(version)
    finally:
        store.close()
    base = base or Analyzer()
    from faceid.vision.sface import split_fused_id

    fused = split_fused_id(version.model_id)
    if fused is None:
        return base.with_embedder(version_embedder(path, version.model_id, base.threads, base.mirror, base.device))
    primary = version_embedder(path, fused[0], base.threads, base.mirror, base.device)
    return base.with_embedder(fused_embedder(primary, fused[1], base.threads, base.mirror, base.device))


def _json_safe(value: Any) -> Any:
    """A report as plain JSON: numpy numbers, paths and times turned into numbers and text."""
    return None if value is None else json.loads(json.dumps(value, default=json_default))


def analyzer_embedding(analyzer: Analyzer, image: bytes) -> np.ndarray:
    """The descriptor of the largest face of an image (a stored face crop)."""
    from faceid.store.photos import prepare_face

    return np.asarray(prepare_face(analyzer, image, "largest").embedding, np.float32)
