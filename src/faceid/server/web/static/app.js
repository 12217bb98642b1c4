// faceid web UI: every page is a shell rendered by the server; this script fills it from /api/v1.
"use strict";

const API = "/api/v1";
const ROLES = ["viewer", "operator", "admin"];

// ---- helpers -------------------------------------------------------------------------------------

function $(selector, root) { return (root || document).querySelector(selector); }
function $all(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function csrfToken() {
  const meta = $('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const match = document.cookie.match(/(?:^|; )faceid_csrf=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

class ApiError extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, { json, form, query } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  else if (form !== undefined) body = form;
  let url = path.startsWith("/") ? path : `${API}/${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== "" && v !== false) params.set(k, v);
    const text = params.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  } catch (error) {
    throw new ApiError(0, "The server cannot be reached. Is it running?", "network");
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    if (response.status === 401 && document.body.dataset.page !== "login") {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
    const message = (data && data.detail) ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail))
      : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, data && data.code);
  }
  return data;
}

function flash(message, kind = "error") {
  const box = $("#flash");
  if (!box) { alert(message); return; }
  const item = el("div", { class: `flash ${kind}` }, message, el("button", { class: "link", type: "button", "aria-label": "dismiss", onclick: () => item.remove() }, "×"));
  box.append(item);
  if (kind === "ok") setTimeout(() => item.remove(), 6000);
  item.scrollIntoView({ block: "nearest" });
}

function clearFlash() { const box = $("#flash"); if (box) box.replaceChildren(); }

// Warnings about faces just enrolled (already in the gallery as someone else), shown now or on the next page.
function faceWarnings(faces) { return (faces || []).map((face) => face.warning).filter(Boolean); }
function keepWarnings(warnings) { if (warnings.length) sessionStorage.setItem("faceid-warnings", JSON.stringify(warnings)); }
function showKeptWarnings() {
  const kept = sessionStorage.getItem("faceid-warnings");
  sessionStorage.removeItem("faceid-warnings");
  if (kept) for (const warning of JSON.parse(kept)) flash(warning, "warn");
}

async function guarded(action, button) {
  clearFlash();
  if (button) button.disabled = true;
  try { return await action(); }
  catch (error) { flash(error.message || String(error)); return undefined; }
  finally { if (button) button.disabled = false; }
}

function canDo(role) {
  const mine = document.body.dataset.role || "";
  return ROLES.indexOf(mine) >= ROLES.indexOf(role);
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString();
}

function pct(value) { return value === null || value === undefined ? "" : `${Math.round(value * 100)}%`; }

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// ---- webcam --------------------------------------------------------------------------------------

// Each page may have a webcam panel; a capture adds a JPEG file to the page's pending photos.
const captured = {};

function setUpWebcams() {
  for (const toggle of $all(".webcam-toggle")) {
    const target = toggle.dataset.target;
    const panel = $(`#webcam-${target}`);
    if (!panel) continue;
    captured[target] = [];
    const video = $("video", panel);
    const status = $(".webcam-status", panel);
    let stream = null;
    toggle.addEventListener("click", async () => {
      if (stream) {
        stream.getTracks().forEach((t) => t.stop());
        stream = null; panel.hidden = true; toggle.textContent = "Use webcam";
        return;
      }
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        flash("This browser gives no camera access here (it needs https or localhost)."); return;
      }
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
      } catch (error) {
        flash(`No camera: ${error.message}`); return;
      }
      video.srcObject = stream; panel.hidden = false; toggle.textContent = "Close webcam";
    });
    $(".webcam-capture", panel).addEventListener("click", () => {
      if (!stream) return;
      const canvas = el("canvas", { width: video.videoWidth, height: video.videoHeight });
      canvas.getContext("2d").drawImage(video, 0, 0);
      canvas.toBlob((blob) => {
        captured[target].push(new File([blob], `webcam-${Date.now()}.jpg`, { type: "image/jpeg" }));
        status.textContent = `${captured[target].length} capture(s) ready`;
        if (target === "identify") $("#identify-form").requestSubmit();
      }, "image/jpeg", 0.92);
    });
  }
}

function takeCaptures(target) {
  const files = captured[target] || [];
  captured[target] = [];
  const panel = $(`#webcam-${target}`);
  if (panel) $(".webcam-status", panel).textContent = "";
  return files;
}

