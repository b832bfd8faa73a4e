// The node's web view. One EventSource: a `snapshot` of every section, then
// `change` events with only what changed; each section is redrawn from the state
// kept here. Hubs come from GET /hubs (re-read when peers or deals change, since a
// hub's standing follows them); task logs stream from GET /tasks/{id}/logs.
// Every value from the network goes into the page as text, never as HTML.
"use strict";

const view = { node: {}, peers: {}, mesh: {}, orders: {}, deals: {}, tasks: {}, figures: {} };
const history = { rate: [], spread: [] }; // figures over time, kept by the page (last 120)
const fresh = new Set(); // "section:id" of items that changed in the last event
let logsAbort = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "title") node.title = v;
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const short = (id) => (id.length > 14 ? id.slice(0, 6) + "…" + id.slice(-4) : id);

// a supplier sells through its hub wallet: to a person it is the hub
const ROLE_LABEL = { seed: "seed", supplier: "hub", worker: "worker", consumer: "consumer" };
const ROLE_HOW = {
  itself: "it said so in peer exchange",
  announcement: "its signed hub announcement",
  agreement: "our signed worker agreement",
  config: "a seed in our config",
  neighbour: "a neighbour said so (not checked)",
};
function roleText(p) {
  if (!p.role) return "?";
  return (ROLE_LABEL[p.role] || p.role) + (p.role_from === "neighbour" ? "?" : "");
}

function snm(wei) { // a wei string as SNM, exact to 6 places
  try {
    const v = BigInt(wei);
    const whole = v / 10n ** 18n;
    const frac = (v % 10n ** 18n).toString().padStart(18, "0").slice(0, 6).replace(/0+$/, "");
    return frac ? `${whole}.${frac}` : `${whole}`;
  } catch (e) { return String(wei); }
}

