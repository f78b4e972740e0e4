// Kiln's web UI: pickers, time range, timeline, flame graph with its table, and the comparison view with
// its "Explain this difference" report.
// Every piece of view state lives in the URL's query string, so reload and bookmarks restore the view.

import * as api from "./api.js";
import {
  decodeSingle, decodeDiff, functionTable, shareChange, searchSummary, describeFlameGraph, nodeForFunction,
} from "./flame-model.js";
import { FlameGraph } from "./flamegraph.js";
import { FunctionTable } from "./table.js";
import { RegressionPanel } from "./regression-panel.js";
import { Timeline } from "./timeline.js";
import { valueFormatter, dateTime } from "./format.js";
import { parseViewState, viewStateQuery } from "./url-state.js";
import { spanChipParts, spanListProblem } from "./span-selector.js";
import { profileIDMillis, profileListProblem } from "./profile-selector.js";
import { withService, serviceOf, joinQuery } from "./selector.js";
import { timeParam, displayTime, seriesStepSeconds, resolveRange, comparisonRanges } from "./time-range.js";
import { profileTypeLabel, defaultProfileType } from "./profile-types.js";

const $ = (id) => document.getElementById(id);

// ---- URL state ----------------------------------------------------------------------------------

function readURL() {
  return parseViewState(location.search);
}

function writeURL(push) {
  const url = `${location.pathname}?${viewStateQuery(state)}`;
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
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
  describe: (model, zoom) => describeFlameGraph(model, zoom, format),
});

const table = new FunctionTable($("functions"), {
  onPick: (name) => setSearch(state.search === name ? "" : name),
  onSort: (sort) => { state.sort = sort; writeURL(false); },
});

const explanation = new RegressionPanel({
  button: $("explain"), summary: $("explain-summary"), close: $("explain-close"),
  panel: $("explain-panel"), message: $("explain-message"), table: $("explain-table"),
}, { onPick: (row) => focusFunction(row) });
let explainController = null;
let explainedRequest = ""; // the comparison the panel explains (JSON), so a changed comparison closes it