// ---- shared pieces -------------------------------------------------------------------------------

// How likely a stranger is to score as well, in words ("about 1 in 40,000"): the calibration's estimate,
// never a percentage that would read as the chance of being right.
function strangerOdds(rate) {
  if (rate === null || rate === undefined) return null;
  if (rate <= 1e-6) return "fewer than 1 in a million strangers would match this well";
  const n = Math.round(1 / rate);
  return `about 1 in ${n.toLocaleString("en")} strangers would match this well`;
}

function decisionText(face) {
  const odds = strangerOdds(face.stranger_rate);
  if (face.known) return odds || "closer than the threshold (uncalibrated)";
  if (face.outcome === "ambiguous") {
    const [a, b] = face.candidates;
    return `${a.name} or ${b.name}: both pass and are too close to call`;
  }
  return "no one in the gallery is close enough";
}

function eventItem(event, { onEnrolled } = {}) {
  const who = event.known
    ? el("a", { href: `/people/${event.person_id}`, class: "who known" }, event.person_name || `person ${event.person_id}`)
    : el("span", { class: "who unknown" }, "Unknown");
  const item = el("li", { class: `event ${event.known ? "known" : "unknown"}`, "data-event-id": event.id },
    // The face the event is about (its box in the snapshot); the whole frame is a click away.
    event.face_url
      ? el("a", { href: event.snapshot_url, target: "_blank", class: "event-face", title: "the whole frame" },
        el("img", { src: event.face_url, alt: "the face of this event", loading: "lazy" }))
      : event.snapshot_url ? el("img", { src: event.snapshot_url, alt: "snapshot", loading: "lazy" }) : el("div", { class: "noimg" }, "no snapshot"),
    el("div", { class: "body" },
      who,
      el("div", { class: "meta" }, when(event.time), event.source ? ` · ${event.source}` : "",
        event.known && event.metadata && event.metadata.stranger_rate != null
          ? ` · ${strangerOdds(event.metadata.stranger_rate)}` : "",
        !event.known && event.metadata && event.metadata.outcome === "ambiguous"
          ? ` · ambiguous: ${(event.metadata.votes && Object.keys(event.metadata.votes).join(" or ")) || "two people"}` : "")));
  if (!event.known && event.snapshot_url && canDo("operator")) {
    const form = el("form", { class: "inline-enroll" },
      el("input", { name: "name", placeholder: "name", required: true, maxlength: 200, "aria-label": "name of the new person" }),
      el("button", { type: "submit", class: "primary" }, "Enroll as new person"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      guarded(async () => {
        const person = await api("POST", `events/${event.id}/enroll`, { json: { name: form.name.value } });
        form.replaceWith(el("span", { class: "ok" }, "Enrolled as ", el("a", { href: `/people/${person.id}` }, person.name)));
        for (const warning of faceWarnings(person.faces)) flash(warning, "warn");
        if (onEnrolled) onEnrolled(person);
      }, form.querySelector("button"));
    });
    $(".body", item).append(form);
  }
  return item;
}

function personCard(person) {
  return el("a", { class: "person-card", href: `/people/${person.id}`, "data-person-id": person.id },
    person.thumbnail_url ? el("img", { src: person.thumbnail_url, alt: person.name, loading: "lazy" }) : el("div", { class: "noimg" }, "?"),
    el("span", { class: "name" }, person.name),
    el("small", {}, `${person.face_count} face${person.face_count === 1 ? "" : "s"}`));
}

async function fillPeopleSelect(select, { exclude } = {}) {
  const page = await api("GET", "people", { query: { limit: 500 } });
  for (const person of page.items) {
    if (person.id === exclude) continue;
    select.append(el("option", { value: person.id }, person.name));
  }
}

// ---- pages ---------------------------------------------------------------------------------------

const pages = {};

pages.login = () => {
  const form = $("#login-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      await api("POST", "auth/login", { json: { username: form.username.value, password: form.password.value } });
      location.href = document.body.dataset.next || "/";
    }, $("button", form));
  });
};