function duration(s) {
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600}h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${Math.round(n * 10) / 10}${units[i]}`;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function row(section, id, cells, cls) {
  const tr = el("tr", { "data-id": id, class: cls || "" }, ...cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
  if (fresh.has(`${section}:${id}`)) tr.classList.add("fresh");
  return tr;
}

function meshOf(peer) {
  return Object.entries(view.mesh).filter(([, m]) => m.mesh.includes(peer)).map(([t]) => t);
}

function renderNode() {
  const me = view.node.self;
  if (!me) return;
  document.getElementById("self").textContent = `${me.role} · ${me.peer_id}`;
}

function renderPeers() {
  const me = view.node.self;
  const ids = Object.keys(view.peers).sort((a, b) =>
    (view.peers[b].connected - view.peers[a].connected) || a.localeCompare(b));
  const up = ids.filter((id) => view.peers[id].connected).length;
  document.getElementById("peers-count").textContent = `${up} connected, ${ids.length} known`;
  fill(document.querySelector("#peers tbody"), ids.map((id) => {
    const p = view.peers[id];
    const topics = meshOf(id);
    return row("peers", id, [
      el("td", { class: "id", title: id }, short(id)),
      el("td", { class: `role role-${p.role || "unknown"}`, title: p.role ? ROLE_HOW[p.role_from] || "" : "not known yet" }, roleText(p)),
      el("td", { class: p.connected ? "ok" : "muted" }, p.connected ? "connected" : "known"),
      p.source,
      el("td", { class: "muted", title: (p.sees || []).join("\n") },
        (p.sees || []).map((x) => (me && x === me.peer_id ? "this node" : short(x))).join(", ")),
      el("td", { class: "muted" }, topics.map((t) => t.split("/").filter(Boolean).slice(-2).join("/")).join(", ")),
    ]);
  }));
  renderGraph(ids);
}

function renderGraph(ids) {
  // this node in the middle, its connections on the first ring, every other peer it
  // knows (learnt, or named by a neighbour) on the second
  const svg = document.getElementById("graph");
  const me = view.node.self;
  const inner = ids.filter((id) => view.peers[id].connected).slice(0, 24);
  const outer = ids.filter((id) => !view.peers[id].connected).slice(0, 40);
  const nodes = [];
  const place = (list, r, ring, turn) => list.forEach((id, i) => {
    const a = (2 * Math.PI * i) / Math.max(list.length, 1) - Math.PI / 2 + turn;
    nodes.push({ id, ring, x: Math.cos(a) * r * 1.45, y: Math.sin(a) * r });
  });
  place(inner, 85, 1, 0);
  place(outer, 140, 2, outer.length ? Math.PI / outer.length : 0);
  const parts = [];
  const at = new Map(nodes.map((n) => [n.id, n]));
  const drawn = new Set();
  for (const n of nodes) { // whom each neighbour sees, by its own peer exchange
    for (const other of view.peers[n.id].sees || []) {
      const m = at.get(other);
      const pair = [n.id, other].sort().join(" ");
      if (!m || drawn.has(pair)) continue;
      drawn.add(pair);
      let d;
      if (n.ring === 1 && m.ring === 1) { // bent away from this node, off our own links
        const mx = (n.x + m.x) / 2, my = (n.y + m.y) / 2;
        let px = -(m.y - n.y), py = m.x - n.x;
        if (px * mx + py * my < 0) { px = -px; py = -py; }
        d = `M ${n.x} ${n.y} Q ${mx + px * 0.45} ${my + py * 0.45} ${m.x} ${m.y}`;
      } else {
        d = `M ${n.x} ${n.y} L ${m.x} ${m.y}`;
      }
      const ring = n.ring === 2 || m.ring === 2 ? " ring2" : "";
      parts.push(svgEl("path", { d, class: `graph-edge sees${ring}`, "data-pair": pair }));
    }
  }
  for (const n of nodes.filter((x) => x.ring === 1)) {
    const cls = `graph-edge${meshOf(n.id).length > 0 ? " mesh" : ""}`;
    parts.push(svgEl("line", { x1: 0, y1: 0, x2: n.x, y2: n.y, class: cls }));
  }
  for (const n of nodes) {
    const p = view.peers[n.id];
    const g = svgEl("g", { "data-peer": n.id, "data-ring": n.ring, "data-role": p.role || "" });
    const r = n.ring === 1 ? 9 : 6;
    g.append(svgEl("circle", { cx: n.x, cy: n.y, r, class: `graph-node role-${p.role || "unknown"}${p.connected ? " up" : ""}` }));
    const label = n.ring === 1 ? `${roleText(p)} ${short(n.id)}` : roleText(p);
    g.append(svgEl("text", { x: n.x, y: n.y + r + 11, class: "graph-label" }, label));
    g.append(svgEl("title", {}, `${n.id}\n${roleText(p)}${p.role ? ": " + (ROLE_HOW[p.role_from] || "") : ""}` +
      ((p.named_by || []).length ? `\nnamed by ${p.named_by.map(short).join(", ")}` : "")));
    parts.push(g);
  }
  const mine = svgEl("g", { "data-peer": me ? me.peer_id : "" });
  mine.append(svgEl("circle", { cx: 0, cy: 0, r: 14, class: `graph-node me role-${me ? me.role : "unknown"}` }));
  mine.append(svgEl("text", { x: 0, y: 30, class: "graph-label" }, me ? `${ROLE_LABEL[me.role] || me.role} (this node)` : "this node"));
  parts.push(mine);
  svg.replaceChildren(...parts);
}

function renderMesh() {
  const topics = Object.keys(view.mesh).sort();
  fill(document.querySelector("#mesh tbody"), topics.map((t) => {
    const m = view.mesh[t];
    return row("mesh", t, [
      el("td", { class: "mono" }, t),
      el("td", { title: m.mesh.join("\n") }, `${m.mesh.length}: ${m.mesh.map(short).join(" ")}`),
      el("td", { class: "muted" }, String(m.subscribed.length)),
    ]);
  }));
}

function renderOrders() {
  const ids = Object.keys(view.orders).sort((a, b) =>
    view.orders[a].side.localeCompare(view.orders[b].side) ||
    (BigInt(view.orders[a].price_per_hour) < BigInt(view.orders[b].price_per_hour) ? -1 : 1));
  document.getElementById("orders-count").textContent = `${ids.length} live`;
  fill(document.querySelector("#orders tbody"), ids.map((id) => {
    const o = view.orders[id];
    return row("orders", id, [
      el("td", { class: "id", title: id }, short(id)),
      el("td", { class: o.side }, o.side.toUpperCase()),
      snm(o.price_per_hour),
      duration(o.duration),
      String(o.cpu_cores),
      bytes(o.ram_bytes),
      el("td", { class: "id", title: o.author }, short(o.author) + (o.own ? " (ours)" : "")),
      el("td", { class: o.cancelled ? "muted" : "ok" }, o.cancelled ? "cancelled" : "open"),
    ]);
  }));
}

const DEAL_CLASS = { pending: "warn", accepted: "ok", closed: "muted" };

function renderDeals() {
  const ids = Object.keys(view.deals).sort((a, b) => Number(b) - Number(a));
  document.getElementById("deals-count").textContent = `${ids.length}`;
  fill(document.querySelector("#deals tbody"), ids.map((id) => {
    const d = view.deals[id];
    const button = el("button", { onclick: () => followLogs(id) }, "logs");
    return row("deals", id, [
      el("td", { class: "id" }, `#${id}`),
      d.role,
      el("td", { class: `deal-status ${DEAL_CLASS[d.status] || ""}` }, d.status),
      snm(d.price_per_hour),
      duration(d.duration),
      snm(d.escrow),
      snm(d.paid),
      el("td", { class: "id", title: d.hub }, short(d.hub)),
      el("td", { class: "id", title: d.consumer }, short(d.consumer)),
      el("td", {}, (d.role === "consumer" && d.status !== "pending") || view.tasks[id] ? button : ""),
    ]);
  }));
}

