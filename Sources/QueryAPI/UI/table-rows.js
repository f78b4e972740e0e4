// The function table's rows: columns, the sort and its URL form, each row's change of share in a
// comparison, and the order and number of rows shown.

import { diffColour } from "./flame-model.js";

/** Rows rendered at most; more would slow the page, and the search finds the rest. */
export const MAX_TABLE_ROWS = 400;

export const SINGLE_COLUMNS = [
  { key: "self", label: "Self", numeric: true },
  { key: "total", label: "Total", numeric: true },
  { key: "name", label: "Function" },
];

export const DIFF_COLUMNS = [
  { key: "name", label: "Function" },
  { key: "leftSelf", label: "Baseline self", numeric: true },
  { key: "rightSelf", label: "Comparison self", numeric: true },
  { key: "delta", label: "Change", numeric: true },
];

export function tableColumns(diff) {
  return diff ? DIFF_COLUMNS : SINGLE_COLUMNS;
}

/** `self`, `-name`: the URL form of a sort (a leading minus means ascending). */
export function sortParam(sort) {
  return (sort.desc ? "" : "-") + sort.key;
}

/** The sort a URL value names, or the view's default (self, or change of share) when it names no column. */
export function parseSortParam(value, diff) {
  const text = value || "";
  const key = text.replace(/^-/, "");
  if (tableColumns(diff).some((c) => c.key === key)) return { key, desc: !text.startsWith("-") };
  return { key: diff ? "delta" : "self", desc: true };
}

/** The sort after clicking a column header: the same column reverses, a new one starts descending (names ascending). */
export function nextSort(sort, key) {
  return { key, desc: sort.key === key ? !sort.desc : key !== "name" };
}

/**
 * Adds each comparison row's change of self share: `delta`, in share points (the sort key), and
 * `relative`, the change relative to the baseline share (Infinity for a function new in the comparison).
 */
export function addShareChanges(rows, model) {
  for (const r of rows) {
    const l = model.leftTicks ? r.leftSelf / model.leftTicks : 0;
    const rr = model.rightTicks ? r.rightSelf / model.rightTicks : 0;
    r.delta = rr - l;
    r.relative = l === 0 ? (rr === 0 ? 0 : Infinity) : (rr - l) / l;
  }
  return rows;
}

/**
 * The rows in display order; a comparison drops functions with nothing on either side. Ties go to the
 * larger self, then the name A to Z, in either direction (the browser tests expect that order).
 */
export function sortRows(rows, { key, desc }, diff) {
  const sorted = rows.filter((r) => !diff || r.leftSelf || r.rightSelf || r.leftTotal || r.rightTotal);
  sorted.sort((a, b) => {
    const c = key === "name" ? String(a[key]).localeCompare(String(b[key])) : a[key] - b[key];
    if (c !== 0) return desc ? -c : c;
    return b.self - a.self || a.name.localeCompare(b.name);
  });
  return sorted;
}

/** The change column's text colour: none when unchanged, else the diff colour, capped at ±100%. */
export function changeColour(relative) {
  if (relative === 0) return "";
  return diffColour(Math.max(-1, Math.min(1, relative)) || (relative > 0 ? 1 : -1));
}
