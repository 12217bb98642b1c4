"""Connected mode's gallery: pulled from the server at start, refreshed in the background, cached on disk.

The cache (``gallery.json`` in the state folder) is what lets an agent that restarts while the server is
down still recognise people: it starts from the last gallery it saw and catches up once the server
answers. Refreshing costs one cheap request while nothing changed (``If-None-Match`` -> 304).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from faceid.errors import BadInputError, FaceidError
from faceid.monitor.client import ServerClient, ServerUnreachable
from faceid.monitor.recognize import GalleryRecognizer
from faceid.monitor.sources import Backoff
from faceid.thresholds import MONITOR_CONNECT_ATTEMPTS, MONITOR_GALLERY_REFRESH_SECONDS

log = logging.getLogger(__name__)


# What a connected monitor asks of its key: the gallery (read) and posting events (ingest). The server's
# "device" key preset (faceid.store.accounts.KEY_PRESETS) is exactly this.
NEEDED_SCOPES = ("read", "ingest")
KEY_RECIPE = (
    "make a device key: 'faceid apikey create NAME' (preset device: read, ingest), or tick read and ingest "
    "on the server's API keys page"
)


def check_key(client: ServerClient) -> None:
    """Refuse at once a key the server rejects or that lacks a scope the monitor needs.

    An unreachable server is no refusal: the gallery cache and the queue are there for that.
    """
    try:
        answer = client.me()
    except ServerUnreachable as error:
        log.debug("cannot check the API key now: %s", error)
        return
    if answer.status == 401:
        raise BadInputError(f"the server refused the API key (HTTP 401: {answer.detail()}); {KEY_RECIPE}")
    if answer.status != 200:
        log.debug("cannot check the API key now: HTTP %s", answer.status)
        return
    try:
        scopes = answer.json().get("scopes")
    except (ValueError, AttributeError):
        return
    if scopes is None:  # not a key (a server in front that answers for a user): nothing to check
        return
    missing = [s for s in NEEDED_SCOPES if s not in scopes]
    if missing:
        raise BadInputError(
            f"this API key has the scope(s) {', '.join(scopes) or 'none'} but a monitor also needs "
            f"{' and '.join(missing)}; {KEY_RECIPE}"
        )


class GalleryUnavailableError(FaceidError):
    """No gallery: the server could not be reached and no copy was cached."""


class GallerySync:
    """The server's gallery for the model version the server has active. When that is another version than the
    one this agent describes faces with (a fine-tune activated, or rolled back), the agent fetches the
    version's ONNX file once (checked against the version id, which is its checksum), keeps it in the state
    folder, and describes faces with it from then on: the gallery and the descriptors always match.

    ``analyzer`` is the agent's (detector and landmarks); without one, the gallery must be of ``model_id``.
    """

    def __init__(
        self,
        client: ServerClient,
        model_id: str,
        cache_path: Path,
        refresh_seconds: float = MONITOR_GALLERY_REFRESH_SECONDS,
        connect_attempts: int = MONITOR_CONNECT_ATTEMPTS,
        backoff: Backoff | None = None,
        analyzer: Any = None,
    ) -> None:
        self.client = client
        self.model_id = model_id
        self.analyzer = analyzer
        self._analyzers: dict[str, Any] = {}
        self.cache_path = Path(cache_path)
        self.refresh_seconds = refresh_seconds
        self.connect_attempts = max(1, connect_attempts)
        self.backoff = backoff or Backoff()
        self.etag: str | None = None
        self.recognizer: GalleryRecognizer | None = None
        self.refreshed_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- fetching ----------------------------------------------------------------------------------------

    def _fetch(self) -> bool:
        """One request; True if a new gallery was installed. Raises ServerUnreachable, BadInputError."""
        answer = self.client.gallery(None if self.analyzer is not None else self.model_id, self.etag)
        if answer.status == 304:
            self.refreshed_at = time.time()
            return False
        if answer.status in (401, 403):
            raise BadInputError(
                f"the server refused the API key for the gallery (HTTP {answer.status}: "
                f"{answer.detail()}); it needs the 'read' scope: {KEY_RECIPE}"
            )
        if answer.status != 200:
            raise ServerUnreachable(f"gallery: HTTP {answer.status}: {answer.detail()}")
        payload = answer.json()
        self._install(payload)
        self.etag = answer.headers.get("etag")
        self._save(payload)
        return True

    def _analyzer_for(self, model_id: str) -> Any:
        """An analyzer like the agent's that describes faces with ``model_id`` (fetched once if needed)."""
        if model_id == self.model_id:
            return self.analyzer
        cached = self._analyzers.get(model_id)
        if cached is not None:
            return cached
        from faceid.store.versions import fused_embedder
        from faceid.vision.sface import split_fused_id

        base = self.analyzer
        try:
            fused = split_fused_id(model_id)
        except ValueError as error:
            raise BadInputError(f"the server's model cannot be computed here: {error}") from None
        if fused is None:
            embedder = self._embedder_for(model_id)
        else:  # dlib's part (built in or a fetched fine-tune) with SFace, installed with faceid
            primary = self._embedder_for(fused[0])
            embedder = fused_embedder(primary, fused[1], base.threads, base.mirror, base.device)
        analyzer = base.with_embedder(embedder)
        self._analyzers[model_id] = analyzer
        return analyzer

    def _embedder_for(self, model_id: str) -> Any:
        """dlib's built-in descriptor, or a fine-tuned version's fetched from the server (checked by its id)."""
        import hashlib

        from faceid.store.versions import version_embedder
        from faceid.vision.embed import DESCRIPTOR_MODEL_ID, descriptor_onnx_path

        base = self.analyzer
        if model_id == DESCRIPTOR_MODEL_ID:
            return version_embedder(descriptor_onnx_path(), model_id, base.threads, base.mirror, base.device)
        if not model_id.startswith("ft-"):
            raise BadInputError(f"the server's model {model_id!r} is not one this agent can fetch or compute")
        path = self.cache_path.parent / "models" / f"{model_id}.onnx"
        if not path.is_file():
            answer = self.client.model_file(model_id)
            if answer.status != 200:
                raise ServerUnreachable(f"model {model_id}: HTTP {answer.status}: {answer.detail()}")
            if hashlib.sha256(answer.body).hexdigest()[:12] != model_id[3:]:
                raise BadInputError(f"the file sent for model {model_id} does not match its checksum")
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".part")
            temporary.write_bytes(answer.body)
            os.replace(temporary, path)
            log.info("fetched model version %s from the server (%d bytes)", model_id, len(answer.body))
        return version_embedder(str(path), model_id, base.threads, base.mirror, base.device)

    def _install(self, payload: dict[str, Any]) -> None:
        model_id = str(payload.get("model_id"))
        analyzer = None
        if self.analyzer is not None:
            analyzer = self._analyzer_for(model_id)
        elif model_id != self.model_id:
            raise BadInputError(
                f"the server's gallery is for model {payload.get('model_id')!r}, this monitor computes "
                f"{self.model_id!r}: their descriptors cannot be compared"
            )
        recognizer = GalleryRecognizer(payload, analyzer)
        if recognizer.people == 0:
            log.warning(
                "the server's gallery has nobody enrolled for model %s: every face will be unknown", self.model_id
            )
        if not recognizer.calibrated:
            log.warning(
                "the server's model is not calibrated: using the uncalibrated threshold %.3f", recognizer.threshold
            )
        previous = self.recognizer
        self.recognizer = recognizer  # one reference swap: the pipeline sees the old gallery or the new one
        self.refreshed_at = time.time()
        if previous is None or previous.version != recognizer.version:
            log.info(
                "gallery version %s: %d people, method %s, threshold %.4f",
                recognizer.version,
                recognizer.people,
                recognizer.method,
                recognizer.threshold,
            )

    def _save(self, payload: dict[str, Any]) -> None:
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.cache_path.with_suffix(".part")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"etag": self.etag, "saved_at": time.time(), "gallery": payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.cache_path)

    def _load_cached(self) -> bool:
        try:
            with open(self.cache_path, encoding="utf-8") as handle:
                saved = json.load(handle)
            self._install(saved["gallery"])
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("ignoring the unreadable gallery cache %s: %s", self.cache_path, error)
            return False
        self.etag = saved.get("etag")
        age = time.time() - float(saved.get("saved_at") or time.time())
        log.warning("the server is unreachable: using the gallery cached %.0f minutes ago", age / 60)
        return True

    # -- life cycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Get a gallery (the server's, else the cached one), then keep it fresh in the background."""
        failures = 0
        while True:
            try:
                self._fetch()
                break
            except ServerUnreachable as error:
                failures += 1
                if failures >= self.connect_attempts:
                    if self._load_cached():
                        break
                    raise GalleryUnavailableError(
                        f"could not get the gallery from {self.client.base_url} ({error}) and none is cached "
                        f"in {self.cache_path}"
                    ) from None
                time.sleep(self.backoff.delay(failures))
        if self.refresh_seconds > 0:
            self._thread = threading.Thread(target=self._refresh_loop, name="faceid-gallery", daemon=True)
            self._thread.start()

    def _refresh_loop(self) -> None:
        failures = 0
        while not self._stop.wait(self.refresh_seconds if not failures else self.backoff.delay(failures)):
            try:
                self._fetch()
                failures = 0
            except (ServerUnreachable, BadInputError, ValueError) as error:
                failures += 1
                log.warning(
                    "gallery refresh failed (%s); keeping the gallery of version %s",
                    error,
                    self.recognizer.version if self.recognizer else None,
                )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