const TASK_CLASS = { running: "ok", started: "ok", finished: "muted", failed: "bad", assigned: "warn" };

function renderTasks() {
  const ids = Object.keys(view.tasks).sort((a, b) => Number(b) - Number(a));
  // a hub's tasks; a node that runs none has nothing to list
  document.getElementById("hub-tasks").hidden = ids.length === 0 && !(view.node.self && view.node.self.role === "supplier");
  document.getElementById("tasks-count").textContent = `${ids.length}`;
  fill(document.querySelector("#tasks tbody"), ids.map((id) => {
    const t = view.tasks[id];
    return row("tasks", id, [
      el("td", { class: "id" }, `#${id}`),
      el("td", { class: `task-state ${TASK_CLASS[t.state] || ""}` }, t.state + (t.exit_code !== null && t.exit_code !== undefined ? ` (exit ${t.exit_code})` : "")),
      el("td", { class: "id", title: t.worker }, t.worker === "local" ? "this node" : short(t.worker)),
      el("td", { class: "mono" }, t.image || ""),
      el("td", { class: DEAL_CLASS[t.deal_status] || "" }, t.deal_status),
      el("td", { class: "id", title: t.consumer }, short(t.consumer)),
      el("td", {}, el("button", { onclick: () => followLogs(id) }, "logs")),
    ]);
  }));
  renderDeals();
}

// --- figures: numbers from the node, drawn here as inline SVG -------------------------
function remember(list, value) {
  if (value === null || value === undefined) return;
  list.push(value);
  if (list.length > 120) list.shift();
}

function spark(values, w, h, cls) {
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, class: `spark ${cls}`, width: w, height: h });
  if (values.length < 2) return svg;
  const lo = Math.min(...values), hi = Math.max(...values);
  const span = hi - lo || 1;
  const pts = values.map((v, i) => `${(i * w) / (values.length - 1)},${h - 2 - ((v - lo) / span) * (h - 4)}`);
  svg.append(svgEl("polyline", { points: pts.join(" "), class: "spark-line" }));
  return svg;
}

