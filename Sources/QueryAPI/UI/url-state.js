// The view state ↔ the page's query string. Every piece of view state lives in the URL, so reload,
// back/forward and bookmarks restore the view (the parameters are listed in docs/ui.md).

import { splitQuery, joinQuery } from "./selector.js";

export const DEFAULTS = { view: "single", from: "now-1h", until: "now", maxNodes: 8192 };
const MIN_MAX_NODES = 16;
const MAX_MAX_NODES = 1 << 20;

/** The view a query string (`?view=diff&query=…`, with or without the `?`) describes. */
export function parseViewState(search) {
  const p = new URLSearchParams(search);
  const { profileType, selector } = splitQuery(p.get("query") || "");
  return {
    view: p.get("view") === "diff" ? "diff" : "single",
    profileType,
    selector,
    from: p.get("from") || DEFAULTS.from,
    until: p.get("until") || DEFAULTS.until,
    spans: splitList(p.getAll("spanSelector")),
    profiles: splitList(p.getAll("profileId")),
    heatmap: p.get("timeline") === "heatmap",
    leftSelector: p.get("leftQuery") || "",
    rightSelector: p.get("rightQuery") || "",
    leftFrom: p.get("leftFrom") || "",
    leftUntil: p.get("leftUntil") || "",
    rightFrom: p.get("rightFrom") || "",
    rightUntil: p.get("rightUntil") || "",
    search: p.get("search") || "",
    sort: p.get("sort") || "",
    maxNodes: Math.max(MIN_MAX_NODES, Math.min(MAX_MAX_NODES, Number(p.get("maxNodes")) || DEFAULTS.maxNodes)),
  };
}

/** The query string (without `?`) for a view state; defaults and unused comparison fields are left out. */
export function viewStateQuery(state) {
  const p = new URLSearchParams();
  if (state.view !== "single") p.set("view", state.view);
  if (state.profileType || state.selector) p.set("query", joinQuery(state.profileType, state.selector));
  p.set("from", state.from);
  p.set("until", state.until);
  if (state.spans && state.spans.length) p.set("spanSelector", state.spans.join(","));
  if (state.view === "single" && state.profiles && state.profiles.length) p.set("profileId", state.profiles.join(","));
  if (state.view === "single" && state.heatmap) p.set("timeline", "heatmap");
  if (state.view === "diff") {
    if (state.leftSelector && state.leftSelector !== state.selector) p.set("leftQuery", state.leftSelector);
    if (state.rightSelector && state.rightSelector !== state.selector) p.set("rightQuery", state.rightSelector);
    for (const k of ["leftFrom", "leftUntil", "rightFrom", "rightUntil"]) if (state[k]) p.set(k, state[k]);
  }
  if (state.search) p.set("search", state.search);
  if (state.sort) p.set("sort", state.sort);
  if (state.maxNodes !== DEFAULTS.maxNodes) p.set("maxNodes", String(state.maxNodes));
  return p.toString();
}

/**
 * The entries of a list parameter (`spanSelector`, `profileId`), in order: each value is comma-separated
 * and the parameter may repeat. Blanks around entries, empty entries and repeats are dropped; nothing else
 * is, so a bad entry stays visible to be reported.
 */
export function splitList(values) {
  const out = [];
  for (const value of values || []) {
    for (const part of String(value).split(",")) {
      const entry = part.trim();
      if (entry && !out.includes(entry)) out.push(entry);
    }
  }
  return out;
}

/**
 * Why a list parameter cannot be sent to the server — its entries that `isValid` refuses, quoted (each cut
 * at 40 characters), and what they should be — or "" when every entry is valid. `what`: {one: "a span ID",
 * many: "span IDs", rule: "1 to 16 hex digits", filter: "span"}.
 */
export function listProblem(parameter, entries, isValid, { one, many, rule, filter }) {
  const bad = (entries || []).filter((e) => !isValid(e));
  if (!bad.length) return "";
  const quoted = bad.map((e) => `"${e.length > 40 ? e.slice(0, 40) + "…" : e}"`).join(", ");
  const verb = bad.length === 1 ? `is not ${one}` : `are not ${many}`;
  return `${parameter} ${quoted} ${verb} (${rule}). Correct the URL, or remove the ${filter} filter with its ×.`;
}
