"""The monitor's side of the server's device API, over the standard library's HTTP client.

Two calls: ``GET /api/v1/gallery/embeddings`` (with ``If-None-Match``) and ``POST /api/v1/events``
(multipart, with an ``Idempotency-Key``). No third-party HTTP package, so that the edge install stays small.
A network failure raises :class:`ServerUnreachable`; an HTTP answer, whatever its status, is returned.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from faceid.thresholds import MONITOR_HTTP_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

USER_AGENT = "faceid-monitor"


class ServerUnreachable(Exception):
    """No HTTP answer: refused, reset, timed out, name not resolved."""


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def detail(self) -> str:
        try:
            data = self.json()
            return str(data.get("detail", data)) if isinstance(data, dict) else str(data)
        except ValueError:
            return self.body[:200].decode("utf-8", "replace")


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = "faceid-" + uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
        )
    for name, (filename, data, kind) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {kind}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class ServerClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = MONITOR_HTTP_TIMEOUT_SECONDS) -> None:
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{base_url!r} is not an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        request = urllib.request.Request(self.base_url + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.api_key}")
        request.add_header("User-Agent", USER_AGENT)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Answer(response.status, response.read(), {k.lower(): v for k, v in response.headers.items()})
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, error.read() or b"", {k.lower(): v for k, v in (error.headers or {}).items()})
        except (TimeoutError, urllib.error.URLError, OSError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise ServerUnreachable(f"{self.base_url}: {reason}") from None

    def me(self) -> Answer:
        """Who the key is: its scopes (``GET /api/v1/auth/me``)."""
        return self._request("GET", "/api/v1/auth/me")

    def gallery(self, model_id: str | None, etag: str | None = None) -> Answer:
        query = {"include_cohort": "true"}
        if model_id:
            query["model"] = model_id
        headers = {"If-None-Match": etag} if etag else {}
        return self._request("GET", "/api/v1/gallery/embeddings?" + urllib.parse.urlencode(query), headers=headers)

    def model_file(self, model_id: str) -> Answer:
        """The ONNX file of a stored model version (``GET /api/v1/models/{id}/onnx``)."""
        return self._request("GET", f"/api/v1/models/{urllib.parse.quote(model_id, safe='')}/onnx")

    def post_event(self, fields: dict[str, str], snapshot: bytes | None, key: str) -> Answer:
        files = {"snapshot": ("snapshot.jpg", snapshot, "image/jpeg")} if snapshot else {}
        body, content_type = multipart(fields, files)
        return self._request("POST", "/api/v1/events", body, {"Content-Type": content_type, "Idempotency-Key": key})
