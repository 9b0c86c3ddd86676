// The llmcf storefront: plain JavaScript over the REST API (see llmcf.serve.web).
// The visitor's history lives in localStorage; the key (optional) in sessionStorage.
"use strict";

const PAGE = 24;
const N_RECS = 10;
const store = {
  get user() { return localStorage.getItem("llmcf.user") || ""; },
  set user(v) { localStorage.setItem("llmcf.user", v); },
  get visitor() {
    let v = localStorage.getItem("llmcf.visitor");
    if (!v) {
      v = "visitor-" + Math.random().toString(36).slice(2, 10);
      localStorage.setItem("llmcf.visitor", v);
    }
    return v;
  },
  get key() { return sessionStorage.getItem("llmcf.key") || ""; },
  set key(v) { if (v) sessionStorage.setItem("llmcf.key", v); else sessionStorage.removeItem("llmcf.key"); },
  historyKey() { return "llmcf.history." + (this.user || this.visitor); },
  get history() {
    try { return JSON.parse(localStorage.getItem(this.historyKey()) || "[]"); } catch (e) { return []; }
  },
  set history(h) { localStorage.setItem(this.historyKey(), JSON.stringify(h.slice(-200))); },
};
const $ = (id) => document.getElementById(id);
const titles = new Map(); // item id -> title, filled from every catalog answer
let offset = 0;
let currentItem = null;
let recsVersion = 0;
window.llmcfRoundTrips = []; // ms from an action's click to its updated list on screen

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function say(text) { $("status").textContent = text; }

async function api(method, path, body, auth) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && store.key) headers["X-API-Key"] = store.key;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : r.statusText;
    const err = new Error(r.status + ": " + detail);
    err.status = r.status;
    throw err;
  }
  return data;
}

function itemLink(id, extra) {
  const a = el("a", { href: "#/item/" + encodeURIComponent(id) }, el("span", { class: "title" }, titles.get(id) || id));
  if (extra) a.append(extra);
  return a;
}

// ------------------------------------------------------------------ catalog
async function loadCatalog() {
  const q = $("q").value.trim();
  const genre = $("genre").value;
  const params = new URLSearchParams({ q, offset: String(offset), limit: String(PAGE) });
  if (genre) params.set("genre", genre);
  const data = await api("GET", "/v1/items?" + params);
  const list = $("catalog");
  list.replaceChildren();
  for (const it of data.items) {
    titles.set(it.item_id, it.title);
    const meta = el("span", { class: "meta" },
      (it.genres.length ? it.genres.join(", ") + " · " : "") +
      (it.known_to_model ? it.popularity + " interactions" : "new"));
    list.append(el("li", {}, itemLink(it.item_id, meta)));
  }
  $("count").textContent = data.total + " items" + (data.total ? ", showing " + (offset + 1) + "–" + (offset + data.items.length) : "");
  $("prev").disabled = offset === 0;
  $("next").disabled = offset + data.items.length >= data.total;
}

async function loadGenres() {
  const data = await api("GET", "/v1/genres");
  const sel = $("genre");
  for (const g of data.genres) sel.append(el("option", { value: g }, g));
}

async function ensureTitles(ids) {
  const missing = ids.filter((id) => !titles.has(id));
  await Promise.all(missing.map(async (id) => {
    try { const it = await api("GET", "/v1/items/" + encodeURIComponent(id)); titles.set(id, it.title); }
    catch (e) { titles.set(id, id); }
  }));
}

// ------------------------------------------------------------------ lists
const SOURCE_LABEL = { neighbours: "neighbours", text: "text", popular: "popular", model: "second stage" };

function renderList(list, items) {
  list.replaceChildren();
  for (const it of items) {
    const badge = el("span", { class: "badge " + it.source, title: "source: " + it.source }, SOURCE_LABEL[it.source] || it.source);
    list.append(el("li", { "data-item": it.item_id, "data-source": it.source }, itemLink(it.item_id, badge)));
  }
}

async function loadRecs(t0) {
  const body = { history: store.history.map(({ item_id, type, value }) => (value === undefined ? { item_id, type } : { item_id, type, value })), n: N_RECS };
  body.user_id = store.user || store.visitor;
  const data = await api("POST", "/v1/recommendations", body);
  await ensureTitles(data.items.map((x) => x.item_id));
  renderList($("recs"), data.items);
  const why = [data.reason, ...(data.notes || [])].filter(Boolean).join("; ");
  $("recs-reason").textContent = why || (store.history.length ? "from your " + store.history.length + " event(s)" : "");
  recsVersion += 1;
  $("recs").setAttribute("data-version", String(recsVersion));
  if (t0 !== undefined) {
    requestAnimationFrame(() => { window.llmcfRoundTrips.push(performance.now() - t0); });
  }
}

function renderHistory() {
  const list = $("history");
  list.replaceChildren();
  for (const e of store.history.slice(-12).reverse()) {
    list.append(el("li", {}, e.type + (e.value !== undefined && e.type === "rating" ? " " + e.value : "") + ": " + (titles.get(e.item_id) || e.item_id)));
  }
}