pages.dashboard = async () => {
  guarded(async () => {
    const stats = await api("GET", "stats");
    $("#stat-people").textContent = stats.people;
    $("#stat-faces").textContent = stats.faces;
    $("#stat-events").textContent = stats.events;
    $("#stat-unknown").textContent = stats.unknown_events_today;
    $("#stat-model").textContent = `Model ${stats.model_id}, detector ${stats.detector}, database ${stats.backend}.`;
    const rule = await api("GET", "calibration");
    const people = Math.max(rule.people, 1);
    $("#calibration-summary").textContent = rule.target_fpir === null
      ? `No calibration: faces are named under the distance ${rule.threshold.toFixed(3)} (run faceid calibrate).`
      : `${rule.calibration === "shipped" ? "Built-in calibration" : "Calibration from your labelled photos"}: `
        + `about 1 in ${Math.round(1 / rule.target_fpir)} strangers would be named as someone among the `
        + `${people} ${people === 1 ? "person" : "people"} enrolled (threshold ${rule.threshold.toFixed(3)}).`;
    if (rule.cameras.length) {
      const table = $("#calibration-cameras");
      $("tbody", table).replaceChildren(...rule.cameras.map((c) => el("tr", {},
        el("td", {}, c.camera),
        el("td", {}, c.in_force === "camera"
          ? `its own strangers (threshold x ${c.scale.toFixed(2)})`
          : `the model's, until ${c.needed} strangers are seen`),
        el("td", {}, `${c.strangers}${c.left_out ? ` (${c.left_out} close to someone enrolled, left out)` : ""}`),
        el("td", {}, c.threshold.toFixed(3)))));
      table.hidden = false;
    }
    const events = await api("GET", "events", { query: { limit: 8 } });
    const list = $("#recent-events");
    list.replaceChildren(...events.items.map((e) => eventItem(e)));
    if (!events.items.length) list.append(el("li", { class: "empty" }, "No events yet."));
  });
};

pages.people = () => {
  const grid = $("#people-grid");
  const more = $("#people-more");
  const search = $("#people-search");
  let offset = 0;
  async function load(reset) {
    if (reset) { offset = 0; grid.replaceChildren(); }
    const page = await api("GET", "people", { query: { q: search.value.trim(), limit: 60, offset } });
    grid.append(...page.items.map(personCard));
    if (!grid.children.length) grid.append(el("p", { class: "empty" }, search.value ? "Nobody matches." : "Nobody enrolled yet."));
    $("#people-count").textContent = `${page.total} ${page.total === 1 ? "person" : "people"}`;
    offset = page.next_offset || 0;
    more.hidden = page.next_offset === null;
  }
  search.addEventListener("input", debounce(() => guarded(() => load(true)), 250));
  more.addEventListener("click", () => guarded(() => load(false), more));
  guarded(() => load(true));
  const form = $("#enroll-form");
  if (form) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const files = [...$("#enroll-photos").files, ...takeCaptures("enroll")];
      if (!files.length) { flash("Choose at least one photo (or capture one with the webcam)."); return; }
      const data = new FormData();
      data.set("name", form.name.value);
      if (form.largest.checked) data.set("largest", "true");
      for (const file of files) data.append("photos", file);
      guarded(async () => {
        const person = await api("POST", "enroll", { form: data });
        keepWarnings(faceWarnings(person.faces));
        location.href = `/people/${person.id}?enrolled=1`;
      }, $("#enroll-submit"));
    });
  }
};

