// Kiln's web UI: pickers, time range, timeline, flame graph with its table, and the comparison view.
// Every piece of view state lives in the URL's query string, so reload and bookmarks restore the view.

import * as api from "./api.js";
import { decodeSingle, decodeDiff, functionTable, FlameGraph, shareChange } from "./flamegraph.js";
import { FunctionTable } from "./table.js";
import { Timeline } from "./timeline.js";
import { valueFormatter, dateTime, percent, change } from "./format.js";

const $ = (id) => document.getElementById(id);

// ---- URL state ----------------------------------------------------------------------------------

const DEFAULTS = { view: "single", from: "now-1h", until: "now", maxNodes: 8192 };

/** The view as the URL describes it. */
function readURL() {
  const p = new URLSearchParams(location.search);
  const { profileType, selector } = splitQuery(p.get("query") || "");
  return {
    view: p.get("view") === "diff" ? "diff" : "single",
    profileType,
    selector,
    from: p.get("from") || DEFAULTS.from,
    until: p.get("until") || DEFAULTS.until,
    leftSelector: p.get("leftQuery") || "",
    rightSelector: p.get("rightQuery") || "",
    leftFrom: p.get("leftFrom") || "",
    leftUntil: p.get("leftUntil") || "",
    rightFrom: p.get("rightFrom") || "",
    rightUntil: p.get("rightUntil") || "",
    search: p.get("search") || "",
    sort: p.get("sort") || "",
    maxNodes: Math.max(16, Math.min(1 << 20, Number(p.get("maxNodes")) || DEFAULTS.maxNodes)),
  };
}

function writeURL(push) {
  const s = state;
  const p = new URLSearchParams();
  if (s.view !== "single") p.set("view", s.view);
  if (s.profileType || s.selector) p.set("query", s.profileType + (s.selector || "{}"));
  p.set("from", s.from);
  p.set("until", s.until);
  if (s.view === "diff") {
    if (s.leftSelector && s.leftSelector !== s.selector) p.set("leftQuery", s.leftSelector);
    if (s.rightSelector && s.rightSelector !== s.selector) p.set("rightQuery", s.rightSelector);
    for (const k of ["leftFrom", "leftUntil", "rightFrom", "rightUntil"]) if (s[k]) p.set(k, s[k]);
  }
  if (s.search) p.set("search", s.search);
  if (s.sort) p.set("sort", s.sort);
  if (s.maxNodes !== DEFAULTS.maxNodes) p.set("maxNodes", String(s.maxNodes));
  const url = `${location.pathname}?${p.toString()}`;
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

/** `process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="a"}` → its type and its selector. */
export function splitQuery(q) {
  const brace = q.indexOf("{");
  if (brace < 0) return { profileType: q.trim(), selector: "" };
  return { profileType: q.slice(0, brace).trim(), selector: q.slice(brace).trim() };
}

/** The selector with its `service_name` matcher set to `service` (added when missing). */
export function withService(selector, service) {
  const inner = (selector || "{}").trim().replace(/^\{/, "").replace(/\}$/, "").trim();
  const matchers = inner ? splitMatchers(inner).filter((m) => !/^service_name\s*(=|!=|=~|!~)/.test(m)) : [];
  matchers.unshift(`service_name="${service.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`);
  return `{${matchers.join(", ")}}`;
}

/** The value of an exact `service_name="…"` matcher, if the selector has one. */
export function serviceOf(selector) {
  const m = /service_name\s*=\s*"((?:[^"\\]|\\.)*)"/.exec(selector || "");
  return m ? m[1].replace(/\\(.)/g, "$1") : "";
}

function splitMatchers(inner) {
  const out = [];
  let cur = "", quoted = false;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === "\\" && quoted) { cur += c + (inner[++i] ?? ""); continue; }
    if (c === '"') quoted = !quoted;
    if (c === "," && !quoted) { if (cur.trim()) out.push(cur.trim()); cur = ""; continue; }
    cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

