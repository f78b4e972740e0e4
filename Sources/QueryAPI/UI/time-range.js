// Times as the UI accepts them (`now-1h`, epoch seconds or ms, `2026-11-25 14:00`) and the ranges
// derived from them: the view's range, the comparison sides, the timeline's step.

import { dateTime } from "./format.js";

const UNIT_MILLIS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 };

/** Epoch ms for `now`, `now-1h`, `now-30m`, epoch seconds or ms, or a local date; null if unreadable. */
export function parseTime(text, now) {
  const t = String(text).trim();
  const rel = /^now(?:\s*([-+])\s*(\d+(?:\.\d+)?)\s*([smhdw]))?$/.exec(t);
  if (rel) {
    if (!rel[1]) return now;
    const delta = Number(rel[2]) * UNIT_MILLIS[rel[3]];
    return rel[1] === "-" ? now - delta : now + delta;
  }
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    return n < 1e11 ? n * 1000 : n; // seconds, as Pyroscope accepts them, or milliseconds
  }
  const d = Date.parse(/^\d{4}-\d\d-\d\d \d/.test(t) ? t.replace(" ", "T") : t);
  return Number.isNaN(d) ? null : d;
}

/**
 * The URL form of a typed time: relative times stay relative (spaces dropped), so a bookmark follows
 * the clock; anything else becomes epoch ms. Null when the text is not a time.
 */
export function timeParam(text, now) {
  const t = String(text).trim();
  const ms = parseTime(t, now);
  if (ms === null) return null;
  return /^now/.test(t) ? t.replace(/\s+/g, "") : String(ms);
}

/** What a time field shows for a URL value: epoch ms as a local date, relative times as they are. */
export function displayTime(param) {
  return /^\d+$/.test(param) ? dateTime(parseTime(param, 0), true) : param;
}

/** SelectSeries' step in seconds: about 240 points across the range, never below 10 s (Pyroscope's minimum). */
export function seriesStepSeconds(start, end) {
  return Math.max(10, Math.round((end - start) / 1000 / 240));
}

/** The view's range in epoch ms; throws with a readable message when it cannot be used. */
export function resolveRange(from, until, now) {
  const start = parseTime(from, now);
  const end = parseTime(until, now);
  if (start === null || end === null) throw new Error(`cannot read the time range "${from}" to "${until}"`);
  if (end <= start) throw new Error("the time range ends before it starts");
  return { start, end };
}

/**
 * Baseline (left) and comparison (right) ranges: each side's own `from`/`until` when both are readable
 * and in order, else the first and the second half of the view's range.
 */
export function comparisonRanges({ start, end }, { leftFrom, leftUntil, rightFrom, rightUntil }, now) {
  const mid = Math.round((start + end) / 2);
  const side = (from, until, fallbackStart, fallbackEnd) => {
    const f = from ? parseTime(from, now) : null;
    const u = until ? parseTime(until, now) : null;
    return f !== null && u !== null && u > f ? { start: f, end: u } : { start: fallbackStart, end: fallbackEnd };
  };
  return { left: side(leftFrom, leftUntil, start, mid), right: side(rightFrom, rightUntil, mid, end) };
}
