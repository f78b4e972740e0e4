import test from "node:test";
import assert from "node:assert/strict";
import {
  parseTime, timeParam, displayTime, seriesStepSeconds, resolveRange, comparisonRanges,
} from "../../Sources/QueryAPI/UI/time-range.js";

const NOW = 1_764_093_600_000; // epoch ms
const H = 3600e3;

test("parseTime reads relative times against now", () => {
  assert.equal(parseTime("now", NOW), NOW);
  assert.equal(parseTime("now-1h", NOW), NOW - H);
  assert.equal(parseTime(" now - 30m ", NOW), NOW - 30 * 60e3);
  assert.equal(parseTime("now-1.5d", NOW), NOW - 36 * H);
  assert.equal(parseTime("now+2w", NOW), NOW + 14 * 86400e3);
  assert.equal(parseTime("now-10s", NOW), NOW - 10e3);
});

test("parseTime takes epoch seconds or milliseconds", () => {
  assert.equal(parseTime("1764093600", NOW), 1_764_093_600_000);
  assert.equal(parseTime("1764093600000", NOW), 1_764_093_600_000);
});

test("parseTime reads a local date with a space before the time", () => {
  assert.equal(parseTime("2026-11-25 14:00", NOW), new Date(2026, 10, 25, 14, 0).getTime());
  assert.equal(parseTime("2026-11-25T14:00:30", NOW), new Date(2026, 10, 25, 14, 0, 30).getTime());
});

test("parseTime answers null for text that is not a time", () => {
  assert.equal(parseTime("yesterday", NOW), null);
  assert.equal(parseTime("now-1y", NOW), null);
  assert.equal(parseTime("", NOW), null);
});

test("timeParam keeps relative times relative and turns the rest into epoch ms", () => {
  assert.equal(timeParam(" now - 2h ", NOW), "now-2h");
  assert.equal(timeParam("1764093600", NOW), "1764093600000");
  assert.equal(timeParam("2026-11-25 14:00", NOW), String(new Date(2026, 10, 25, 14, 0).getTime()));
  assert.equal(timeParam("soon", NOW), null);
});

test("displayTime shows epoch ms as a local date and relative times unchanged", () => {
  assert.equal(displayTime(String(new Date(2026, 10, 25, 14, 0, 5).getTime())), "2026-11-25 14:00:05");
  assert.equal(displayTime("now-1h"), "now-1h");
});

test("seriesStepSeconds gives about 240 points, at least 10 s apart", () => {
  assert.equal(seriesStepSeconds(NOW - H, NOW), 15);
  assert.equal(seriesStepSeconds(NOW - 7 * 86400e3, NOW), 2520);
  assert.equal(seriesStepSeconds(NOW - 5 * 60e3, NOW), 10);
});

test("resolveRange resolves both ends and refuses unreadable or reversed ranges", () => {
  assert.deepEqual(resolveRange("now-1h", "now", NOW), { start: NOW - H, end: NOW });
  assert.throws(() => resolveRange("later", "now", NOW), { message: 'cannot read the time range "later" to "now"' });
  assert.throws(() => resolveRange("now", "now-1h", NOW), { message: "the time range ends before it starts" });
});

test("comparisonRanges splits the range in halves unless a side chose its own", () => {
  const range = { start: NOW - 2 * H, end: NOW };
  assert.deepEqual(comparisonRanges(range, {}, NOW), {
    left: { start: NOW - 2 * H, end: NOW - H },
    right: { start: NOW - H, end: NOW },
  });
  const chosen = comparisonRanges(range, { leftFrom: "now-2h", leftUntil: "now-90m", rightFrom: String(NOW - 10 * 60e3), rightUntil: "now" }, NOW);
  assert.deepEqual(chosen, { left: { start: NOW - 2 * H, end: NOW - 1.5 * H }, right: { start: NOW - 10 * 60e3, end: NOW } });
  const reversed = comparisonRanges(range, { leftFrom: "now", leftUntil: "now-1h" }, NOW);
  assert.deepEqual(reversed.left, { start: NOW - 2 * H, end: NOW - H }, "a reversed side falls back to its half");
});