// ---- Time ---------------------------------------------------------------------------------------

const UNITS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 };

/** Epoch ms for `now`, `now-1h`, `now-30m`, epoch seconds or ms, or a local date like `2026-11-25 14:00`. */
export function parseTime(text, now) {
  const t = String(text).trim();
  const rel = /^now(?:\s*([-+])\s*(\d+(?:\.\d+)?)\s*([smhdw]))?$/.exec(t);
  if (rel) {
    if (!rel[1]) return now;
    const delta = Number(rel[2]) * UNITS[rel[3]];
    return rel[1] === "-" ? now - delta : now + delta;
  }
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    return n < 1e11 ? n * 1000 : n; // seconds, as Pyroscope accepts them, or milliseconds
  }
  const d = Date.parse(/^\d{4}-\d\d-\d\d \d/.test(t) ? t.replace(" ", "T") : t);
  return Number.isNaN(d) ? null : d;
}

function showTime(text) {
  return /^\d+$/.test(text) ? dateTime(parseTime(text, 0), true) : text;
}

/** A step that gives about 240 points across the range, never below 10 s (as Pyroscope's minimum). */
function stepFor(start, end) {
  return Math.max(10, Math.round((end - start) / 1000 / 240));
}

// ---- App ----------------------------------------------------------------------------------------

let state = readURL();
let now = Date.now(); // relative times resolve against this until Refresh, so cached answers stay valid
let profileTypes = [];
let services = [];
let format = valueFormatter("");
let loadController = null;
const cache = new Map();

function cached(key, fetcher) {
  if (!cache.has(key)) {
    const p = fetcher();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return cache.get(key);
}

const flame = new FlameGraph($("flame"), {
  format: (v) => format(v),
  onZoom: (node) => {
    $("reset-zoom").disabled = !node;
    $("zoom-info").textContent = node ? `zoomed to ${node.name}` : "";
    $("zoom-info").title = node ? node.name : "";
  },
  describe,
});

const table = new FunctionTable($("functions"), {
  onPick: (name) => setSearch(state.search === name ? "" : name),
  onSort: (sort) => { state.sort = sort; writeURL(false); },
});

const timeline = new Timeline($("timeline"), {
  onSelect: (from, until) => update({ from: String(from), until: String(until) }),
  colour: "var(--accent)",
});
const leftTimeline = new Timeline($("left-timeline"), {
  onSelect: (from, until) => update({ leftFrom: String(from), leftUntil: String(until) }),
  colour: "var(--baseline)",
});
const rightTimeline = new Timeline($("right-timeline"), {
  onSelect: (from, until) => update({ rightFrom: String(from), rightUntil: String(until) }),
  colour: "var(--comparison)",
});

/** Applies a change to the view, records it in history, reloads what it affects. */
function update(changes, { push = true } = {}) {
  Object.assign(state, changes);
  writeURL(push);
  load();
}

function setSearch(text) {
  state.search = text;
  $("search").value = text;
  flame.setSearch(text);
  table.setSearch(text);
  showSearchInfo();
  writeURL(false);
}

function showSearchInfo() {
  const info = flame.searchTotal();
  $("search-info").textContent = info ? `${info.count} ${info.count === 1 ? "match" : "matches"} · ${(info.share * 100).toFixed(info.share < 0.1 ? 2 : 1)}% of the graph` : "";
}

function showError(error) {
  const box = $("error");
  if (!error) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.replaceChildren();
  const strong = document.createElement("strong");
  strong.textContent = error.method ? `${error.method} failed (${error.code}): ` : "Error: ";
  box.append(strong, error.message || String(error));
}

function setStatus(s) { document.body.dataset.state = s; }

function range() {
  const start = parseTime(state.from, now);
  const end = parseTime(state.until, now);
  if (start === null || end === null) throw new Error(`cannot read the time range "${state.from}" to "${state.until}"`);
  if (end <= start) throw new Error("the time range ends before it starts");
  return { start, end };
}

/** Baseline and comparison ranges: chosen by dragging, else the first and second half of the range. */
function diffRanges({ start, end }) {
  const mid = Math.round((start + end) / 2);
  const side = (from, until, a, b) => {
    const f = from ? parseTime(from, now) : null, u = until ? parseTime(until, now) : null;
    return f !== null && u !== null && u > f ? { start: f, end: u } : { start: a, end: b };
  };
  return {
    left: side(state.leftFrom, state.leftUntil, start, mid),
    right: side(state.rightFrom, state.rightUntil, mid, end),
  };
}

function syncControls() {
  document.body.dataset.view = state.view;
  for (const a of document.querySelectorAll(".tabs a")) {
    a.classList.toggle("active", a.dataset.view === state.view);
    a.setAttribute("aria-current", a.dataset.view === state.view ? "page" : "false");
  }
  $("top-single").hidden = state.view !== "single";
  $("top-diff").hidden = state.view !== "diff";
  $("legend").hidden = state.view !== "diff";
  $("from").value = showTime(state.from);
  $("until").value = showTime(state.until);
  const preset = [...$("preset").options].find((o) => o.value === state.from && state.until === "now");
  $("preset").value = preset ? preset.value : "custom";
  $("selector").value = state.selector;
  $("left-selector").value = state.leftSelector || state.selector;
  $("right-selector").value = state.rightSelector || state.selector;
  if ($("search").value !== state.search) $("search").value = state.search;
}

function fillSelect(select, items, selected) {
  select.replaceChildren(...items.map(({ value, label }) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    o.selected = value === selected;
    return o;
  }));
  if (!items.length) {
    const o = document.createElement("option");
    o.textContent = "none";
    o.disabled = true;
    o.selected = true;
    select.append(o);
  }
}