pages.person = () => {
  const id = Number(document.body.dataset.personId);
  async function load() {
    const person = await api("GET", `people/${id}`);
    document.title = `${person.name} · faceid`;
    $("#person-name").textContent = person.name;
    $("#person-meta").textContent = [
      `${person.face_count} face${person.face_count === 1 ? "" : "s"}`,
      person.external_id ? `external id ${person.external_id}` : "",
      `enrolled ${when(person.created_at)}`,
      person.notes || "",
    ].filter(Boolean).join(" · ");
    $("#rename-name").value = person.name;
    $("#person-notes").value = person.notes || "";
    const grid = $("#face-grid");
    grid.replaceChildren(...person.faces.map((face) => el("figure", { class: "face", "data-face-id": face.id },
      face.thumbnail_url ? el("a", { href: face.image_url, target: "_blank" }, el("img", { src: face.thumbnail_url, alt: `face ${face.id}` })) : el("div", { class: "noimg" }, "no image"),
      el("figcaption", {}, when(face.created_at),
        canDo("operator") ? el("button", { type: "button", class: "link danger", onclick: () => removeFace(face.id) }, "remove") : null))));
    if (!person.faces.length) grid.append(el("p", { class: "empty" }, "No faces yet: add a photo."));
  }
  async function removeFace(faceId) {
    if (!(await confirmDialog("Remove this face?", "Remove"))) return;
    guarded(async () => { await api("DELETE", `faces/${faceId}`); await load(); flash("Face removed.", "ok"); });
  }
  guarded(async () => {
    await load();  // (guarded clears the messages first: these come after)
    if (new URLSearchParams(location.search).has("enrolled")) flash("Enrolled.", "ok");
    showKeptWarnings();
  });
  if (!canDo("operator")) return;
  guarded(() => fillPeopleSelect($("#merge-select"), { exclude: id }));
  $("#add-face-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const files = [...$("#add-photos").files, ...takeCaptures("add")];
    if (!files.length) { flash("Choose a photo (or capture one with the webcam)."); return; }
    const data = new FormData();
    for (const file of files) data.append("photos", file);
    guarded(async () => {
      const faces = await api("POST", `people/${id}/faces`, { form: data });
      $("#add-photos").value = "";
      await load();
      flash("Photo added.", "ok");
      for (const warning of faceWarnings(faces)) flash(warning, "warn");
    }, $("#add-face-form button[type=submit]"));
  });
  $("#rename-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      await api("PATCH", `people/${id}`, { json: { name: $("#rename-name").value, notes: $("#person-notes").value } });
      await load();
      flash("Saved.", "ok");
    }, $("#rename-form button"));
  });
  $("#merge-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const select = $("#merge-select");
    const other = Number(select.value);
    if (!other) return;
    const name = select.selectedOptions[0].textContent;
    confirmDialog(`Merge ${name} into this person? ${name}'s faces and events move here and ${name} is deleted.`, "Merge").then((ok) => {
      if (!ok) return;
      guarded(async () => {
        await api("POST", `people/${id}/merge`, { json: { absorb: other } });
        select.selectedOptions[0].remove();
        await load();
        flash(`Merged ${name}.`, "ok");
      });
    });
  });
  $("#delete-person").addEventListener("click", async () => {
    const name = $("#person-name").textContent;
    if (!(await confirmDialog(`Delete ${name} with all their faces and events? This cannot be undone.`, "Delete"))) return;
    guarded(async () => {
      await api("DELETE", `people/${id}`);
      location.href = "/people";
    });
  });
};

function confirmDialog(text, okLabel) {
  const dialog = $("#confirm-dialog");
  if (!dialog || !dialog.showModal) return Promise.resolve(window.confirm(text));
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel || "OK";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

pages.identify = () => {
  const form = $("#identify-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const file = takeCaptures("identify").pop() || $("#identify-photo").files[0];
    if (!file) { flash("Choose a photo (or capture one with the webcam)."); return; }
    const data = new FormData();
    data.set("photo", file);
    clearResult();  // a refused photo must not leave the previous photo's faces and names on screen
    guarded(async () => {
      const result = await api("POST", "identify", { form: data });
      await drawResult(file, result);
    }, $("button[type=submit]", form));
  });
  function clearResult() {
    $("#identify-result").hidden = true;
    $("#identify-matches").replaceChildren();
    const canvas = $("#identify-canvas");
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }
  async function drawResult(file, result) {
    const url = URL.createObjectURL(file);
    const image = new Image();
    await new Promise((resolve, reject) => { image.onload = resolve; image.onerror = () => reject(new Error("The browser cannot show this image.")); image.src = url; });
    const canvas = $("#identify-canvas");
    const scale = Math.min(1, 900 / result.width);
    canvas.width = Math.round(result.width * scale);
    canvas.height = Math.round(result.height * scale);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    URL.revokeObjectURL(url);
    const list = $("#identify-matches");
    list.replaceChildren();
    ctx.lineWidth = Math.max(2, canvas.width / 300);
    ctx.font = `${Math.max(13, Math.round(canvas.width / 45))}px system-ui, sans-serif`;
    result.faces.forEach((face, index) => {
      const [x1, y1, x2, y2] = face.box.map((v) => v * scale);
      const color = face.known ? "#1a9b5b" : "#d2412f";
      const label = `${index + 1}. ${face.known ? face.person.name : "Unknown"}`;
      ctx.strokeStyle = color;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const width = ctx.measureText(label).width + 10;
      const height = parseInt(ctx.font, 10) + 8;
      const top = y1 >= height ? y1 - height : y2;
      ctx.fillStyle = color;
      ctx.fillRect(x1, top, width, height);
      ctx.fillStyle = "#fff";
      ctx.fillText(label, x1 + 5, top + height - 6);
      const candidates = face.candidates.slice(0, 2).map((c) => el("li", {},
        el("a", { href: `/people/${c.person_id}` }, c.name),
        ` — distance ${c.distance.toFixed(3)}, score ${c.score.toFixed(3)}`));
      list.append(el("li", { class: face.outcome || (face.known ? "known" : "unknown"), "data-known": face.known,
                             "data-outcome": face.outcome },
        el("b", {}, face.known ? face.person.name : (face.outcome === "ambiguous" ? "Ambiguous" : "Unknown")),
        ` — ${decisionText(face)}`,
        el("div", { class: "meta" }, `threshold ${face.threshold.toFixed(3)} (${face.calibration} calibration)`,
          face.quality ? ` · face ${Math.round(face.quality.size)} px, quality ${face.quality.score.toFixed(2)}` : ""),
        candidates.length ? el("ul", { class: "candidates" }, candidates) : null));
    });
    if (!result.faces.length) list.append(el("li", { class: "empty" }, "No face found in this photo."));
    $("#identify-result").hidden = false;
  }
};

