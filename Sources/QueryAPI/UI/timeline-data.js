// The timeline's data, shaped for drawing: SelectSeries points into runs to draw as areas, the x-axis
// ticks and their labels. A point at T holds the samples of the step (T − step, T], as Pyroscope's
// SelectSeries answers; steps without samples have no point.

import { timeOfDay, shortDate } from "./format.js";

/** A gap between two points longer than this many steps has no data, so the area breaks there. */
export const MAX_GAP_STEPS = 2;

/**
 * The points of [start, end] split into runs to draw as separate areas. A run ends where the next
 * point is more than MAX_GAP_STEPS steps away, so profiles minutes apart are not joined across the gaps.
 * A run of one point (a single profile) spans its step, [T − step, T], so it is visible rather than a
 * zero-width area. Times stay within [start, end]: the last step may end after `end`.
 */
export function timelineSegments(points, stepMillis, start, end) {
  const inRange = points.filter((p) => p.t >= start && p.t < end + stepMillis);
  const segments = [];
  let current = [];
  for (const p of inRange) {
    const previous = current[current.length - 1];
    if (previous && p.t - previous.t > MAX_GAP_STEPS * stepMillis) {
      segments.push(current);
      current = [];
    }
    current.push(p);
  }
  if (current.length) segments.push(current);
  return segments.map((run) => {
    if (run.length > 1) return run.map((p) => (p.t > end ? { t: end, v: p.v } : p));
    const { t, v } = run[0];
    const from = Math.max(start, t - stepMillis), until = Math.min(end, t);
    // The point at `start` holds only samples at that instant: draw it over the first step instead.
    if (until <= from) return [{ t: start, v }, { t: Math.min(end, start + stepMillis), v }];
    return [{ t: from, v }, { t: until, v }];
  });
}

/**
 * SVG path data for the segments: `area` closes each run down to the baseline y `bottom`, `line` traces
 * the runs' tops. `xOf(t)` and `yOf(v)` map to pixels.
 */
export function timelinePaths(segments, xOf, yOf, bottom) {
  let area = "", line = "";
  for (const run of segments) {
    let top = "";
    run.forEach((p, i) => { top += `${i ? "L" : "M"}${xOf(p.t).toFixed(1)},${yOf(p.v).toFixed(1)}`; });
    line += top;
    area += `${top}L${xOf(run[run.length - 1].t).toFixed(1)},${bottom}L${xOf(run[0].t).toFixed(1)},${bottom}Z`;
  }
  return { area, line };
}

const TICK_STEPS = [10e3, 30e3, 60e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3,
  86400e3, 2 * 86400e3, 7 * 86400e3];
const PIXELS_PER_TICK = 110;

/** The round tick interval (ms) that gives about one label per 110 px of plot. */
export function tickStep(spanMillis, plotWidth) {
  const want = spanMillis / Math.max(1, plotWidth / PIXELS_PER_TICK);
  return TICK_STEPS.find((s) => s >= want) || TICK_STEPS[TICK_STEPS.length - 1];
}

/**
 * The tick times in [start, end]: multiples of `step` in local time (`timezoneOffsetMillis` is
 * `Date#getTimezoneOffset()` in ms). None for a range under a second (no answer yet: 1970 is no help).
 */
export function tickTimes(start, end, step, timezoneOffsetMillis) {
  if (end - start < 1000) return [];
  const ticks = [];
  for (let t = Math.ceil((start - timezoneOffsetMillis) / step) * step + timezoneOffsetMillis; t <= end; t += step) ticks.push(t);
  return ticks;
}

/** A tick's label: time of day, with seconds for sub-minute steps, with the date for ranges over a day. */
export function tickLabel(t, step, spanMillis) {
  const showDate = spanMillis > 86400e3;
  if (showDate && step >= 86400e3) return shortDate(t);
  if (showDate) return `${shortDate(t)} ${timeOfDay(t)}`;
  return timeOfDay(t, step < 60e3);
}

/**
 * A heatmap's cells to draw: [{t, bucket, count, exemplar}] for every non-empty (slot, value bucket), the
 * slot ending at `t`; `exemplar` is the cell's largest profile when the answer named one (the exemplar whose
 * value falls in the bucket). `top`: the upper edge of the last bucket (buckets are evenly spaced).
 */
export function heatmapCells({ yMin, slots }) {
  const width = yMin.length > 1 ? yMin[1] - yMin[0] : 1;
  const bucketOf = (v) => {
    let b = 0;
    while (b + 1 < yMin.length && yMin[b + 1] <= v) b++;
    return b;
  };
  const cells = [];
  for (const slot of slots) {
    slot.counts.forEach((count, bucket) => {
      if (!count) return;
      const exemplar = slot.exemplars.find((e) => bucketOf(e.value) === bucket) || null;
      cells.push({ t: slot.t, bucket, count, exemplar });
    });
  }
  return { cells, maxCount: Math.max(0, ...cells.map((c) => c.count)), top: yMin.length ? yMin[yMin.length - 1] + width : 0 };
}
