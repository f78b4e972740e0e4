import test from "node:test";
import assert from "node:assert/strict";
import {
  MAX_GAP_STEPS, timelineSegments, timelinePaths, tickStep, tickTimes, tickLabel, heatmapCells,
} from "../../Sources/QueryAPI/UI/timeline-data.js";

const START = 1_764_090_000_000;
const END = START + 3600e3;
const STEP = 15e3; // seriesStepSeconds for an hour
const at = (seconds, v = 1) => ({ t: START + seconds * 1000, v });

// The issue: a service with a single profile got an empty timeline (a zero-width area).
test("a single point becomes a run over its step, which ends at the point", () => {
  assert.deepEqual(timelineSegments([at(600, 5)], STEP, START, END), [[at(585, 5), at(600, 5)]]);
});

test("a lone point's step is kept within the range", () => {
  // The first point, at the range's start, holds only that instant: drawn over the first step.
  assert.deepEqual(timelineSegments([at(0, 2)], STEP, START, END), [[at(0, 2), at(15, 2)]]);
  // A range that is not a whole number of steps: the last step ends after the range.
  const end = START + 3595e3;
  assert.deepEqual(timelineSegments([at(3600, 2)], STEP, START, end), [[at(3585, 2), at(3595, 2)]]);
  assert.deepEqual(timelineSegments([at(3570, 1), at(3585, 1), at(3600, 2)], STEP, START, end),
    [[at(3570, 1), at(3585, 1), at(3595, 2)]]);
});

// The issue: profiles ten minutes apart were drawn as one area across the gaps.
test("points ten minutes apart are separate runs", () => {
  const points = [at(600), at(1200), at(1800)];
  assert.deepEqual(timelineSegments(points, STEP, START, END), [[at(585), at(600)], [at(1185), at(1200)], [at(1785), at(1800)]]);
});

test("runs break only where the gap exceeds MAX_GAP_STEPS steps", () => {
  assert.equal(MAX_GAP_STEPS, 2);
  const points = [at(15), at(30), at(60), at(105), at(120)]; // gaps of 1, 2, 3 and 1 steps
  assert.deepEqual(timelineSegments(points, STEP, START, END), [[at(15), at(30), at(60)], [at(105), at(120)]]);
});

test("points outside the range are left out, and no points give no runs", () => {
  const points = [{ t: START - 60e3, v: 9 }, at(30), at(45), { t: END + 60e3, v: 9 }];
  assert.deepEqual(timelineSegments(points, STEP, START, END), [[at(30), at(45)]]);
  assert.deepEqual(timelineSegments([], STEP, START, END), []);
});

test("timelinePaths draws each run as its own closed area and line", () => {
  const segments = [[{ t: 0, v: 2 }, { t: 10, v: 4 }], [{ t: 30, v: 4 }, { t: 40, v: 4 }]];
  const { area, line } = timelinePaths(segments, (t) => t * 2, (v) => 100 - v * 10, 100);
  assert.equal(line, "M0.0,80.0L20.0,60.0M60.0,60.0L80.0,60.0");
  assert.equal(area, "M0.0,80.0L20.0,60.0L20.0,100L0.0,100ZM60.0,60.0L80.0,60.0L80.0,100L60.0,100Z");
});

test("a single profile's area has a width", () => {
  const { area } = timelinePaths(timelineSegments([at(600, 5)], STEP, START, END), (t) => (t - START) / 1000, () => 10, 100);
  assert.equal(area, "M585.0,10.0L600.0,10.0L600.0,100L585.0,100Z");
});

test("tickStep picks the round interval giving about one label per 110 px", () => {
  assert.equal(tickStep(3600e3, 1100), 600e3);
  assert.equal(tickStep(3600e3, 500), 900e3);
  assert.equal(tickStep(300e3, 1200), 30e3);
  assert.equal(tickStep(7 * 86400e3, 1000), 86400e3);
  assert.equal(tickStep(365 * 86400e3, 1000), 7 * 86400e3, "never coarser than a week");
});

test("tickTimes are multiples of the step in local time, within the range", () => {
  const hour = 3600e3;
  assert.deepEqual(tickTimes(10 * hour + 1, 13 * hour, hour, 0), [11 * hour, 12 * hour, 13 * hour]);
  // UTC+05:30 (getTimezoneOffset is -330 min): local hours fall on :30 UTC.
  const offset = -330 * 60e3;
  assert.deepEqual(tickTimes(10 * hour, 12 * hour, hour, offset), [10.5 * hour, 11.5 * hour]);
  assert.deepEqual(tickTimes(0, 500, 10e3, 0), [], "no ticks before a range is known");
});

test("tickLabel adds seconds for short steps and the date for long spans", () => {
  const t = new Date(2026, 10, 25, 14, 30, 10).getTime();
  assert.equal(tickLabel(t, 10e3, 300e3), "14:30:10");
  assert.equal(tickLabel(t, 600e3, 3600e3), "14:30");
  assert.equal(tickLabel(t, 6 * 3600e3, 2 * 86400e3), "11-25 14:30");
  assert.equal(tickLabel(t, 86400e3, 7 * 86400e3), "11-25");
});

test("heatmapCells lists the non-empty cells, each with the exemplar whose value falls in its bucket", () => {
  const big = { t: 990, value: 350, profileId: "p-big" }, small = { t: 980, value: 120, profileId: "p-small" };
  const { cells, maxCount, top } = heatmapCells({
    yMin: [100, 200, 300],
    slots: [{ t: 1000, counts: [2, 0, 5], exemplars: [small, big] }, { t: 2000, counts: [0, 1, 0], exemplars: [] }],
  });
  assert.deepEqual(cells, [
    { t: 1000, bucket: 0, count: 2, exemplar: small },
    { t: 1000, bucket: 2, count: 5, exemplar: big },
    { t: 2000, bucket: 1, count: 1, exemplar: null },
  ]);
  assert.equal(maxCount, 5);
  assert.equal(top, 400);
  assert.deepEqual(heatmapCells({ yMin: [], slots: [] }), { cells: [], maxCount: 0, top: 0 });
});