function typeLabel(t) {
  return `${t.name} · ${t.sampleType}` + (t.sampleUnit ? ` (${t.sampleUnit})` : "");
}

/** CPU first (the article's starting point), then the rest in the server's order. */
function defaultType(types) {
  return (types.find((t) => t.id.startsWith("process_cpu:cpu:")) || types.find((t) => /cpu/.test(t.id)) || types[0]).id;
}

async function load() {
  if (loadController) loadController.abort();
  const controller = new AbortController();
  loadController = controller;
  const signal = controller.signal;
  syncControls();
  setStatus("loading");
  try {
    const r = range();
    const [types, names] = await Promise.all([
      cached(`types ${r.start} ${r.end}`, () => api.profileTypes(r.start, r.end, signal)),
      cached(`services ${r.start} ${r.end}`, () => api.labelValues("service_name", r.start, r.end, [], signal)),
    ]);
    if (signal.aborted) return;
    profileTypes = types;
    services = [...names].sort();
    let changed = false;
    if (types.length && !types.some((t) => t.id === state.profileType)) { state.profileType = defaultType(types); changed = true; }
    const service = serviceOf(state.selector);
    if (services.length && !service) { state.selector = withService(state.selector, services[0]); changed = true; }
    if (changed) writeURL(false);
    syncControls();
    fillSelect($("profile-type"), types.map((t) => ({ value: t.id, label: typeLabel(t) })), state.profileType);
    const current = serviceOf(state.selector);
    const serviceItems = services.map((s) => ({ value: s, label: s }));
    if (current && !services.includes(current)) serviceItems.unshift({ value: current, label: `${current} (no data)` });
    fillSelect($("service"), serviceItems, current);
    const type = types.find((t) => t.id === state.profileType);
    format = valueFormatter(type ? type.sampleUnit : "");
    if (!types.length) {
      showError(null);
      showEmpty("No profiles in this time range. Push or scrape some, or choose a wider range.");
      timeline.setMessage("No profiles in this time range");
      leftTimeline.setMessage("No profiles in this time range");
      rightTimeline.setMessage("No profiles in this time range");
      setStatus("empty");
      return;
    }
    if (state.view === "diff") await loadDiff(r, signal);
    else await loadSingle(r, signal);
    if (signal.aborted) return;
    showError(null);
    setStatus("ready");
  } catch (e) {
    if (e.name === "AbortError" || signal.aborted) return;
    showError(e);
    for (const t of [timeline, leftTimeline, rightTimeline]) t.setMessage("");
    setStatus("error");
  }
}

