// The regression report (`GET /kiln/v1/regressions`) as the comparison view lists it: one row per
// function whose share of the profile changed significantly, appeared or vanished, and a one-line
// summary of the test behind it.

import { percent } from "./format.js";

/** The list's sections in display order: what grew first, since that is what a slowdown is made of. */
export const REGRESSION_SECTIONS = [
  { kind: "regression", heading: "Grew significantly" },
  { kind: "new", heading: "New in the comparison" },
  { kind: "improvement", heading: "Shrank significantly" },
  { kind: "vanished", heading: "Gone from the comparison" },
];

/**
 * The report's functions as display rows, section by section in REGRESSION_SECTIONS' order. Each row:
 * `{kind, function, before, after, change, beforeText, afterText, changeText, qText, paths}`, where
 * before/after are total shares (fractions) and change is after − before. Regressions and improvements
 * keep the server's ranking; new and vanished functions, which the server does not rank, go largest first.
 */
export function regressionRows(report) {
  const r = report || {};
  const tested = (list, kind) => (list || []).map((c) =>
    row(kind, c.function, finite(c.totalShare?.before), finite(c.totalShare?.after), c.q, c.paths));
  const largestFirst = (list) => [...(list || [])].sort((a, b) => finite(b.totalShare) - finite(a.totalShare));
  return [
    ...tested(r.regressions, "regression"),
    ...largestFirst(r.newFunctions).map((f) => row("new", f.function, 0, finite(f.totalShare), null, [])),
    ...tested(r.improvements, "improvement"),
    ...largestFirst(r.vanishedFunctions).map((f) => row("vanished", f.function, finite(f.totalShare), 0, null, [])),
  ];
}

/** A number from the report, 0 when it is missing or not one. */
const finite = (v) => (Number.isFinite(Number(v)) ? Number(v) : 0);

function row(kind, name, before, after, q, paths) {
  return {
    kind, function: String(name ?? ""), before, after, change: after - before,
    beforeText: shareText(before), afterText: shareText(after), changeText: pointsText(after - before),
    qText: qText(q), paths: paths || [],
  };
}

/** A share as a percentage: `45.0%`, `5.00%`, `0%`. */
export function shareText(fraction) {
  return percent(fraction, 1);
}

/** A change of share in percentage points, signed: `+25.0 pp`, `-0.35 pp`. */
export function pointsText(change) {
  const points = change * 100;
  if (Math.abs(points) < 0.005) return "0 pp";
  // Digits by the rounded size: 0.2 − 0.3 is −9.99…, which reads as −10.0, not −10.00.
  const digits = Math.abs(Number(points.toFixed(2))) >= 10 ? 1 : 2;
  return `${points > 0 ? "+" : ""}${points.toFixed(digits)} pp`;
}

/** A q-value (p adjusted for testing many functions): `0.012`, `3.2e-9`; "" when there is none. */
export function qText(q) {
  if (q === null || q === undefined || !Number.isFinite(Number(q))) return "";
  const v = Number(q);
  if (v === 0) return "0"; // below the smallest double: the server's arithmetic underflowed
  if (v < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(2)));
}

/**
 * The one line above the list: how many profiles each side had and how they were tested, e.g.
 * `40 profiles in the baseline, 38 in the comparison · Mann–Whitney U, Benjamini–Hochberg, α = 0.05 ·
 * 120 functions tested`.
 */
export function regressionSummary(report) {
  const r = report || {};
  const m = r.method || {};
  const baseline = finite(r.baseline?.profiles), comparison = finite(r.comparison?.profiles);
  const parts = [`${baseline} ${baseline === 1 ? "profile" : "profiles"} in the baseline, ${comparison} in the comparison`];
  const test = [m.test, m.correction, m.alpha !== undefined ? `α = ${m.alpha}` : ""].filter(Boolean).join(", ");
  if (test) parts.push(test);
  if (m.functionsTested !== undefined) parts.push(`${m.functionsTested} ${m.functionsTested === 1 ? "function" : "functions"} tested`);
  return parts.join(" · ");
}

/**
 * What the panel says when no function changed significantly: that, and the largest change the test
 * judged noise, so an expected regression that is missing can be found.
 */
export function noChangeMessage(report) {
  const noise = (report?.insignificant || [])[0];
  if (!noise) return "No significant change.";
  const [largest] = regressionRows({ regressions: [noise] });
  const q = largest.qText ? `, q = ${largest.qText}` : "";
  return `No significant change. Largest change, judged noise: ${largest.function} ${largest.changeText}${q}.`;
}
