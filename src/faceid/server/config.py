"""How a server is set up: where its store is, which detector it runs, its limits."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from faceid.settings import current
from faceid.thresholds import MAX_UPLOAD_BYTES
from faceid.vision.detect import PHOTO_DETECTOR


@dataclass
class ServerConfig:
    """``secure_cookies``: None sets the cookie's Secure flag when the request came over https (directly,
    or through a proxy that uvicorn trusts for X-Forwarded-Proto); True or False forces it."""

    data_dir: str | os.PathLike[str] | None = None
    db: str | None = None
    detector: str = PHOTO_DETECTOR  # photos posted to the server take the photo pipeline
    device: str = "cpu"
    index: str = "auto"
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    secure_cookies: bool | None = None
    admin_password: str | None = field(default=None, repr=False)
    # Load the models at start so that the first request is not the slow one.
    warm_up: bool = True
    # How often a SQLite-backed server looks for events and gallery changes made by other processes
    # (PostgreSQL tells it at once through LISTEN/NOTIFY).
    poll_seconds: float = 0.5
    # Photos analysed at once; more only queue for the same cores. Default: the number of cores.
    analysis_slots: int | None = None
    # MQTT broker (``mqtt://user:pass@host:1883/prefix``) and the server's address for links in events; None
    # keeps what an admin saved on the Integrations page.
    mqtt: str | None = field(default=None, repr=False)
    public_url: str | None = None

    def resolved_admin_password(self) -> str | None:
        return self.admin_password or current().admin_password

    def slots(self) -> int:
        return max(1, self.analysis_slots or os.cpu_count() or 1)

    @property
    def data_path(self) -> Path | None:
        return Path(self.data_dir).expanduser() if self.data_dir else None