function query(selector, r) {
  return { profileType: state.profileType, selector: selector || "{}", start: r.start, end: r.end, maxNodes: state.maxNodes };
}

function series(selector, r, signal) {
  const q = query(selector, r);
  const step = stepFor(r.start, r.end);
  return cached(`series ${q.profileType} ${q.selector} ${r.start} ${r.end} ${step}`, () => api.selectSeries(q, step, signal));
}

async function loadSingle(r, signal) {
  $("range-text").textContent = `${dateTime(r.start, true)} – ${dateTime(r.end, true)}`;
  const q = query(state.selector, r);
  const [points, fg] = await Promise.all([
    series(state.selector, r, signal),
    cached(`merge ${JSON.stringify(q)}`, () => api.mergeStacktraces(q, signal)),
  ]);
  if (signal.aborted) return;
  timeline.setData(points, r.start, r.end, format);
  timeline.setOverlays([]);
  showModel(decodeSingle(fg));
}

async function loadDiff(r, signal) {
  const leftSel = state.leftSelector || state.selector;
  const rightSel = state.rightSelector || state.selector;
  const { left, right } = diffRanges(r);
  $("left-range").textContent = `${dateTime(left.start, true)} – ${dateTime(left.end, true)} · drag on the chart to change`;
  $("right-range").textContent = `${dateTime(right.start, true)} – ${dateTime(right.end, true)} · drag on the chart to change`;
  const lq = query(leftSel, left), rq = query(rightSel, right);
  const [lp, rp, fg] = await Promise.all([
    series(leftSel, r, signal),
    series(rightSel, r, signal),
    cached(`diff ${JSON.stringify(lq)} ${JSON.stringify(rq)}`, () => api.diff(lq, rq, signal)),
  ]);
  if (signal.aborted) return;
  leftTimeline.setData(lp, r.start, r.end, format);
  rightTimeline.setData(rp, r.start, r.end, format);
  leftTimeline.setOverlays([{ from: left.start, until: left.end, className: "baseline", label: "baseline" }]);
  rightTimeline.setOverlays([{ from: right.start, until: right.end, className: "comparison", label: "comparison" }]);
  showModel(decodeDiff(fg));
}

function showModel(model) {
  const empty = model.diff ? model.leftTicks === 0 && model.rightTicks === 0 : model.total === 0;
  if (empty) showEmpty("No samples match these labels in this time range.");
  else $("flame-empty").hidden = true;
  flame.setModel(model, format);
  table.setSortParam(state.sort, model.diff);
  table.setData(functionTable(model), model, format);
  flame.setSearch(state.search);
  table.setSearch(state.search);
  showSearchInfo();
  $("reset-zoom").disabled = true;
  $("zoom-info").textContent = "";
}

function showEmpty(message) {
  const box = $("flame-empty");
  box.textContent = message;
  box.hidden = false;
  const blank = { levels: [], total: 0, width: 1, diff: state.view === "diff", leftTicks: 0, rightTicks: 0 };
  flame.setModel(blank, format);
  table.setData([], blank, format);
}

