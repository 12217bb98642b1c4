"""Admin endpoints of the integrations: MQTT settings and status, webhook subscriptions, their deliveries
and dead letters."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from faceid.integrations import Integrations
from faceid.server.api.common import ERRORS, MAX_ID, Limit, Offset, Svc
from faceid.server.auth import ADMIN, Principal, require

router = APIRouter(tags=["integrations"], responses=ERRORS)

Admin = Annotated[Principal, Depends(require(ADMIN))]
WebhookId = Annotated[int, Path(ge=1, le=MAX_ID, description="a webhook's id")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID, description="a webhook delivery's id")]
Decision = Literal["known", "unknown", "ambiguous"]


def integrations(request: Request) -> Integrations:
    return request.app.state.integrations  # type: ignore[no-any-return]


Its = Annotated[Integrations, Depends(integrations)]


class MqttSettingsIn(BaseModel):
    mqtt_url: str | None = Field(
        None, max_length=2000, description="mqtt://user:pass@host:1883/prefix; '' turns MQTT off"
    )
    public_url: str | None = Field(None, max_length=2000)
    presence_timeout: float | None = Field(None, description="seconds")
    unknown_timeout: float | None = Field(None, description="seconds")
    discovery: bool | None = None
    queue_max: int | None = None
    webhook_retry_base: float | None = None
    webhook_max_attempts: int | None = None


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000)
    name: str | None = Field(None, max_length=200)
    decisions: list[Decision] = Field(default_factory=list, description="empty: every event")
    person_id: int | None = Field(None, ge=1, le=MAX_ID)
    camera: str | None = Field(None, max_length=200)
    enabled: bool = True


class WebhookPatch(BaseModel):
    url: str | None = Field(None, max_length=2000)
    name: str | None = Field(None, max_length=200)
    decisions: list[Decision] | None = None
    person_id: int | None = Field(None, ge=1, le=MAX_ID)
    camera: str | None = Field(None, max_length=200)
    enabled: bool | None = None
    rotate_secret: bool = False


@router.get("/integrations", summary="MQTT settings and status, webhook counts")
def status(its: Its, _: Admin) -> dict[str, Any]:
    return its.status()


@router.put("/integrations/mqtt", summary="Change the MQTT settings (the publisher restarts with them)")
def set_mqtt(request: Request, body: MqttSettingsIn, its: Its, svc: Svc, principal: Admin) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("mqtt_url") == "":
        changes["mqtt_url"] = None
    settings = dataclasses.replace(its.settings, **changes)
    its.configure(settings)
    svc.record(request, principal, "integrations.mqtt", details={k: v for k, v in changes.items() if k != "mqtt_url"})
    return its.status()


@router.get("/webhooks", summary="Webhook subscriptions")
def list_webhooks(its: Its, _: Admin) -> list[dict[str, Any]]:
    return its.webhooks.subscriptions()


@router.post("/webhooks", status_code=201, summary="Subscribe a URL to events (the answer holds its secret)")
def create_webhook(request: Request, body: WebhookIn, its: Its, svc: Svc, principal: Admin) -> dict[str, Any]:
    created = its.webhooks.create(**body.model_dump())
    svc.record(request, principal, "webhook.create", "webhook", created["id"], {"url": created["url"]})
    return created


@router.get("/webhooks/deliveries", summary="The delivery log, newest first (status=dead: the dead letters)")
def deliveries(
    its: Its,
    _: Admin,
    subscription_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status: Annotated[Literal["pending", "delivered", "dead"] | None, Query()] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    return its.webhooks.deliveries(subscription_id, status, limit, offset)


@router.get("/webhooks/deliveries/{delivery_id}", summary="One delivery with every attempt")
def delivery(delivery_id: DeliveryId, its: Its, _: Admin) -> dict[str, Any]:
    return its.webhooks.delivery(delivery_id)


@router.post("/webhooks/deliveries/{delivery_id}/retry", summary="Send a delivery (a dead letter) again")
def retry(request: Request, delivery_id: DeliveryId, its: Its, svc: Svc, principal: Admin) -> dict[str, Any]:
    out = its.webhooks.retry(delivery_id)
    svc.record(request, principal, "webhook.retry", "webhook", out["subscription_id"], {"delivery": delivery_id})
    return out


@router.get("/webhooks/{webhook_id}", summary="One webhook subscription")
def get_webhook(webhook_id: WebhookId, its: Its, _: Admin) -> dict[str, Any]:
    return its.webhooks.get(webhook_id)


@router.patch("/webhooks/{webhook_id}", summary="Change a subscription (rotate_secret: a new secret)")
def patch_webhook(
    request: Request, webhook_id: WebhookId, body: WebhookPatch, its: Its, svc: Svc, principal: Admin
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    out = its.webhooks.update(webhook_id, **changes)
    svc.record(request, principal, "webhook.update", "webhook", webhook_id, {"fields": sorted(changes)})
    return out


@router.delete("/webhooks/{webhook_id}", summary="Delete a subscription and its deliveries")
def delete_webhook(request: Request, webhook_id: WebhookId, its: Its, svc: Svc, principal: Admin) -> dict[str, Any]:
    out = its.webhooks.delete(webhook_id)
    svc.record(request, principal, "webhook.delete", "webhook", webhook_id, {"url": out["url"]})
    return out


@router.post("/webhooks/{webhook_id}/test", status_code=202, summary="Send a test delivery")
def send_test(webhook_id: WebhookId, its: Its, _: Admin) -> dict[str, Any]:
    return its.webhooks.delivery(its.webhooks.send_test(webhook_id))
