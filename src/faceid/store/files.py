"""The content-addressed image folder, and the protocol that keeps it in step with the database.

Images live at ``images/ab/cd/<sha256>.<type>`` under the data dir; identical bytes are stored once.
A file and the rows that use it cannot be written atomically together, so writers follow a
protocol that any later process can finish:

1. Take the store lock *shared* and write a journal listing the files about to be written.
2. Write each file (temporary name, fsync, rename: a file is either whole or absent).
3. Commit the database transaction that references them, then delete the journal.

A writer killed before step 3 leaves files that nothing references, all named in its journal;
the next process to open the store takes the lock *exclusive* (so no live writer is between
steps 1 and 3), deletes the journal's files that are still unreferenced, then the journal.
Deleting rows works the other way round: commit first, then, holding the lock exclusive,
delete the files that are no longer referenced. Shared holders never wait for each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: processes are not coordinated; the recovery at open still runs.
    fcntl = None  # type: ignore[assignment]

# Given a set of sha256 names, return those still referenced by some row.
ReferencedFn = Callable[[Collection[str]], set[str]]

_local_lock = threading.RLock()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StoreLock:
    """An advisory lock on the data dir: shared by writers, exclusive while deleting files."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        if fcntl is None:
            with _local_lock:
                yield
            return
        # Each hold opens its own file description, so threads of one process coordinate too.
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(handle)  # closing releases the lock, as does the death of the process


class ImageFolder:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        self.images = data_dir / "images"
        self.tmp = data_dir / "tmp"
        self.journals = data_dir / "journal"
        for folder in (self.images, self.tmp, self.journals):
            folder.mkdir(parents=True, exist_ok=True)
        self.lock = StoreLock(data_dir / "store.lock")

    def path(self, sha256: str, image_type: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 name: {sha256!r}")
        if not image_type.isalnum():
            raise ValueError(f"not an image type: {image_type!r}")
        return self.images / sha256[:2] / sha256[2:4] / f"{sha256}.{image_type}"

    def read(self, sha256: str, image_type: str) -> bytes:
        return self.path(sha256, image_type).read_bytes()

    def all_files(self) -> Iterator[tuple[str, Path]]:
        """Every stored image as (sha256, path)."""
        for path in self.images.glob("??/??/*"):
            if path.is_file():
                yield path.name.split(".", 1)[0], path

    def writing(self, referenced: ReferencedFn) -> FileBatch:
        """A batch of files that one transaction will reference; see the module docstring."""
        return FileBatch(self, referenced, removing=False)

    def removing(self, referenced: ReferencedFn) -> FileBatch:
        """A batch of files that one transaction may stop referencing; those it does go after the commit."""
        return FileBatch(self, referenced, removing=True)

    def _write(self, data: bytes, sha256: str, image_type: str) -> None:
        final = self.path(sha256, image_type)
        if final.is_file() and final.stat().st_size == len(data):
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)

    def delete_unreferenced(self, candidates: Collection[tuple[str, str]], referenced: ReferencedFn) -> int:
        """Delete those of ``candidates`` (sha256, type) that no row references; returns how many went."""
        if not candidates:
            return 0
        with self.lock.hold(exclusive=True):
            return self._delete_unreferenced_locked(candidates, referenced)

    def _delete_unreferenced_locked(self, candidates: Collection[tuple[str, str]], referenced: ReferencedFn) -> int:
        still_used = referenced({sha for sha, _ in candidates})
        deleted = 0
        for sha, image_type in candidates:
            if sha in still_used:
                continue
            with contextlib.suppress(FileNotFoundError):
                self.path(sha, image_type).unlink()
                deleted += 1
        return deleted

    def recover(self, referenced: ReferencedFn) -> int:
        """Finish what killed writers left: delete their unreferenced files and stale temporaries."""
        if not any(self.journals.iterdir()) and not any(self.tmp.iterdir()):
            return 0
        deleted = 0
        with self.lock.hold(exclusive=True):
            for journal in sorted(self.journals.glob("*.json")):
                entries = [(str(sha), str(image_type)) for sha, image_type in json.loads(journal.read_text())]
                deleted += self._delete_unreferenced_locked(entries, referenced)
                journal.unlink(missing_ok=True)
            # A journal's replacement cut short by a kill: the whole previous version is the .json.
            for partial in self.journals.glob("*.tmp"):
                partial.unlink(missing_ok=True)
            for leftover in self.tmp.iterdir():
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        if deleted:
            log.warning("removed %d image file(s) left by an interrupted operation", deleted)
        return deleted


class FileBatch:
    """Files written on behalf of one database transaction. Use as a context manager around it."""

    def __init__(self, folder: ImageFolder, referenced: ReferencedFn, removing: bool) -> None:
        self.folder = folder
        self.referenced = referenced
        self.removing = removing
        self.entries: list[tuple[str, str]] = []
        self._known: set[tuple[str, str]] = set()
        self.journal = folder.journals / f"{os.getpid()}-{uuid.uuid4().hex}.json"
        self._hold: contextlib.AbstractContextManager[None] | None = None

    def __enter__(self) -> FileBatch:
        self._hold = self.folder.lock.hold(exclusive=False)
        self._hold.__enter__()
        return self

    def put(self, data: bytes, image_type: str) -> str:
        """Store ``data`` (idempotent) and return its sha256."""
        sha = sha256_hex(data)
        self.declare([(sha, image_type)])
        self.folder._write(data, sha, image_type)
        return sha

    def put_known(self, data: bytes, sha256: str, image_type: str) -> None:
        """Store ``data`` whose sha256 the caller has checked and declared already."""
        self.folder._write(data, sha256, image_type)

    def declare(self, entries: Collection[tuple[str, str]]) -> None:
        """Record in the journal, before writing them, files this batch is about to write."""
        new = [entry for entry in dict.fromkeys(entries) if entry not in self._known]
        if not new:
            return
        self.entries.extend(new)
        self._known.update(new)
        # Replaced whole (write, fsync, rename), so a kill leaves the previous or the new version.
        text = json.dumps([list(e) for e in self.entries])
        tmp = self.journal.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.journal)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._hold is not None
        if exc_type is None and not self.removing:
            self.journal.unlink(missing_ok=True)
            self._hold.__exit__(None, None, None)
            return
        # Written files of a failed transaction, or files a transaction may have released: release our
        # shared hold, then delete those now unreferenced, as a recovering process would.
        self._hold.__exit__(None, None, None)
        if not self.entries:
            return
        try:
            self.folder.delete_unreferenced(self.entries, self.referenced)
            self.journal.unlink(missing_ok=True)
        except Exception:  # the journal stays, and the next open finishes the clean-up
            log.exception("could not remove the files of a failed operation; they go at the next open")