function bars(entries, unit, cls) { // [[label, value]], drawn as horizontal bars
  const w = 260, rowH = 16;
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${Math.max(rowH, entries.length * rowH)}`, class: `bars ${cls}`, width: w, height: Math.max(rowH, entries.length * rowH) });
  const top = Math.max(1, ...entries.map(([, v]) => v));
  entries.forEach(([label, v], i) => {
    const g = svgEl("g", { "data-bar": label });
    g.append(svgEl("text", { x: 0, y: i * rowH + 11, class: "bar-label" }, label));
    g.append(svgEl("rect", { x: 80, y: i * rowH + 3, width: Math.max(2, (v / top) * 130), height: 10, class: `bar ${cls} ${cls}-${label}` }));
    g.append(svgEl("text", { x: 84 + (v / top) * 130, y: i * rowH + 11, class: "bar-value" }, `${v}${unit}`));
    svg.append(g);
  });
  return svg;
}

function figure(id, title, ...body) {
  return el("div", { class: "figure", "data-figure": id }, el("h3", {}, title), ...body);
}

function renderFigures() {
  const f = view.figures;
  const box = document.getElementById("figures");
  const out = [];
  if (f.orders_rate) {
    const r = f.orders_rate;
    out.push(figure("orders_rate", "orders received / s",
      el("div", { class: "big" }, r.per_s === null ? "…" : String(r.per_s)),
      el("div", { class: "muted" }, `${r.received} in all; over the last ${r.window_s} s`),
      spark(history.rate, 200, 36, "rate")));
  }
  if (f.book) {
    const b = f.book;
    const gap = b.spread === null ? "no match possible yet" : BigInt(b.spread) > 0n ? `spread ${snm(b.spread)} SNM/h` : "crossed: a match is due";
    out.push(figure("book", "order book",
      el("div", { class: "big" }, gap),
      el("div", { class: "muted" }, `best ASK ${b.best_ask === null ? "-" : snm(b.best_ask)} · best BID ${b.best_bid === null ? "-" : snm(b.best_bid)} SNM/h · ${b.orders} kept, withdrawn ones included`),
      spark(history.spread, 200, 36, "spread")));
  }
  if (f.hubs) {
    const entries = Object.entries(f.hubs.by_status);
    out.push(figure("hubs", "hubs by status", entries.length ? bars(entries, "", "hub") : el("div", { class: "muted" }, "no hubs known yet")));
  }
  if (f.deals) {
    const d = f.deals;
    const times = d.bid_to_deal.filter((t) => t.to_accept_s !== null);
    out.push(figure("deals", "BID to deal (s), our deals",
      el("div", { class: "muted" }, Object.entries(d.by_status).map(([k, v]) => `${v} ${k}`).join(" · ") || "no deals yet"),
      times.length ? bars(times.map((t) => [`#${t.deal_id}`, t.to_accept_s]), " s", "deal") : ""));
  }
  box.replaceChildren(...(out.length ? out : [el("p", { class: "muted" }, "no figures on this node")]));
}

function noteFigures() {
  const f = view.figures;
  if (f.orders_rate) remember(history.rate, f.orders_rate.per_s);
  if (f.book && f.book.spread !== null) remember(history.spread, Number(BigInt(f.book.spread) / 10n ** 12n) / 1e6);
}

const RENDER = {
  node: renderNode, peers: renderPeers, mesh: () => { renderMesh(); renderPeers(); }, orders: renderOrders, deals: renderDeals,
  tasks: renderTasks, figures: () => { noteFigures(); renderFigures(); },
};