pages.events = () => {
  const list = $("#event-list");
  const more = $("#events-more");
  const filters = $("#event-filters");
  const status = $("#live-status");
  let offset = 0;
  let source = null;
  function query() {
    const since = $("#filter-since").value;
    return {
      person_id: $("#filter-person").value,
      source: $("#filter-source").value.trim(),
      unknown: $("#filter-unknown").checked ? "true" : "",
      since: since ? new Date(since).toISOString() : "",
    };
  }
  function matches(event, q) {
    if (q.person_id && String(event.person_id) !== q.person_id) return false;
    if (q.source && event.source !== q.source) return false;
    if (q.unknown && event.known) return false;
    if (q.since && new Date(event.time) < new Date(q.since)) return false;
    return true;
  }
  async function load(reset) {
    if (reset) { offset = 0; list.replaceChildren(); }
    const page = await api("GET", "events", { query: { ...query(), limit: 30, offset } });
    list.append(...page.items.map((e) => eventItem(e)));
    if (!list.children.length) list.append(el("li", { class: "empty" }, "No events match."));
    offset = page.next_offset || 0;
    more.hidden = page.next_offset === null;
  }
  function connect() {
    if (source) source.close();
    const q = query();
    const params = new URLSearchParams();
    for (const key of ["person_id", "source", "unknown"]) if (q[key]) params.set(key, q[key]);
    source = new EventSource(`${API}/events/stream?${params}`);
    source.onopen = () => { status.textContent = "● live"; status.className = "live on"; };
    source.onerror = () => { status.textContent = "● reconnecting"; status.className = "live off"; };
    source.addEventListener("event", (message) => {
      const event = JSON.parse(message.data);
      if (!matches(event, query()) || list.querySelector(`[data-event-id="${event.id}"]`)) return;
      const empty = list.querySelector(".empty");
      if (empty) empty.remove();
      const item = eventItem(event);
      item.classList.add("fresh");
      list.prepend(item);
    });
  }
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => { await load(true); connect(); });
  });
  more.addEventListener("click", () => guarded(() => load(false), more));
  guarded(() => fillPeopleSelect($("#filter-person")));
  guarded(async () => { await load(true); connect(); });
};

pages.account = () => {
  const form = $("#password-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      await api("POST", "auth/password", { json: { current_password: $("#current-password").value, new_password: $("#new-password").value } });
      form.reset();
      flash("Password changed. Your other sessions were logged out.", "ok");
    }, $("button", form));
  });
};