/** The canvas's text alternative: what it shows and its largest functions. */
function describe(model, zoom) {
  if (!model || !model.levels.length) return "Flame graph: no samples.";
  const rows = functionTable(model);
  const where = zoom ? ` zoomed to ${zoom.name}` : "";
  if (model.diff) {
    const share = (r, side) => (side === "left" ? (model.leftTicks ? r.leftSelf / model.leftTicks : 0) : (model.rightTicks ? r.rightSelf / model.rightTicks : 0));
    const moved = rows.map((r) => ({ r, d: share(r, "right") - share(r, "left") }));
    const grew = moved.filter((m) => m.d > 0).sort((a, b) => b.d - a.d).slice(0, 5)
      .map((m) => `${m.r.name} (${change(share(m.r, "left"), share(m.r, "right"))})`);
    const shrank = moved.filter((m) => m.d < 0).sort((a, b) => a.d - b.d).slice(0, 5)
      .map((m) => `${m.r.name} (${change(share(m.r, "left"), share(m.r, "right"))})`);
    return `Diff flame graph${where}: baseline ${format(model.leftTicks)}, comparison ${format(model.rightTicks)}, ${rows.length} functions. ` +
      `Grew most: ${grew.join(", ") || "none"}. Shrank most: ${shrank.join(", ") || "none"}.`;
  }
  const top = rows.sort((a, b) => b.self - a.self).slice(0, 5).map((r) => `${r.name} (${percent(r.self, model.total)})`);
  return `Flame graph${where}: ${format(model.total)} in ${rows.length} functions. Most self time: ${top.join(", ")}.`;
}

// ---- Controls -----------------------------------------------------------------------------------

for (const a of document.querySelectorAll(".tabs a")) {
  a.addEventListener("click", (e) => {
    e.preventDefault();
    if (state.view !== a.dataset.view) update({ view: a.dataset.view });
  });
}

$("service").addEventListener("change", (e) => {
  const s = e.target.value;
  update({
    selector: withService(state.selector, s),
    leftSelector: state.leftSelector ? withService(state.leftSelector, s) : "",
    rightSelector: state.rightSelector ? withService(state.rightSelector, s) : "",
  });
});

$("profile-type").addEventListener("change", (e) => update({ profileType: e.target.value }));

$("preset").addEventListener("change", (e) => {
  if (e.target.value === "custom") { $("from").focus(); return; }
  now = Date.now();
  update({ from: e.target.value, until: "now", leftFrom: "", leftUntil: "", rightFrom: "", rightUntil: "" });
});

for (const id of ["from", "until"]) {
  $(id).addEventListener("change", (e) => {
    const text = e.target.value.trim();
    const t = parseTime(text, now);
    if (t === null) { showError({ message: `cannot read the time "${text}" (try now-1h, 2026-11-25 14:00, or epoch ms)` }); return; }
    update({ [id]: /^now/.test(text) ? text.replace(/\s+/g, "") : String(t) });
  });
}

$("refresh").addEventListener("click", () => { now = Date.now(); cache.clear(); load(); });

function selectorInput(id, key) {
  $(id).addEventListener("keydown", (e) => {
    if (e.key === "Enter") update({ [key]: e.target.value.trim() || "{}" });
  });
  $(id).addEventListener("change", (e) => {
    const v = e.target.value.trim() || "{}";
    if (v !== (state[key] || state.selector)) update({ [key]: v });
  });
}
selectorInput("selector", "selector");
selectorInput("left-selector", "leftSelector");
selectorInput("right-selector", "rightSelector");

$("search").addEventListener("input", (e) => setSearch(e.target.value));
$("reset-zoom").addEventListener("click", () => flame.zoomTo(null));

document.addEventListener("keydown", (e) => {
  const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
  if (e.key === "/" && !typing) { e.preventDefault(); $("search").focus(); $("search").select(); return; }
  if (e.key === "Escape") {
    if (e.target === $("search") && state.search) { setSearch(""); return; }
    if (flame.zoom) { flame.zoomTo(null); return; }
    if (typing) e.target.blur();
    return;
  }
  if (e.key === "r" && !typing && !e.metaKey && !e.ctrlKey) { now = Date.now(); cache.clear(); load(); }
});

window.addEventListener("popstate", () => { state = readURL(); load(); });

load();

// Exposed for the console and tests: the decoded model's share change of a node.
window.kiln = { state: () => state, shareChange };
