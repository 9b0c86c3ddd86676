// The llmcf operator dashboard: polls GET /v1/admin/status with the admin key (sessionStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
let last = null; // previous status, for the rates
let timer = null;
window.llmcfPolls = 0;

function key() { return sessionStorage.getItem("llmcf.key") || ""; }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function api(method, path, body) {
  const headers = { "X-API-Key": key() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const err = new Error(r.status + ": " + (data && data.detail ? data.detail : r.statusText));
    err.status = r.status;
    throw err;
  }
  return data;
}

const ms = (s) => (s === null || s === undefined ? "–" : (s * 1000).toFixed(1));
const when = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–");

function renderModels(models) {
  const box = $("models");
  box.replaceChildren();
  if (!models.length) { box.append(el("p", {}, "no model loaded yet")); return; }
  for (const m of models) {
    const rows = [
      ["arm", m.arm], ["class", m["class"]], ["name", m.model || m["class"]],
      ["artifact", m.artifact || "–"], ["source", m.source],
      ["data", m.n_users + " users × " + m.n_items + " items, " + m.n_interactions + " interactions"],
      ["fit time", m.fit_seconds === null ? "–" : m.fit_seconds.toFixed(2) + " s"],
      ["saved", when(m.saved_at)], ["loaded", when(m.loaded_at)],
      ["scoring", m.scoring + (m.text_neighbours ? ", text neighbours" : "")],
    ];
    const table = el("table", { "aria-label": "Model " + m.arm, class: "model" });
    for (const [k, v] of rows) table.append(el("tr", {}, el("th", {}, k), el("td", { "data-field": k }, String(v))));
    box.append(table, el("details", {}, el("summary", {}, "config"), el("pre", {}, JSON.stringify(m.config, null, 2))));
  }
}

function renderOnline(online) {
  const panel = $("online-panel");
  if (!online || !online.arms || !online.arms.length) { panel.hidden = true; return; }
  panel.hidden = false;
  const table = el("table", { "aria-label": "Online metrics per arm" });
  const ctrName = "CTR@" + (online.list_length || "N");
  table.append(el("tr", {}, ...["arm", "model", "lists", ctrName, "95% CI", "conversion"].map((h) => el("th", {}, h))));
  for (const a of online.arms) {
    table.append(el("tr", { "data-arm": a.arm }, el("td", {}, a.arm), el("td", {}, a.model), el("td", { class: "num", "data-field": "impressions" }, String(a.impressions)),
      el("td", { class: "num" }, (100 * a.ctr).toFixed(2) + "%"),
      el("td", { class: "num" }, (100 * a.ctr_ci[0]).toFixed(2) + "–" + (100 * a.ctr_ci[1]).toFixed(2) + "%"),
      el("td", { class: "num" }, (100 * a.conversion).toFixed(2) + "%")));
  }
  const box = $("online");
  box.replaceChildren(table);
  if (online.difference) {
    const d = online.difference;
    box.append(el("p", { class: "muted" }, "CTR B − A: " + (100 * d.value).toFixed(2) + " points, 95% CI " +
      (100 * d.ci[0]).toFixed(2) + " … " + (100 * d.ci[1]).toFixed(2) + " (window " + online.window_s + " s)"));
  }
}

function render(st) {
  renderModels(st.models);
  const m = st.metrics;
  const events = m.counters.llmcf_events_ingested || 0;
  if (last) {
    const dt = Math.max(st.time - last.time, 1e-3);
    $("req-rate").textContent = ((m.requests - last.metrics.requests) / dt).toFixed(1);
    $("ev-rate").textContent = ((events - (last.metrics.counters.llmcf_events_ingested || 0)) / dt).toFixed(1);
  }
  $("req-total").textContent = String(m.requests);
  $("ev-total").textContent = String(events);
  const body = $("routes");
  body.replaceChildren();
  for (const [route, r] of Object.entries(m.routes)) {
    const lat = r.latency_s || {};
    body.append(el("tr", { "data-route": route }, el("td", {}, route), el("td", { class: "num" }, String(r.requests)),
      el("td", { class: "num" }, String(r.errors)), el("td", { class: "num" }, ms(lat.p50)),
      el("td", { class: "num" }, ms(lat.p95)), el("td", { class: "num" }, ms(lat.p99))));
  }
  $("store-events").textContent = st.store.events === undefined ? "unavailable" : String(st.store.events);
  $("store-texts").textContent = st.store.item_texts === undefined ? "–" : String(st.store.item_texts);
  $("store-url").textContent = st.store.url + (st.store.error ? " — " + st.store.error : "");
  $("cached-users").textContent = String(st.cached_users);
  renderOnline(st.online);
  last = st;
  window.llmcfPolls += 1;
}

async function poll() {
  try {
    render(await api("GET", "/v1/admin/status"));
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.status === 401 || e.status === 403) { logout(e.message); return; }
    $("status").textContent = "status unavailable: " + e.message;
  }
  timer = setTimeout(poll, POLL_MS);
}

function open() {
  $("login").hidden = true;
  $("dash").hidden = false;
  $("logout").hidden = false;
  if (timer === null) poll();
}

function logout(message) {
  sessionStorage.removeItem("llmcf.key");
  if (timer !== null) clearTimeout(timer);
  timer = null;
  last = null;
  $("dash").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("status").textContent = message || "";
  $("admin-key").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("llmcf.key", $("admin-key").value.trim());
    $("admin-key").value = "";
    open();
  });
  $("logout").addEventListener("click", () => logout("key forgotten"));
  $("reload").addEventListener("click", async () => {
    $("status").textContent = "reloading…";
    try {
      const out = await api("POST", "/v1/admin/reload");
      $("status").textContent = "reloaded " + out.model.source + " in " + out.seconds.toFixed(2) + " s";
    } catch (e) { $("status").textContent = "reload failed: " + e.message; }
  });
  if (key()) open(); else $("admin-key").focus();
});