pages.users = () => {
  const body = $("#user-table tbody");
  async function load() {
    const users = await api("GET", "users");
    body.replaceChildren(...users.map((user) => {
      const role = el("select", { "aria-label": `role of ${user.username}` }, ROLES.map((r) => el("option", { value: r, selected: r === user.role }, r)));
      role.addEventListener("change", () => guarded(async () => { await api("PATCH", `users/${user.id}`, { json: { role: role.value } }); flash(`${user.username} is now ${role.value}.`, "ok"); await load(); }));
      const actions = el("td", { class: "actions" },
        el("button", { type: "button", class: "link", onclick: () => resetPassword(user) }, "set password"),
        el("button", { type: "button", class: "link", onclick: () => guarded(async () => { await api("PATCH", `users/${user.id}`, { json: { disabled: !user.disabled } }); await load(); }) }, user.disabled ? "enable" : "disable"),
        el("button", { type: "button", class: "link danger", onclick: () => { if (confirm(`Delete user ${user.username}?`)) guarded(async () => { await api("DELETE", `users/${user.id}`); await load(); }); } }, "delete"));
      return el("tr", { "data-user": user.username }, el("td", {}, user.username), el("td", {}, role),
        el("td", {}, user.disabled ? "disabled" : "active"), el("td", {}, when(user.last_login_at) || "never"), actions);
    }));
  }
  function resetPassword(user) {
    const password = prompt(`New password for ${user.username} (at least 8 characters):`);
    if (!password) return;
    guarded(async () => { await api("PATCH", `users/${user.id}`, { json: { password } }); flash(`Password of ${user.username} changed; their sessions ended.`, "ok"); });
  }
  $("#user-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      await api("POST", "users", { json: { username: $("#new-username").value, password: $("#new-user-password").value, role: $("#new-role").value } });
      e.target.reset();
      await load();
      flash("User created.", "ok");
    }, $("#user-form button"));
  });
  guarded(load);
};

pages.keys = () => {
  const body = $("#key-table tbody");
  async function load() {
    const keys = await api("GET", "api-keys");
    body.replaceChildren(...keys.map((key) => el("tr", { class: key.active ? "" : "revoked" },
      el("td", {}, key.name), el("td", {}, el("code", {}, `fid_${key.prefix}_…`)), el("td", {}, key.scopes.join(", ")),
      el("td", {}, when(key.created_at)), el("td", {}, when(key.last_used_at) || "never"),
      el("td", {}, key.active
        ? el("button", { type: "button", class: "link danger", onclick: () => { if (confirm(`Revoke the key ${key.name}? Devices using it stop working at once.`)) guarded(async () => { await api("DELETE", `api-keys/${key.id}`); await load(); }); } }, "revoke")
        : `revoked ${when(key.revoked_at)}`))));
  }
  $("#key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const scopes = $all('input[name="scope"]:checked').map((box) => box.value);
    guarded(async () => {
      const key = await api("POST", "api-keys", { json: { name: $("#key-name").value, scopes } });
      $("#new-key-value").textContent = key.key;
      $("#new-key").hidden = false;
      await load();
    }, $("#key-form button"));
  });
  $("#copy-key").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("#new-key-value").textContent); flash("Copied.", "ok"); }
    catch { flash("Select the key and copy it by hand."); }
  });
  guarded(load);
};

pages.audit = () => {
  const body = $("#audit-table tbody");
  const more = $("#audit-more");
  let offset = 0;
  async function load() {
    const entries = await api("GET", "audit", { query: { limit: 100, offset } });
    body.append(...entries.map((entry) => el("tr", {},
      el("td", {}, when(entry.time)), el("td", {}, entry.actor || entry.actor_type), el("td", {}, entry.action),
      el("td", {}, entry.target_type ? `${entry.target_type} ${entry.target_id || ""}` : ""),
      el("td", {}, el("code", {}, JSON.stringify(entry.details))), el("td", {}, entry.address || ""))));
    offset += entries.length;
    more.hidden = entries.length < 100;
  }
  more.addEventListener("click", () => guarded(load, more));
  guarded(load);
};

// ---- start ---------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  if (!canDo("operator")) $all(".needs-operator").forEach((node) => { node.hidden = true; });
  const logout = $("#logout");
  if (logout) {
    logout.addEventListener("click", () => guarded(async () => {
      await api("POST", "auth/logout");
      location.href = "/login";
    }));
  }
  setUpWebcams();
  const init = pages[document.body.dataset.page];
  if (init) init();
});
