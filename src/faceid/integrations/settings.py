"""Where the integrations are told what to do: the broker URL (``faceid serve --mqtt``) and the settings an
admin changes in the web app, kept in ``<data dir>/integrations/settings.json``."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from faceid.errors import BadInputError

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
TOPIC_PART = re.compile(r"^[^#+\x00]+$")  # MQTT topic names may not hold wildcards or NUL


def integrations_dir(data_dir: str | os.PathLike[str]) -> Path:
    folder = Path(data_dir) / "integrations"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class MqttTarget:
    """``mqtt://user:pass@host:1883/prefix`` (``mqtts://`` for TLS, default port 8883). Query options:
    ``discovery_prefix`` (default ``homeassistant``), ``client_id``."""

    host: str
    port: int = 1883
    username: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)
    prefix: str = "faceid"
    tls: bool = False
    discovery_prefix: str = "homeassistant"
    client_id: str | None = None

    @classmethod
    def parse(cls, url: str) -> MqttTarget:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise BadInputError(f"an MQTT URL starts with mqtt:// or mqtts://, not {url.split(':', 1)[0]!r}")
        if not parts.hostname:
            raise BadInputError("the MQTT URL names no host (mqtt://host:1883/prefix)")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise BadInputError("the MQTT URL's port is not a number between 0 and 65535") from None
        prefix = unquote(parts.path).strip("/") or "faceid"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        discovery = query.get("discovery_prefix", "homeassistant").strip("/")
        for name, value in (("prefix", prefix), ("discovery_prefix", discovery)):
            if not TOPIC_PART.match(value):
                raise BadInputError(f"the MQTT {name} {value!r} may not contain '#', '+' or NUL")
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            prefix=prefix,
            tls=tls,
            discovery_prefix=discovery,
            client_id=query.get("client_id") or None,
        )

    def redacted(self) -> str:
        """The URL without its password (for logs and the settings page)."""
        user = f"{self.username}:***@" if self.username else ""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{user}{self.host}:{self.port}/{self.prefix}"


@dataclass
class IntegrationSettings:
    mqtt_url: str | None = None
    # The address people and Home Assistant reach this server at; event and snapshot links start with it.
    public_url: str = ""
    # Seconds after a person's last sighting before their presence sensor goes off.
    presence_timeout: float = 120.0
    # Seconds after the last unknown face before a camera's "unknown face" sensor goes off.
    unknown_timeout: float = 30.0
    # Publish Home Assistant discovery configs.
    discovery: bool = True
    # Most MQTT messages kept while the broker is unreachable; past it the oldest are dropped (logged).
    queue_max: int = 100_000
    # Webhooks: seconds before the first retry (doubling after each failure), and attempts before giving up.
    webhook_retry_base: float = 2.0
    webhook_max_attempts: int = 10

    def mqtt_target(self) -> MqttTarget | None:
        return MqttTarget.parse(self.mqtt_url) if self.mqtt_url else None

    def validate(self) -> None:
        self.mqtt_target()
        if self.public_url and not re.match(r"^https?://", self.public_url):
            raise BadInputError("public_url must start with http:// or https://")
        if not 1 <= self.presence_timeout <= 86_400 or not 1 <= self.unknown_timeout <= 86_400:
            raise BadInputError("the timeouts must be between 1 s and 86400 s")
        if not 100 <= self.queue_max <= 10_000_000:
            raise BadInputError("queue_max must be between 100 and 10000000")
        if not 0.01 <= self.webhook_retry_base <= 3600 or not 1 <= self.webhook_max_attempts <= 100:
            raise BadInputError("webhook_retry_base must be 0.01-3600 s and webhook_max_attempts 1-100")

    def public(self) -> dict[str, Any]:
        """For the settings page: everything but the broker password."""
        out = asdict(self)
        target = self.mqtt_target() if self.mqtt_url else None
        out["mqtt_url"] = target.redacted() if target else None
        return out

    @classmethod
    def load(cls, folder: Path) -> IntegrationSettings:
        path = folder / SETTINGS_FILE
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            log.warning("ignoring unreadable %s: %s", path, error)
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, folder: Path) -> None:
        path = folder / SETTINGS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.chmod(0o600)  # holds the broker password
        tmp.replace(path)