const timeline = new Timeline($("timeline"), {
  onSelect: (from, until) => update({ from: String(from), until: String(until) }),
  onExemplar: (e) => update({ profiles: state.profiles.length === 1 && state.profiles[0] === e.profileId ? [] : [e.profileId] }),
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
  $("search-info").textContent = info ? searchSummary(info) : "";
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
  return resolveRange(state.from, state.until, now);
}

function syncControls() {
  document.body.dataset.view = state.view;
  for (const a of document.querySelectorAll(".tabs a[data-view]")) {
    a.classList.toggle("active", a.dataset.view === state.view);
    a.setAttribute("aria-current", a.dataset.view === state.view ? "page" : "false");
  }
  $("top-single").hidden = state.view !== "single";
  $("top-diff").hidden = state.view !== "diff";
  $("legend").hidden = state.view !== "diff";
  $("from").value = displayTime(state.from);
  $("until").value = displayTime(state.until);
  const preset = [...$("preset").options].find((o) => o.value === state.from && state.until === "now");
  $("preset").value = preset ? preset.value : "custom";
  $("selector").value = state.selector;
  $("left-selector").value = state.leftSelector || state.selector;
  $("right-selector").value = state.rightSelector || state.selector;
  if ($("search").value !== state.search) $("search").value = state.search;
  syncSpanFilter();
  syncProfileFilter();
  $("timeline-mode").setAttribute("aria-pressed", String(state.heatmap));
  $("timeline-mode").textContent = state.heatmap ? "Sum" : "Heatmap";
  $("timeline-mode").title = state.heatmap
    ? "Show the sum over time instead of each profile's value"
    : "Show each profile's value over time (a heatmap) instead of the sum";
}

/** The profile filter's chip: which profile the flame graph shows alone (single view only). */
function syncProfileFilter() {
  const ids = state.view === "single" ? state.profiles : [];
  const chip = $("profile-filter");
  chip.hidden = !ids.length;
  chip.classList.toggle("invalid", profileListProblem(ids) !== "");
  const when = ids.length && !profileListProblem(ids) ? ` at ${dateTime(profileIDMillis(ids[0]), true)}` : "";
  $("profile-filter-text").textContent = ids.length === 1 ? `Profile${when}` : ids.length ? `${ids.length} profiles` : "";
  chip.title = ids.length ? `The flame graph and the table show only ${ids.length === 1 ? "profile" : "profiles"} ${ids.join(", ")}.` : "";
}

/** The span filter's chip, and the timelines' hints that they are not filtered (SelectSeries cannot be). */
function syncSpanFilter() {
  const spans = state.spans;
  const chip = $("span-filter");
  chip.hidden = !spans.length;
  chip.classList.toggle("invalid", spans.length > 0 && spanListProblem(spans) !== "");
  const [label, first, more] = spanChipParts(spans);
  $("span-filter-label").textContent = label;
  $("span-filter-first").textContent = first;
  $("span-filter-more").textContent = more;
  const others = state.view === "diff" ? "The timelines and Explain this difference use" : "The timeline shows";
  chip.title = spans.length
    ? `The flame graph and the table show only the samples of ${spans.length === 1 ? "span" : "spans"} ${spans.join(", ")}. ${others} all samples.`
    : "";
  for (const t of [$("timeline"), $("left-timeline"), $("right-timeline")]) {
    t.dataset.title ??= t.title; // index.html's hint, kept to restore when the filter goes
    t.title = spans.length ? `${t.dataset.title}. All samples: the span filter applies to the flame graph only` : t.dataset.title;
  }
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
    if (types.length && !types.some((t) => t.id === state.profileType)) { state.profileType = defaultProfileType(types); changed = true; }
    const service = serviceOf(state.selector);
    if (services.length && !service) { state.selector = withService(state.selector, services[0]); changed = true; }
    if (changed) writeURL(false);
    syncControls();
    fillSelect($("profile-type"), types.map((t) => ({ value: t.id, label: profileTypeLabel(t) })), state.profileType);
    const current = serviceOf(state.selector);
    const serviceItems = services.map((s) => ({ value: s, label: s }));
    if (current && !services.includes(current)) serviceItems.unshift({ value: current, label: `${current} (no data)` });
    fillSelect($("service"), serviceItems, current);
    const type = types.find((t) => t.id === state.profileType);
    format = valueFormatter(type ? type.sampleUnit : "");
    const filterProblem = spanListProblem(state.spans) || (state.view === "single" ? profileListProblem(state.profiles) : "");
    if (filterProblem) {
      // The server would refuse the request; say what is wrong instead of querying.
      showError({ message: filterProblem });
      showEmpty("No flame graph until the span and profile filters hold only span and profile IDs.");
      for (const t of [timeline, leftTimeline, rightTimeline]) t.setMessage("");
      setStatus("error");
      return;
    }
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
  return {
    profileType: state.profileType, selector: selector || "{}", start: r.start, end: r.end, maxNodes: state.maxNodes,
    spans: state.spans, profiles: state.view === "single" ? state.profiles : [],
  };
}

/** The timeline's {points, exemplars}; exemplars only for the single view, which can open one. */
function series(selector, r, signal) {
  const q = query(selector, r);
  const step = seriesStepSeconds(r.start, r.end);
  const exemplars = state.view === "single";
  return cached(
    `series ${q.profileType} ${q.selector} ${r.start} ${r.end} ${step} ${exemplars}`,
    () => api.selectSeries(q, step, signal, { exemplars }));
}

async function loadSingle(r, signal) {
  $("range-text").textContent = `${dateTime(r.start, true)} – ${dateTime(r.end, true)}`;
  const q = query(state.selector, r);
  const step = seriesStepSeconds(r.start, r.end);
  const [{ points, exemplars }, heat, fg] = await Promise.all([
    series(state.selector, r, signal),
    state.heatmap
      ? cached(`heatmap ${q.profileType} ${q.selector} ${r.start} ${r.end} ${step}`, () => api.selectHeatmap(q, step, signal))
      : null,
    cached(`merge ${JSON.stringify(q)}`, () => api.mergeStacktraces(q, signal)),
  ]);
  if (signal.aborted) return;
  timeline.setData(points, r.start, r.end, format, step * 1000);
  timeline.setExemplars(exemplars, state.profiles);
  timeline.setHeatmap(heat);
  timeline.setOverlays([]);
  showModel(decodeSingle(fg));
}

/** The diff view's two sides: each one's selector and time range within the view's range `r`. */
function comparison(r) {
  const { left, right } = comparisonRanges(r, state, now);
  return { leftSel: state.leftSelector || state.selector, rightSel: state.rightSelector || state.selector, left, right };
}

/** The regression report's request for the comparison the diff view shows. */
function regressionRequest({ leftSel, rightSel, left, right }) {
  return {
    baselineQuery: joinQuery(state.profileType, leftSel), baselineFrom: left.start, baselineUntil: left.end,
    comparisonQuery: joinQuery(state.profileType, rightSel), comparisonFrom: right.start, comparisonUntil: right.end,
  };
}

async function loadDiff(r, signal) {
  const sides = comparison(r);
  const { leftSel, rightSel, left, right } = sides;
  // A report about another comparison would explain the wrong graph.
  if (explainedRequest && explainedRequest !== JSON.stringify(regressionRequest(sides))) closeExplanation();
  $("left-range").textContent = `${dateTime(left.start, true)} – ${dateTime(left.end, true)} · drag on the chart to change`;
  $("right-range").textContent = `${dateTime(right.start, true)} – ${dateTime(right.end, true)} · drag on the chart to change`;
  const lq = query(leftSel, left), rq = query(rightSel, right);
  const [lp, rp, fg] = await Promise.all([
    series(leftSel, r, signal),
    series(rightSel, r, signal),
    cached(`diff ${JSON.stringify(lq)} ${JSON.stringify(rq)}`, () => api.diff(lq, rq, signal)),
  ]);
  if (signal.aborted) return;
  const stepMillis = seriesStepSeconds(r.start, r.end) * 1000;
  leftTimeline.setData(lp.points, r.start, r.end, format, stepMillis);
  rightTimeline.setData(rp.points, r.start, r.end, format, stepMillis);
  leftTimeline.setOverlays([{ from: left.start, until: left.end, className: "baseline", label: "baseline" }]);
  rightTimeline.setOverlays([{ from: right.start, until: right.end, className: "comparison", label: "comparison" }]);
  showModel(decodeDiff(fg));
}

function showModel(model) {
  const empty = model.diff ? model.leftTicks === 0 && model.rightTicks === 0 : model.total === 0;
  if (empty) showEmpty(state.spans.length ? "No samples of these spans match these labels in this time range."
    : "No samples match these labels in this time range.");
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

// ---- Explain this difference -----------------------------------------------------------------------

async function explainDifference() {
  if (explainController) explainController.abort();
  const controller = new AbortController();
  explainController = controller;
  let request;
  try {
    request = regressionRequest(comparison(range()));
  } catch (e) {
    explanation.showError(e);
    return;
  }
  explainedRequest = JSON.stringify(request);
  explanation.showLoading();
  try {
    const report = await cached(`regressions ${explainedRequest}`, () => api.regressions(request, controller.signal));
    if (controller.signal.aborted) return;
    explanation.showReport(report);
  } catch (e) {
    if (e.name === "AbortError" || controller.signal.aborted) return;
    explanation.showError(e);
  }
}

function closeExplanation() {
  if (explainController) explainController.abort();
  explainController = null;
  explainedRequest = "";
  explanation.hide();
}

/**
 * Shows a reported function in the graph: highlights all its frames (the search, which also marks its
 * table row) and zooms to the frame the report says changed most, or its most changed frame.
 */
function focusFunction(row) {
  setSearch(row.function);
  table.reveal(row.function);
  const node = flame.model ? nodeForFunction(flame.model, row.function, row.paths) : null;
  flame.focusOn(node);
  if (!node) $("zoom-info").textContent = `${row.function} is not in this graph`;
}

$("explain").addEventListener("click", explainDifference);
$("explain-close").addEventListener("click", closeExplanation);

// ---- Controls -----------------------------------------------------------------------------------

for (const a of document.querySelectorAll(".tabs a[data-view]")) {
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
    const value = timeParam(text, now);
    if (value === null) { showError({ message: `cannot read the time "${text}" (try now-1h, 2026-11-25 14:00, or epoch ms)` }); return; }
    update({ [id]: value });
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

$("span-filter-clear").addEventListener("click", () => update({ spans: [] }));
$("profile-filter-clear").addEventListener("click", () => update({ profiles: [] }));
$("timeline-mode").addEventListener("click", () => update({ heatmap: !state.heatmap }));
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

// Exposed for the console and tests: the decoded model's share change of a node, and the frames from
// the root's child down to the node the flame graph is zoomed to ([] when not zoomed).
const zoomedFrames = () => {
  const frames = [];
  for (let n = flame.zoom; n && n.parent; n = n.parent) frames.unshift(n.name);
  return frames;
};
window.kiln = { state: () => state, shareChange, zoomedFrames };