// ------------------------------------------------------------------ actions
async function act(type, itemId, value, t0) {
  const event = { item_id: itemId, type };
  if (value !== undefined) event.value = value;
  store.history = [...store.history, event];
  renderHistory();
  if (store.key) { // stored as a real event (ingest key)
    const user_id = store.user || store.visitor;
    api("POST", "/v1/events", { events: [{ user_id, ...event }] }, true)
      .catch((e) => say("event not stored: " + e.message));
  }
  await loadRecs(t0);
  if (type !== "view") say((titles.get(itemId) || itemId) + ": " + (type === "rating" ? "rated " + value : type) + " — recommendations updated");
}

async function showItem(id) {
  $("browse").hidden = true;
  $("item").hidden = false;
  currentItem = id;
  let it;
  try { it = await api("GET", "/v1/items/" + encodeURIComponent(id)); }
  catch (e) { say(e.message); return; }
  titles.set(id, it.title);
  $("item-h").textContent = it.title;
  $("item-meta").textContent = [it.genres.join(", "), it.known_to_model ? it.popularity + " interactions" : "new to the model"].filter(Boolean).join(" · ");
  $("item-text").textContent = (it.text || "").split("\n").slice(1).filter((l) => !/^(genres?|categor(y|ies))\s*:/i.test(l.trim())).join(" ");
  $("item-h").setAttribute("tabindex", "-1");
  $("item-h").focus(); // keyboard users land on the item, then Tab to its actions
  const sim = await api("GET", "/v1/items/" + encodeURIComponent(id) + "/similar?n=8");
  await ensureTitles(sim.items.map((x) => x.item_id));
  renderList($("similar"), sim.items);
  $("similar-h").textContent = it.known_to_model ? "Similar items (collaborative)" : "Similar items (by description: new to the model)";
  $("by-text").hidden = !(it.known_to_model && it.text_neighbours);
  if (it.known_to_model && it.text_neighbours) {
    const txt = await api("GET", "/v1/items/" + encodeURIComponent(id) + "/text-neighbours?n=8");
    await ensureTitles(txt.items.map((x) => x.item_id));
    renderList($("text-similar"), txt.items);
  }
  await act("view", id, undefined, performance.now());
}

function showBrowse() {
  $("item").hidden = true;
  $("browse").hidden = false;
  currentItem = null;
}

function route() {
  const m = location.hash.match(/^#\/item\/(.+)$/);
  if (m) showItem(decodeURIComponent(m[1])).catch((e) => say(e.message));
  else showBrowse();
}

function refreshWho() {
  $("user-id").value = store.user;
  $("admin-tools").hidden = !store.key;
  $("key").value = store.key ? "********" : "";
}

// ------------------------------------------------------------------ wiring
document.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("submit", (ev) => { ev.preventDefault(); offset = 0; loadCatalog().catch((e) => say(e.message)); });
  $("genre").addEventListener("change", () => { offset = 0; loadCatalog().catch((e) => say(e.message)); });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadCatalog().catch((e) => say(e.message)); });
  $("next").addEventListener("click", () => { offset += PAGE; loadCatalog().catch((e) => say(e.message)); });
  for (const b of document.querySelectorAll("[data-action]")) {
    b.addEventListener("click", () => {
      const t0 = performance.now();
      const type = b.getAttribute("data-action");
      const value = type === "rating" ? Number($("rating").value) : undefined;
      if (currentItem) act(type, currentItem, value, t0).catch((e) => say(e.message));
    });
  }
  $("who").addEventListener("submit", (ev) => {
    ev.preventDefault();
    store.user = $("user-id").value.trim();
    renderHistory();
    say(store.user ? "shopping as " + store.user : "shopping as a new visitor");
    loadRecs().catch((e) => say(e.message));
  });
  $("new-visitor").addEventListener("click", () => {
    localStorage.removeItem("llmcf.visitor");
    store.user = "";
    refreshWho();
    renderHistory();
    say("a new visitor: no history yet");
    loadRecs().catch((e) => say(e.message));
  });
  $("clear-history").addEventListener("click", () => {
    store.history = [];
    renderHistory();
    loadRecs().catch((e) => say(e.message));
  });
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("key").value;
    if (v !== "********") store.key = v.trim();
    refreshWho();
    say(store.key ? "key in use for this tab: your actions are stored as events" : "no key: your actions stay in this browser");
  });
  $("add-product").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const id = $("new-id").value.trim();
    const genres = $("new-genres").value.trim();
    const text = [$("new-title").value.trim(), genres ? "Genres: " + genres : "", $("new-text").value.trim()].filter(Boolean).join("\n");
    try {
      const out = await api("PUT", "/v1/items/" + encodeURIComponent(id), { text }, true);
      titles.set(id, $("new-title").value.trim());
      say("added " + id + (out.text_neighbours ? " (served through its text neighbours)" : " (this model has no text neighbours)"));
      ev.target.reset();
      offset = 0;
      await loadCatalog();
      await loadRecs();
    } catch (e) { say("could not add the product: " + e.message); }
  });
  $("refit").addEventListener("click", async () => {
    say("refitting the model with the catalog…");
    try {
      const out = await api("POST", "/v1/admin/refit-catalog", undefined, true);
      say("refit: " + out.items_added + " new item(s) known to the model, in " + out.seconds.toFixed(1) + " s");
      await loadCatalog();
      await loadRecs();
    } catch (e) { say("refit failed: " + e.message); }
  });
  window.addEventListener("hashchange", route);
  refreshWho();
  renderHistory();
  Promise.all([loadGenres(), loadCatalog()])
    .then(() => loadRecs())
    .then(() => route())
    .catch((e) => say(e.message));
});
