// The Inbox page: visitors (clusters of unknown events) to name, merge, split, ignore or discard; corrections on
// events; the history searched by face; retention; forgetting a person. Uses the helpers of app.js.
"use strict";

pages.inbox = () => {
  if (!canDo("admin")) $all(".needs-admin").forEach((node) => { node.hidden = true; });
  const list = $("#visitor-list");
  const panel = $("#visitor-panel");
  const status = $("#visitor-status");
  let current = null;

  function faceImage(eventId, alt) {
    return eventId ? el("img", { src: `${API}/events/${eventId}/face`, alt, loading: "lazy" }) : el("div", { class: "noimg" }, "?");
  }

  function visitorCard(visitor) {
    const title = visitor.person_name ? `${visitor.label} · ${visitor.person_name}` : visitor.label;
    return el("a", { class: "person-card visitor-card", href: `#visitor-${visitor.id}`, "data-visitor-id": visitor.id,
      onclick: (e) => { e.preventDefault(); guarded(() => open(visitor.id)); } },
      faceImage(visitor.best_events[0], title),
      el("span", { class: "name" }, title),
      el("small", {}, `seen ${visitor.events} time${visitor.events === 1 ? "" : "s"}`
        + (visitor.cameras.length ? `, ${visitor.cameras.join(" and ")}` : "")
        + (visitor.last_seen ? `, last ${when(visitor.last_seen)}` : "")));
  }

  async function loadVisitors() {
    const visitors = await api("GET", "visitors", { query: { status: status.value, limit: 200 } });
    list.replaceChildren(...(visitors.length ? visitors.map(visitorCard) : [el("p", { class: "empty" }, "No visitors here.")]));
    const merge = $("#merge-other");
    merge.replaceChildren(el("option", { value: "" }, "another visitor…"),
      ...visitors.filter((v) => !current || v.id !== current.id).map((v) => el("option", { value: v.id }, v.label)));
  }

  function correctionControls(event) {
    const box = el("div", { class: "row-form corrections" });
    if (!canDo("operator")) return box;
    if (event.known) {
      box.append(el("button", { type: "button", class: "secondary not-person", onclick: (e) => guarded(async () => {
        await api("POST", `events/${event.id}/not-person`);
        flash(`Event ${event.id} is not ${event.person_name}: noted, and kept apart from them from now on.`, "ok");
        await refresh();
      }, e.currentTarget) }, "Not this person"));
    }
    const select = el("select", { class: "this-is-person", "aria-label": "this is" }, el("option", { value: "" }, "This is…"));
    for (const option of $all("#name-person option")) if (option.value) select.append(el("option", { value: option.value }, option.textContent));
    select.addEventListener("change", () => guarded(async () => {
      if (!select.value) return;
      await api("POST", `events/${event.id}/this-is`, { json: { person_id: Number(select.value) } });
      flash(`Event ${event.id} labelled.`, "ok");
      await refresh();
    }));
    box.append(select);
    return box;
  }

  function eventRow(event, { tick = false, match = null } = {}) {
    const item = eventItem(event);
    const body = $(".body", item);
    const form = $(".inline-enroll", item);
    if (form) form.remove();  // naming happens for the whole visitor here
    if (match && match.score !== null && match.score !== undefined) body.append(el("div", { class: "meta" }, `score ${match.score.toFixed(3)}, distance ${match.distance.toFixed(3)}`));
    if (tick && canDo("operator")) body.prepend(el("label", { class: "check" }, el("input", { type: "checkbox", class: "split-pick", value: event.id }), " pick"));
    body.append(correctionControls(event));
    return item;
  }

  async function open(id, { keepFlash = false } = {}) {
    if (!keepFlash) clearFlash();
    const visitor = await api("GET", `visitors/${id}`);
    current = visitor;
    panel.hidden = false;
    panel.dataset.visitorId = visitor.id;
    $("#visitor-title").textContent = visitor.person_name ? `${visitor.label} · ${visitor.person_name}` : visitor.label;
    $("#visitor-summary").textContent = `${visitor.status}, seen ${visitor.events} time(s)`
      + (visitor.cameras.length ? ` at ${visitor.cameras.join(" and ")}` : "") + (visitor.last_seen ? `, last ${when(visitor.last_seen)}` : "");
    const named = visitor.status === "named";
    $("#name-form").hidden = named;
    $("#merge-form").hidden = named;
    $("#ignore-visitor").hidden = named;
    $("#discard-visitor").hidden = named;
    $("#ignore-visitor").textContent = visitor.status === "ignored" ? "Alert again" : "Ignore (never alert)";
    $("#visitor-events").replaceChildren(...visitor.event_list.map((event) => eventRow(event, { tick: true })));
    await loadVisitors();
  }

  async function refresh() {
    await loadVisitors();
    if (current) {
      try { await open(current.id, { keepFlash: true }); } catch (error) { if (error.status === 404) { current = null; panel.hidden = true; } else throw error; }
    }
  }

  $("#name-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      const name = $("#name-input").value.trim();
      const person = $("#name-person").value;
      const result = await api("POST", `visitors/${current.id}/name`, { json: name ? { name } : { person_id: Number(person) } });
      flash(`${current.label} is ${result.person_name}: ${result.faces_enrolled} face(s) enrolled, ${result.events_labelled} event(s) named.`, "ok");
      $("#name-input").value = "";
      await fillPeople();
      await refresh();
    }, $("#name-submit"));
  });
  $("#merge-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      await api("POST", `visitors/${current.id}/merge`, { json: { other: Number($("#merge-other").value) } });
      await refresh();
    }, $("#merge-submit"));
  });
  $("#split-submit").addEventListener("click", (e) => guarded(async () => {
    const picked = $all(".split-pick:checked").map((box) => Number(box.value));
    const visitor = await api("POST", `visitors/${current.id}/split`, { json: { event_ids: picked } });
    flash(`Split out as ${visitor.label}.`, "ok");
    await refresh();
  }, e.currentTarget));
  $("#ignore-visitor").addEventListener("click", (e) => guarded(async () => {
    await api("POST", `visitors/${current.id}/ignore`, { json: { ignored: current.status !== "ignored" } });
    await refresh();
  }, e.currentTarget));
  $("#discard-visitor").addEventListener("click", (e) => guarded(async () => {
    await api("DELETE", `visitors/${current.id}`);
    current = null;
    panel.hidden = true;
    await loadVisitors();
  }, e.currentTarget));
  $("#visitor-history").addEventListener("click", (e) => guarded(async () => {
    showResults(await api("GET", "search/history", { query: { visitor_id: current.id } }));
  }, e.currentTarget));

  function showResults(found) {
    $("#search-summary").textContent = `${found.total} event(s) within the decision rule (score ≤ ${found.threshold.toFixed(3)}), newest first`;
    $("#search-results").replaceChildren(...found.events.map((event) => eventRow(event, { match: event.match })));
  }
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      const file = $("#search-photo").files[0];
      const person = $("#search-person").value;
      if (file) {
        const form = new FormData();
        form.append("photo", file);
        showResults(await api("POST", "search/history", { form }));
      } else if (person) {
        showResults(await api("GET", "search/history", { query: { person_id: person } }));
      } else {
        throw new ApiError(0, "Choose a photo or a person to search with.");
      }
    }, $("#search-submit"));
  });

  async function loadRetention() {
    const data = await api("GET", "retention");
    const labels = { known_events: "Known events", unknown_events: "Unknown events", snapshots: "Snapshots", crops: "Face crops" };
    const body = $("#retention-table tbody");
    body.replaceChildren(...Object.entries(data.rules).map(([kind, days]) => {
      const input = el("input", { type: "number", min: 0, max: 100000, value: days === null ? "" : days, "data-kind": kind,
        "aria-label": `${labels[kind] || kind}: days kept`, disabled: !canDo("admin") });
      input.addEventListener("change", () => guarded(async () => {
        await api("PUT", `retention/${kind}`, { json: { days: input.value === "" ? null : Number(input.value) } });
        flash(`${labels[kind] || kind}: ${input.value === "" ? "kept for ever" : `kept ${input.value} day(s)`}.`, "ok");
      }));
      return el("tr", {}, el("td", {}, labels[kind] || kind), el("td", {}, input));
    }));
    $("#retention-last").textContent = data.last_pass
      ? `Last pass ${when(data.last_pass.time)}: removed ${Object.entries(data.last_pass.removed).map(([k, n]) => `${n} ${k.replace("_", " ")}`).join(", ")}`
      : "The retention job has not run yet.";
  }
  $("#retention-apply").addEventListener("click", (e) => guarded(async () => {
    const result = await api("POST", "retention/apply");
    flash(`Removed ${Object.entries(result.removed).map(([k, n]) => `${n} ${k.replace("_", " ")}`).join(", ")}.`, "ok");
    await refresh();
  }, e.currentTarget));

  async function fillPeople() {
    for (const id of ["#name-person", "#search-person", "#forget-person"]) {
      const select = $(id);
      select.replaceChildren(el("option", { value: "" }, "choose…"));
      await fillPeopleSelect(select);
    }
  }
  $("#forget-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      const select = $("#forget-person");
      if (!select.value) throw new ApiError(0, "Choose the person to forget.");
      const receipt = await api("POST", `people/${select.value}/forget`);
      const out = $("#forget-receipt");
      out.hidden = false;
      out.textContent = `Erasure receipt ${receipt.receipt}\n${JSON.stringify({ rows: receipt.rows, files: receipt.files, finetuned_versions_to_review: receipt.finetuned_versions_to_review }, null, 2)}`;
      current = null;
      panel.hidden = true;
      await fillPeople();
      await loadVisitors();
    }, $("#forget-submit"));
  });

  // Live: every unknown event may start or grow a visitor.
  const live = $("#live-status");
  // Not through guarded(): a reload must not clear the message of what the user just did.
  const reload = debounce(() => refresh().catch((error) => flash(error.message || String(error))), 300);
  const source = new EventSource(`${API}/events/stream`);
  source.onopen = () => { live.textContent = "● live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "● reconnecting"; live.className = "live off"; };
  source.addEventListener("event", () => reload());

  status.addEventListener("change", () => guarded(loadVisitors));
  guarded(async () => { await fillPeople(); await loadVisitors(); await loadRetention(); });
};
