"""Home Assistant's MQTT discovery, as its documentation describes it: the topic layout and the keys the MQTT
sensor and binary sensor platforms accept (home-assistant.io/integrations/sensor.mqtt, binary_sensor.mqtt,
and the MQTT discovery page). A config with a key HA does not know, or without a required one, fails here."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import jinja2

DISCOVERY_TOPIC = re.compile(
    r"^(?P<prefix>[^/]+)/(?P<component>[a-z_]+)/(?:(?P<node>[a-zA-Z0-9_-]+)/)?(?P<object>[a-zA-Z0-9_-]+)/config$"
)
COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic", "device",
    "enabled_by_default", "encoding", "entity_category", "entity_picture", "expire_after", "force_update",
    "icon", "json_attributes_template", "json_attributes_topic", "name", "object_id", "default_entity_id",
    "payload_available", "payload_not_available", "platform", "qos", "state_topic", "unique_id",
    "value_template", "origin", "device_class",
}  # fmt: skip
KEYS = {
    "sensor": COMMON | {
        "last_reset_value_template", "options", "suggested_display_precision", "state_class", "unit_of_measurement",
    },
    "binary_sensor": COMMON | {"off_delay", "payload_off", "payload_on"},
}  # fmt: skip
REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"}}
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id", "name",
    "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
DEVICE_CLASSES = {
    "sensor": {"timestamp", "date", "duration", None},
    "binary_sensor": {"presence", "occupancy", "motion", None},
}


def check_config(topic: str, payload: bytes) -> tuple[str, dict[str, Any]]:
    """Answers (component, config) or fails with what is wrong."""
    match = DISCOVERY_TOPIC.match(topic)
    assert match, f"not a discovery topic: {topic}"
    component = match["component"]
    assert component in KEYS, f"unexpected component {component}"
    config = json.loads(payload)
    unknown = set(config) - KEYS[component]
    assert not unknown, f"{topic}: keys Home Assistant does not know: {sorted(unknown)}"
    missing = REQUIRED[component] - set(config)
    assert not missing, f"{topic}: required keys missing: {sorted(missing)}"
    assert isinstance(config.get("name"), str) and config["name"], topic
    assert isinstance(config.get("unique_id"), str) and config["unique_id"], topic
    assert config.get("qos", 0) in (0, 1, 2)
    assert config.get("device_class") in DEVICE_CLASSES[component], topic
    for key in ("state_topic", "json_attributes_topic", "availability_topic"):
        if key in config:
            assert isinstance(config[key], str) and "#" not in config[key] and "+" not in config[key], (topic, key)
    device = config.get("device")
    if device is not None:
        assert set(device) <= DEVICE_KEYS, f"{topic}: unknown device keys {set(device) - DEVICE_KEYS}"
        assert device.get("identifiers") or device.get("connections"), f"{topic}: a device needs identifiers"
    origin = config.get("origin")
    if origin is not None:
        assert set(origin) <= ORIGIN_KEYS and origin.get("name"), topic
    if component == "binary_sensor":
        assert config.get("payload_on", "ON") != config.get("payload_off", "OFF")
    return component, config


def render_state(config: dict[str, Any], payload: bytes) -> str:
    """The state Home Assistant would show for this payload (its value_template rendered with value_json)."""
    text = payload.decode()
    template = config.get("value_template")
    if not template:
        return text
    try:
        value_json = json.loads(text)
    except ValueError:
        value_json = None
    return jinja2.Environment().from_string(template).render(value=text, value_json=value_json).strip()


def is_timestamp(state: str) -> bool:
    """A timestamp sensor's state: ISO 8601 with a time zone."""
    try:
        return datetime.fromisoformat(state).tzinfo is not None
    except ValueError:
        return False
