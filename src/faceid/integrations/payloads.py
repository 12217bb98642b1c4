"""The one public shape of an event, shared by MQTT and webhooks: no images inline, links instead."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

API = "/api/v1"
# Fields of an event's metadata that never leave: images (the payload links to the snapshot instead) and an
# unknown track's descriptor (its camera's calibration reads it in the store; it is biometric data).
BULKY_METADATA = frozenset({"crop_jpeg", "template"})


def decision(event: dict[str, Any]) -> str:
    """``known``, ``unknown`` or ``ambiguous``: the outcome the calibrated rule gave (ambiguous: two people
    passed, too close to call, nobody named); events without one are known or unknown by their person."""
    outcome = (event.get("metadata") or {}).get("outcome")
    if outcome in ("known", "unknown", "ambiguous"):
        return str(outcome)
    return "known" if event.get("person_id") is not None else "unknown"


def iso_time(value: Any) -> str | None:
    """ISO 8601 with a time zone (Home Assistant's timestamp sensors need one); naive times are UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    return str(value)


def slug(text: str | None, default: str = "unnamed") -> str:
    """A topic- and id-safe form of a camera name: lower case, [a-z0-9_] only."""
    out = re.sub(r"[^a-z0-9]+", "_", (text or "").lower()).strip("_")
    return out or default


def event_payload(event: dict[str, Any], public_url: str = "") -> dict[str, Any]:
    """``event`` is the server's JSON form of an event (``event_out``): id, time, source, person_id,
    person_name, confidence, distance, idempotency_key, snapshot_url, metadata..."""
    base = public_url.rstrip("/")
    event_id = event.get("id")
    snapshot = event.get("snapshot_url")
    if snapshot is None and event.get("snapshot_sha256"):
        snapshot = f"{API}/events/{event_id}/snapshot"
    metadata = {k: v for k, v in (event.get("metadata") or {}).items() if k not in BULKY_METADATA}
    return {
        "id": event_id,
        "idempotency_key": event.get("idempotency_key") or f"event-{event_id}",
        "time": iso_time(event.get("time")),
        "camera": event.get("source"),
        "person_id": event.get("person_id"),
        "name": event.get("person_name"),
        "known": event.get("person_id") is not None,
        "decision": decision(event),
        "confidence": event.get("confidence"),
        "distance": event.get("distance"),
        "track_id": event.get("track_id"),
        "box": event.get("box"),
        "event_url": f"{base}{API}/events/{event_id}" if event_id is not None else None,
        "snapshot_url": f"{base}{snapshot}" if snapshot else None,
        "metadata": metadata,
    }