// --- hubs: whatever GET /hubs answers, drawn as a table of its fields -------------
let hubsTimer = null;
function refreshHubs() {
  if (hubsTimer) return;
  hubsTimer = setTimeout(async () => {
    hubsTimer = null;
    const box = document.getElementById("hubs");
    let resp;
    try { resp = await fetch("/hubs", { credentials: "same-origin" }); } catch (e) { return; }
    if (resp.status === 404 || resp.status === 503) {
      box.replaceChildren(el("p", { class: "muted hubs-na" }, "not available on this node"));
      return;
    }
    if (!resp.ok) { box.replaceChildren(el("p", { class: "bad" }, `GET /hubs: ${resp.status}`)); return; }
    const body = await resp.json();
    const list = Array.isArray(body) ? body : (body.hubs || Object.values(body).find(Array.isArray) || []);
    if (!list.length) { box.replaceChildren(el("p", { class: "muted" }, "no hubs known yet")); return; }
    const cols = Object.keys(list[0]).filter((k) => typeof list[0][k] !== "object" || list[0][k] === null).slice(0, 7);
    const why = Object.keys(list[0]).find((k) => /why|reason/.test(k));
    if (why && !cols.includes(why)) cols.push(why);
    const table = el("table", {}, el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", {}, c)))));
    const tbody = el("tbody");
    for (const h of list) {
      tbody.append(el("tr", {}, ...cols.map((c) => {
        const v = h[c];
        const text = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
        return el("td", { class: /^0x|peer/.test(c) ? "id" : "", title: text }, text.length > 40 ? short(text) : text);
      })));
    }
    table.append(tbody);
    box.replaceChildren(table);
  }, 300);
}

// --- task logs ---------------------------------------------------------------------
async function followLogs(dealId) {
  if (logsAbort) logsAbort.abort();
  logsAbort = new AbortController();
  const pre = document.getElementById("logs");
  pre.className = "";
  pre.replaceChildren();
  document.getElementById("logs-title").textContent = `deal #${dealId}`;
  let resp;
  try {
    resp = await fetch(`/tasks/${dealId}/logs?follow=true`, { signal: logsAbort.signal, credentials: "same-origin" });
  } catch (e) { return; }
  if (!resp.ok) {
    let detail = resp.statusText;
    try { detail = (await resp.json()).detail || detail; } catch (e) { /* not JSON */ }
    pre.append(el("span", { class: "bad" }, `no logs: ${detail}\n`));
    return;
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    let chunk;
    try { chunk = await reader.read(); } catch (e) { return; }
    if (chunk.done) break;
    buffered += decoder.decode(chunk.value, { stream: true });
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      const rec = JSON.parse(line);
      let text = "";
      try { text = new TextDecoder().decode(Uint8Array.from(atob(rec.data || ""), (c) => c.charCodeAt(0))); } catch (e) { text = ""; }
      if (rec.stream === "end") text = `[task ended: ${text || "done"}]\n`;
      if (rec.stream === "error") text = `[stream broke: ${rec.error}]\n`;
      pre.append(el("span", { class: rec.stream }, text));
    }
  }
}

// --- the live feed -----------------------------------------------------------------
// The browser retries a dropped stream by itself; a refused one (the node restarted
// and forgot the session, or too many streams) it gives up, so that case is ours.
function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/ui/events");
  source.onopen = () => { live.className = "live on"; live.textContent = "live"; };
  source.onerror = async () => {
    live.className = "live off";
    live.textContent = "reconnecting…";
    if (source.readyState !== EventSource.CLOSED) return;
    let status = 0;
    try { status = (await fetch("/status", { credentials: "same-origin" })).status; } catch (e) { /* node down */ }
    if (status === 401) {
      live.textContent = "logged out: run `sonm-p2p ui` for a new login address";
      return;
    }
    setTimeout(connect, 3000);
  };
  source.addEventListener("snapshot", (ev) => {
    const snap = JSON.parse(ev.data);
    fresh.clear();
    for (const name of Object.keys(view)) view[name] = snap[name] || {};
    for (const render of Object.values(RENDER)) render();
    refreshHubs();
    document.body.dataset.ready = "1";
  });
  source.addEventListener("change", (ev) => {
    const change = JSON.parse(ev.data);
    const section = view[change.section];
    if (!section) return;
    fresh.clear();
    for (const [id, item] of Object.entries(change.set)) { section[id] = item; fresh.add(`${change.section}:${id}`); }
    for (const id of change.del) delete section[id];
    RENDER[change.section]();
    if (change.section === "peers" || change.section === "deals") refreshHubs();
  });
}

connect();
