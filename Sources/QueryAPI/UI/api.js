// Kiln's query API, as the UI calls it: Pyroscope's Connect `querier.v1.QuerierService` and
// `settings.v1.RecordingRulesService` in JSON, and Kiln's own `/kiln/v1/regressions`. Connect requests and
// responses follow the proto3 JSON mapping (lowerCamelCase names, int64 as strings).
// Only `fetch` is used, so the answer-reading helpers below are testable outside a browser.

const SERVICE = "/querier.v1.QuerierService/";

/** An error the server explained (Connect's `{code, message}`) or a failed request. */
export class QueryError extends Error {
  constructor(method, code, message) {
    super(message);
    this.method = method;
    this.code = code;
  }
}

/** Sends one request and reads its JSON answer; `label` names the call in a QueryError. */
async function request(label, url, init, signal) {
  let response;
  try {
    response = await fetch(url, { ...init, signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new QueryError(label, "unavailable", `cannot reach the query service (${e.message})`);
  }
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : {}; } catch { /* not JSON: reported below */ }
  if (!response.ok) {
    const code = json && json.code ? json.code : `http ${response.status}`;
    const message = json && json.message ? json.message : (text.trim().slice(0, 300) || response.statusText);
    throw new QueryError(label, code, message);
  }
  if (json === null) throw new QueryError(label, "internal", "the server answered with something that is not JSON");
  return json;
}

function call(method, body, signal, service = SERVICE) {
  return request(method, service + method, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
    body: JSON.stringify(body),
  }, signal);
}

const int = (v) => (v === undefined || v === null ? 0 : Number(v));
/** Proto3-JSON label pairs [{name, value}] as {name: value}. */
const labelMap = (pairs) => Object.fromEntries((pairs || []).map((l) => [l.name, l.value]));

export async function profileTypes(start, end, signal) {
  const r = await call("ProfileTypes", { start: String(start), end: String(end) }, signal);
  return (r.profileTypes || []).map((t) => ({
    id: t.ID || t.id || "",
    name: t.name || "",
    sampleType: t.sampleType || "",
    sampleUnit: t.sampleUnit || "",
    periodType: t.periodType || "",
    periodUnit: t.periodUnit || "",
  }));
}

export async function labelValues(name, start, end, matchers, signal) {
  const body = { name, start: String(start), end: String(end) };
  if (matchers && matchers.length) body.matchers = matchers;
  const r = await call("LabelValues", body, signal);
  return r.names || [];
}

export async function labelNames(start, end, matchers, signal) {
  const body = { start: String(start), end: String(end) };
  if (matchers && matchers.length) body.matchers = matchers;
  const r = await call("LabelNames", body, signal);
  return r.names || [];
}

/** A flame graph request (SelectMergeStacktraces, or one side of a Diff) for `q`. */
export function mergeRequest(q) {
  const body = {
    profileTypeID: q.profileType,
    labelSelector: q.selector,
    start: String(q.start),
    end: String(q.end),
    maxNodes: String(q.maxNodes),
  };
  if (q.spans && q.spans.length) body.spanSelector = q.spans;
  if (q.profiles && q.profiles.length) body.profileIdSelector = q.profiles;
  return body;
}

/**
 * The merged flame graph of `q` ({profileType, selector, start, end, maxNodes}; `spans` keeps only those
 * spans' samples, `profiles` only those profiles).
 */
export async function mergeStacktraces(q, signal) {
  const r = await call("SelectMergeStacktraces", mergeRequest(q), signal);
  return flamegraphFromJSON(r.flamegraph);
}

/** The diff flame graph of two queries: left is the baseline, right the comparison. */
export async function diff(left, right, signal) {
  const r = await call("Diff", { left: mergeRequest(left), right: mergeRequest(right) }, signal);
  return { ...flamegraphFromJSON(r.flamegraph), leftTicks: int(r.flamegraph?.leftTicks), rightTicks: int(r.flamegraph?.rightTicks) };
}

/** A proto3-JSON flame graph (int64 as strings, empty fields left out) with plain numbers and arrays. */
export function flamegraphFromJSON(json) {
  const fg = json || {};
  return {
    names: fg.names || [],
    levels: (fg.levels || []).map((l) => (l.values || []).map(int)),
    total: int(fg.total),
    maxSelf: int(fg.maxSelf),
  };
}

/**
 * One summed time series for the query, `step` seconds per point: {points, exemplars}, exemplars only when
 * asked. Never filtered by span or profile: SelectSeries takes neither, so `q.spans` and `q.profiles` are
 * left out.
 */
export async function selectSeries(q, step, signal, { exemplars = false } = {}) {
  const r = await seriesCall(q, step, [], signal, exemplars);
  return { points: summedSeries(r.series), exemplars: exemplarsOf(r.series) };
}

