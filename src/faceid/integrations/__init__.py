"""faceid's events where home and office automation lives: MQTT (with Home Assistant discovery), signed
webhooks, and a bridge that names the people Frigate sees.

Layering: this package sits beside the server. It uses :mod:`faceid.store` and is used by
:mod:`faceid.server` (which hands it every new event) and :mod:`faceid.cli`; it never imports them.
Its own state — the durable MQTT queue, the webhook subscriptions, deliveries and dead letters, and the
settings an admin changes in the web app — lives in ``<data dir>/integrations/`` as small SQLite files and
one JSON file, so it needs no table in the store's database.
"""

from __future__ import annotations

from faceid.integrations.payloads import event_payload
from faceid.integrations.service import Integrations
from faceid.integrations.settings import IntegrationSettings, MqttTarget

__all__ = ["IntegrationSettings", "Integrations", "MqttTarget", "event_payload"]
