// The map page: the gallery's faces in 2-D on a canvas, zoomable and pannable; hovering a point shows the face
// and the person. Data from GET /api/v1/viz/map; nothing is loaded from anywhere else.
"use strict";

(() => {
  const canvas = document.getElementById("map-canvas");
  if (!canvas) return;
  const frame = document.getElementById("map-frame");
  const tip = document.getElementById("map-tip");
  const tipImg = document.getElementById("map-tip-img");
  const tipName = document.getElementById("map-tip-name");
  const tipDetail = document.getElementById("map-tip-detail");
  const status = document.getElementById("map-status");
  const summary = document.getElementById("map-summary");
  const legend = document.getElementById("map-legend");
  const methodSelect = document.getElementById("map-method");
  const facesSelect = document.getElementById("map-max-faces");
  const unknownBox = document.getElementById("map-unknown");

  const PAD = 28;            // px kept free around the points at the initial view
  const HIT = 9;             // px: how close the pointer must be to a point to pick it
  const MIN_ZOOM = 0.5, MAX_ZOOM = 400;

  let data = null;
  let points = [];           // {x, y, kind, color, item}: world coordinates, one per face and event
  let bounds = null;
  let view = { scale: 1, dx: 0, dy: 0 };   // screen = world * scale + d (y flipped: up is up)
  let fitScale = 1;
  let hover = -1;
  let focusPerson = null;    // a person picked in the legend: the others are dimmed
  let drag = null;
  let request = 0;

  // ---- data ------------------------------------------------------------------------------------------

  async function load() {
    const mine = ++request;
    const params = new URLSearchParams({
      method: methodSelect.value, max_faces: facesSelect.value, unknown: unknownBox.checked ? "100" : "0",
    });
    status.textContent = methodSelect.value === "pca" ? "Loading…" : "Computing the projection (may take a while)…";
    canvas.dataset.ready = "0";
    let response;
    try {
      response = await fetch(`/api/v1/viz/map?${params}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (error) {
      status.textContent = "The server cannot be reached.";
      return;
    }
    if (mine !== request) return;   // a newer request was made meanwhile
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      status.textContent = body.detail ? String(body.detail) : `Error ${response.status}`;
      return;
    }
    data = body;
    const colors = new Map(data.people.map((p) => [p.id, p.color]));
    points = data.faces.map((f) => ({ x: f.x, y: f.y, kind: "face", color: colors.get(f.person_id) || "#888", item: f }))
      .concat(data.unknown.map((e) => ({ x: e.x, y: e.y, kind: "unknown", color: data.unknown_color, item: e })));
    fillLegend();
    const shown = data.faces.length;
    const extra = data.total_faces > shown ? ` (of ${data.total_faces}; whole people drawn at random)` : "";
    summary.textContent = `${shown} faces of ${data.people.length} people${extra}, ${data.unknown.length} unknown events. ` +
      `${data.method.toUpperCase()} of model ${data.model_id}.` +
      (data.details && data.details.explained_variance ?
        ` The two axes hold ${Math.round(100 * data.details.explained_variance.reduce((a, b) => a + b, 0))}% of the variance.` : "");
    status.textContent = points.length ? "" : "No faces enrolled yet.";
    canvas.dataset.points = String(data.faces.length);
    canvas.dataset.unknown = String(data.unknown.length);
    fit();
    canvas.dataset.ready = "1";
  }

  function fillLegend() {
    legend.replaceChildren();
    for (const person of data.people) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = person.color;
      item.append(swatch, document.createTextNode(`${person.name} (${person.faces})`));
      item.title = "Click to highlight; click again to show everyone";
      item.addEventListener("click", () => {
        focusPerson = focusPerson === person.id ? null : person.id;
        for (const other of legend.children) other.classList.toggle("dim", focusPerson !== null && other !== item);
        draw();
      });
      legend.append(item);
    }
    if (data.unknown.length) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch unknown";
      swatch.textContent = "×";
      item.append(swatch, document.createTextNode(`unknown events (${data.unknown.length})`));
      legend.append(item);
    }
  }

  // ---- view ------------------------------------------------------------------------------------------

  function size() {
    return { w: canvas.clientWidth, h: canvas.clientHeight };
  }

  function fit() {
    if (!points.length) { draw(); return; }
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const p of points) {
      if (p.x < x0) x0 = p.x; if (p.x > x1) x1 = p.x;
      if (p.y < y0) y0 = p.y; if (p.y > y1) y1 = p.y;
    }
    bounds = { x0, x1, y0, y1 };
    const { w, h } = size();
    const spanX = Math.max(x1 - x0, 1e-9), spanY = Math.max(y1 - y0, 1e-9);
    fitScale = Math.min((w - 2 * PAD) / spanX, (h - 2 * PAD) / spanY);
    view.scale = fitScale;
    view.dx = w / 2 - ((x0 + x1) / 2) * fitScale;
    view.dy = h / 2 + ((y0 + y1) / 2) * fitScale;
    draw();
  }

  function toScreen(p) {
    return { x: p.x * view.scale + view.dx, y: -p.y * view.scale + view.dy };
  }

  function zoomAt(factor, sx, sy) {
    const next = Math.min(Math.max(view.scale * factor, fitScale * MIN_ZOOM), fitScale * MAX_ZOOM);
    const k = next / view.scale;
    view.dx = sx - (sx - view.dx) * k;
    view.dy = sy - (sy - view.dy) * k;
    view.scale = next;
    draw();
  }

  // ---- drawing ---------------------------------------------------------------------------------------

  function draw() {
    const { w, h } = size();
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const zoom = view.scale / fitScale;
    canvas.dataset.zoom = zoom.toFixed(3);
    const radius = Math.min(4 + Math.log2(Math.max(zoom, 1)), 8) * (points.length > 3000 ? 0.7 : 1);
    points.forEach((p, i) => {
      const s = toScreen(p);
      if (s.x < -10 || s.y < -10 || s.x > w + 10 || s.y > h + 10) return;
      const dim = focusPerson !== null && !(p.kind === "face" && p.item.person_id === focusPerson);
      ctx.globalAlpha = dim ? 0.12 : 0.9;
      if (p.kind === "face") {
        ctx.beginPath();
        ctx.arc(s.x, s.y, i === hover ? radius + 2.5 : radius, 0, 2 * Math.PI);
        ctx.fillStyle = p.color;
        ctx.fill();
      } else {
        const r = (i === hover ? radius + 3 : radius + 1.5);
        ctx.beginPath();
        ctx.moveTo(s.x - r, s.y - r); ctx.lineTo(s.x + r, s.y + r);
        ctx.moveTo(s.x + r, s.y - r); ctx.lineTo(s.x - r, s.y + r);
        ctx.strokeStyle = p.color;
        ctx.lineWidth = i === hover ? 2.4 : 1.6;
        ctx.stroke();
      }
      if (i === hover) {
        ctx.globalAlpha = 1;
        ctx.beginPath();
        ctx.arc(s.x, s.y, radius + 5, 0, 2 * Math.PI);
        ctx.strokeStyle = "#161c2c";
        ctx.lineWidth = 1.2;
        ctx.stroke();
      }
    });
    ctx.globalAlpha = 1;
  }

  // ---- hover and tooltip -----------------------------------------------------------------------------

  function nearest(sx, sy) {
    let best = -1, bestDistance = HIT * HIT;
    points.forEach((p, i) => {
      const s = toScreen(p);
      const d = (s.x - sx) ** 2 + (s.y - sy) ** 2;
      if (d <= bestDistance) { best = i; bestDistance = d; }
    });
    return best;
  }

  function showTip(index, sx, sy) {
    if (index < 0) { tip.hidden = true; canvas.classList.remove("over-point"); return; }
    const p = points[index];
    canvas.classList.add("over-point");
    if (p.kind === "face") {
      const person = data.people.find((q) => q.id === p.item.person_id);
      tipName.textContent = p.item.name;
      tipDetail.textContent = `face ${p.item.face_id}` + (person ? ` · ${person.faces} face${person.faces === 1 ? "" : "s"}` : "");
    } else {
      tipName.textContent = "Unknown";
      const when = p.item.time ? new Date(p.item.time).toLocaleString() : "";
      tipDetail.textContent = `event ${p.item.event_id}` + (when ? ` · ${when}` : "") + (p.item.source ? ` · ${p.item.source}` : "");
    }
    if (p.item.image) {
      if (tipImg.getAttribute("src") !== p.item.image) tipImg.src = p.item.image;
      tipImg.alt = tipName.textContent;
      tipImg.hidden = false;
    } else {
      tipImg.removeAttribute("src");
      tipImg.hidden = true;
    }
    tip.hidden = false;
    const { w, h } = size();
    const box = tip.getBoundingClientRect();
    const left = sx + 16 + box.width > w ? sx - 16 - box.width : sx + 16;
    const top = Math.min(Math.max(sy - box.height / 2, 4), h - box.height - 4);
    tip.style.left = `${Math.max(left, 4)}px`;
    tip.style.top = `${top}px`;
  }

  function local(event) {
    const rect = canvas.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  canvas.addEventListener("pointermove", (event) => {
    const at = local(event);
    if (drag) {
      const moved = Math.abs(at.x - drag.x0) + Math.abs(at.y - drag.y0);
      if (moved > 3) drag.moved = true;
      view.dx = drag.dx + (at.x - drag.x0);
      view.dy = drag.dy + (at.y - drag.y0);
      tip.hidden = true;
      draw();
      return;
    }
    const found = nearest(at.x, at.y);
    if (found !== hover) { hover = found; draw(); }
    canvas.dataset.hover = String(hover);
    showTip(hover, at.x, at.y);
  });
  canvas.addEventListener("pointerleave", () => {
    if (drag) return;
    hover = -1;
    canvas.dataset.hover = "-1";
    tip.hidden = true;
    draw();
  });
  canvas.addEventListener("pointerdown", (event) => {
    const at = local(event);
    drag = { x0: at.x, y0: at.y, dx: view.dx, dy: view.dy, moved: false };
    canvas.setPointerCapture(event.pointerId);
    canvas.classList.add("dragging");
  });
  canvas.addEventListener("pointerup", (event) => {
    const wasClick = drag && !drag.moved;
    drag = null;
    canvas.classList.remove("dragging");
    if (wasClick) {
      const at = local(event);
      const found = nearest(at.x, at.y);
      if (found >= 0 && points[found].kind === "face") location.href = `/people/${points[found].item.person_id}`;
    }
  });
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const at = local(event);
    zoomAt(Math.exp(-event.deltaY * 0.0015), at.x, at.y);
  }, { passive: false });
  canvas.addEventListener("dblclick", (event) => {
    const at = local(event);
    zoomAt(2, at.x, at.y);
  });
  canvas.addEventListener("keydown", (event) => {
    const { w, h } = size();
    if (event.key === "+" || event.key === "=") zoomAt(1.5, w / 2, h / 2);
    else if (event.key === "-") zoomAt(1 / 1.5, w / 2, h / 2);
    else if (event.key === "0") fit();
  });

  document.getElementById("map-zoom-in").addEventListener("click", () => { const { w, h } = size(); zoomAt(1.5, w / 2, h / 2); });
  document.getElementById("map-zoom-out").addEventListener("click", () => { const { w, h } = size(); zoomAt(1 / 1.5, w / 2, h / 2); });
  document.getElementById("map-reset").addEventListener("click", () => { focusPerson = null; fit(); fillLegendState(); });
  function fillLegendState() { for (const item of legend.children) item.classList.remove("dim"); }
  methodSelect.addEventListener("change", load);
  facesSelect.addEventListener("change", load);
  unknownBox.addEventListener("change", load);
  new ResizeObserver(() => { if (points.length) fit(); else draw(); }).observe(frame);

  // For scripts and tests: where point i is on the screen (page coordinates), and the data drawn.
  window.faceidMap = {
    get data() { return data; },
    screenPosition(index) {
      const rect = canvas.getBoundingClientRect();
      const s = toScreen(points[index]);
      return { x: rect.left + s.x, y: rect.top + s.y };
    },
    indexOf(kind, id) {
      return points.findIndex((p) => p.kind === kind && (kind === "face" ? p.item.face_id === id : p.item.event_id === id));
    },
  };

  load();
})();
