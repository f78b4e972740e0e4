import test from "node:test";
import assert from "node:assert/strict";
import { flamegraphFromJSON, summedSeries } from "../../Sources/QueryAPI/UI/api.js";

test("flamegraphFromJSON turns proto3 JSON int64 strings into numbers", () => {
  const fg = flamegraphFromJSON({
    names: ["total", "main"],
    levels: [{ values: ["0", "10", "0", "0"] }, { values: ["0", "10", "10", "1"] }, {}],
    total: "10",
    maxSelf: "10",
  });
  assert.deepEqual(fg, { names: ["total", "main"], levels: [[0, 10, 0, 0], [0, 10, 10, 1], []], total: 10, maxSelf: 10 });
});

test("flamegraphFromJSON reads an absent flame graph as an empty one", () => {
  const empty = { names: [], levels: [], total: 0, maxSelf: 0 };
  assert.deepEqual(flamegraphFromJSON(undefined), empty);
  assert.deepEqual(flamegraphFromJSON(null), empty);
});

test("summedSeries adds the series point by point, in time order", () => {
  const points = summedSeries([
    { labels: [{ name: "pod", value: "a" }], points: [{ timestamp: "2000", value: 1.5 }, { timestamp: "1000", value: 2 }] },
    { labels: [{ name: "pod", value: "b" }], points: [{ timestamp: "2000", value: "3" }, { timestamp: "3000" }] },
    { labels: [] },
  ]);
  assert.deepEqual(points, [{ t: 1000, v: 2 }, { t: 2000, v: 4.5 }, { t: 3000, v: 0 }]);
  assert.deepEqual(summedSeries(undefined), []);
});