function seriesCall(q, step, groupBy, signal, exemplars = false) {
  const body = {
    profileTypeID: q.profileType,
    labelSelector: q.selector,
    start: String(q.start),
    end: String(q.end),
    step,
    groupBy,
    aggregation: "TIME_SERIES_AGGREGATION_TYPE_SUM",
  };
  if (exemplars) body.exemplarType = "EXEMPLAR_TYPE_INDIVIDUAL";
  return call("SelectSeries", body, signal);
}

/**
 * SelectHeatmap of individual profiles with their exemplars, every group merged (the UI asks without
 * `groupBy`): {yMin, slots: [{t, counts, exemplars}]} — see heatmapFromJSON.
 */
export async function selectHeatmap(q, step, signal) {
  return heatmapFromJSON(await call("SelectHeatmap", {
    profileTypeID: q.profileType,
    labelSelector: q.selector,
    start: String(q.start),
    end: String(q.end),
    step,
    queryType: "HEATMAP_QUERY_TYPE_INDIVIDUAL",
    exemplarType: "EXEMPLAR_TYPE_INDIVIDUAL",
  }, signal));
}

/**
 * A SelectHeatmap answer as {yMin: the value buckets' lower bounds, slots: [{t, counts, exemplars}]} in time
 * order, the series' counts added slot by slot; exemplars as exemplarsOf reads them.
 */
export function heatmapFromJSON(json) {
  const slots = new Map();
  let yMin = [];
  for (const s of (json && json.series) || []) {
    for (const slot of s.slots || []) {
      const t = int(slot.timestamp);
      if (!yMin.length && slot.yMin) yMin = slot.yMin.map(Number);
      const into = slots.get(t) || { t, counts: [], exemplars: [] };
      (slot.counts || []).forEach((c, i) => { into.counts[i] = (into.counts[i] || 0) + (Number(c) || 0); });
      into.exemplars.push(...exemplarList(slot.exemplars));
      slots.set(t, into);
    }
  }
  return { yMin, slots: [...slots.values()].sort((a, b) => a.t - b.t) };
}

/**
 * The exemplars of a SelectSeries answer — each point's largest profile — as [{t, value, profileId,
 * labels}] in time order: `t` the profile's own time (ms), `labels` {name: value}.
 */
export function exemplarsOf(series) {
  const out = [];
  for (const s of series || []) for (const p of s.points || []) out.push(...exemplarList(p.exemplars));
  return out.sort((a, b) => a.t - b.t);
}

/** Proto3-JSON exemplars as [{t, value, profileId, labels}], those without a profile ID left out. */
function exemplarList(exemplars) {
  return (exemplars || []).filter((e) => e.profileId).map((e) => ({
    t: int(e.timestamp), value: int(e.value), profileId: e.profileId,
    labels: labelMap(e.labels),
  }));
}

/** SelectSeries grouped by `groupBy`: [{labels: {name: value}, points: [{t, v}]}], points in time order. */
export async function groupedSeries(q, step, groupBy, signal) {
  const r = await seriesCall(q, step, groupBy, signal);
  return (r.series || []).map((s) => ({
    labels: labelMap(s.labels),
    points: (s.points || []).map((p) => ({ t: int(p.timestamp), v: Number(p.value) || 0 })).sort((a, b) => a.t - b.t),
  }));
}

const RULES = "/settings.v1.RecordingRulesService/";
const rulesCall = (method, body) => call(method, body, undefined, RULES);

/** The tenant's recording rules (Pyroscope's settings.v1 JSON: metricName, matchers, groupBy, …). */
export async function listRecordingRules() {
  return (await rulesCall("ListRecordingRules", {})).rules || [];
}

/** Creates or replaces a rule; the server answers 409 when `generation` is not the stored one. */
export async function upsertRecordingRule(request) {
  return (await rulesCall("UpsertRecordingRule", request)).rule;
}

export async function deleteRecordingRule(id) {
  await rulesCall("DeleteRecordingRule", { id });
}

/** Every series summed point-wise into [{t, v}] sorted by time, so a grouped answer draws as one line. */
export function summedSeries(series) {
  const sums = new Map();
  for (const s of series || []) {
    for (const p of s.points || []) {
      const t = int(p.timestamp);
      sums.set(t, (sums.get(t) || 0) + (Number(p.value) || 0));
    }
  }
  return [...sums.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => ({ t, v }));
}

/**
 * Kiln's regression report: which functions' share of the profile changed significantly between the
 * baseline and the comparison. Queries are `<profile type>{<selector>}`, times epoch ms.
 */
export function regressions({ baselineQuery, baselineFrom, baselineUntil, comparisonQuery, comparisonFrom, comparisonUntil }, signal) {
  const query = new URLSearchParams({
    baselineQuery, baselineFrom: String(baselineFrom), baselineUntil: String(baselineUntil),
    comparisonQuery, comparisonFrom: String(comparisonFrom), comparisonUntil: String(comparisonUntil),
  });
  return request("Regressions", `/kiln/v1/regressions?${query}`, { method: "GET" }, signal);
}
