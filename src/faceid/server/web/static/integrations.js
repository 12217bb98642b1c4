// faceid web UI, Integrations page (admins): MQTT settings and status, webhooks, deliveries and dead letters.
// Uses the helpers of app.js ($, $all, el, api, guarded, flash, when, pages), loaded before it.
"use strict";

pages.integrations = () => {
  const seconds = (value) => new Date(value * 1000).toISOString();

  async function loadStatus() {
    const status = await api("GET", "integrations");
    const s = status.settings;
    const m = status.mqtt;
    $("#mqtt-url").placeholder = s.mqtt_url || "mqtt://user:pass@host:1883/faceid";
    $("#public-url").value = s.public_url || "";
    $("#presence-timeout").value = s.presence_timeout;
    $("#unknown-timeout").value = s.unknown_timeout;
    $("#discovery").checked = s.discovery;
    $("#mqtt-status").textContent = !s.mqtt_url ? "MQTT is off."
      : !status.leader ? `Publishing to ${s.mqtt_url} is done by another faceid process on this data folder.`
      : m ? `${m.connected ? "Connected to" : "Not connected to"} ${m.broker} · ${m.queued} queued · ${m.delivered} delivered`
          + (m.dropped ? ` · ${m.dropped} dropped (queue full)` : "") + (m.last_error ? ` · ${m.last_error}` : "")
      : "Starting…";
  }

  async function loadHooks() {
    const hooks = await api("GET", "webhooks");
    $("#hook-table tbody").replaceChildren(...hooks.map((hook) => {
      const filters = [hook.decisions.join("/") || "all", hook.person_id ? `person ${hook.person_id}` : "", hook.camera ? `camera ${hook.camera}` : ""];
      const secret = el("code", {}, "whsec_…");
      return el("tr", { class: hook.enabled ? "" : "revoked" },
        el("td", {}, hook.name), el("td", {}, el("code", {}, hook.url)), el("td", {}, filters.filter(Boolean).join(", ")),
        el("td", {}, secret, " ", el("button", { type: "button", class: "link", onclick: () => { secret.textContent = hook.secret; } }, "show")),
        el("td", {}, el("button", { type: "button", class: "link", onclick: () => { $("#delivery-status").value = ""; guarded(() => loadDeliveries(hook.id)); } }, "log")),
        el("td", { class: "actions" },
          el("button", { type: "button", class: "link", onclick: () => guarded(async () => { await api("POST", `webhooks/${hook.id}/test`); flash("Test delivery queued.", "ok"); setTimeout(() => guarded(() => loadDeliveries(hook.id)), 1500); }) }, "send test"), " ",
          el("button", { type: "button", class: "link", onclick: () => guarded(async () => { await api("PATCH", `webhooks/${hook.id}`, { json: { enabled: !hook.enabled } }); await loadHooks(); }) }, hook.enabled ? "disable" : "enable"), " ",
          el("button", { type: "button", class: "link danger", onclick: () => { if (confirm(`Delete the webhook ${hook.name} and its delivery log?`)) guarded(async () => { await api("DELETE", `webhooks/${hook.id}`); await loadHooks(); await loadDeliveries(); }); } }, "delete")));
    }));
  }

  async function loadDeliveries(subscriptionId) {
    const rows = await api("GET", "webhooks/deliveries", { query: { status: $("#delivery-status").value, subscription_id: subscriptionId } });
    $("#delivery-table tbody").replaceChildren(...rows.map((d) => el("tr", {},
      el("td", {}, d.id), el("td", {}, d.subscription_id), el("td", {}, el("code", {}, d.event_key)),
      el("td", {}, d.status === "dead" ? el("b", {}, "dead letter") : d.status), el("td", {}, d.attempts),
      el("td", {}, d.last_error || (d.last_status ? `HTTP ${d.last_status}` : "")), el("td", {}, when(seconds(d.updated))),
      el("td", {}, d.status !== "delivered"
        ? el("button", { type: "button", class: "link", onclick: () => guarded(async () => { await api("POST", `webhooks/deliveries/${d.id}/retry`); await loadDeliveries(subscriptionId); }) }, "send again")
        : ""))));
  }

  $("#mqtt-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const body = {
      public_url: $("#public-url").value.trim(),
      presence_timeout: Number($("#presence-timeout").value),
      unknown_timeout: Number($("#unknown-timeout").value),
      discovery: $("#discovery").checked,
    };
    if ($("#mqtt-url").value.trim()) body.mqtt_url = $("#mqtt-url").value.trim();
    guarded(async () => { await api("PUT", "integrations/mqtt", { json: body }); $("#mqtt-url").value = ""; flash("Saved.", "ok"); await loadStatus(); }, $("#mqtt-form button"));
  });
  $("#mqtt-off").addEventListener("click", () => {
    if (confirm("Stop publishing to MQTT?")) guarded(async () => { await api("PUT", "integrations/mqtt", { json: { mqtt_url: "" } }); await loadStatus(); });
  });
  $("#hook-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const person = $("#hook-person").value;
    const json = {
      url: $("#hook-url").value.trim(),
      name: $("#hook-name").value.trim() || null,
      decisions: $all('input[name="decision"]:checked').map((box) => box.value),
      person_id: person ? Number(person) : null,
      camera: $("#hook-camera").value.trim() || null,
    };
    guarded(async () => {
      const hook = await api("POST", "webhooks", { json });
      flash(`Webhook added. Its signing secret: ${hook.secret}`, "ok");
      $("#hook-form").reset();
      await loadHooks();
    }, $("#hook-form button"));
  });
  $("#delivery-reload").addEventListener("click", () => guarded(() => loadDeliveries()));
  $("#delivery-status").addEventListener("change", () => guarded(() => loadDeliveries()));
  guarded(async () => { await loadStatus(); await loadHooks(); await loadDeliveries(); });
};
