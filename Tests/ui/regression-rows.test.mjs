import test from "node:test";
import assert from "node:assert/strict";
import {
  REGRESSION_SECTIONS, regressionRows, shareText, pointsText, qText, regressionSummary, noChangeMessage,
} from "../../Sources/QueryAPI/UI/regression-rows.js";

const change = (name, before, after, q, paths = []) => ({
  function: name, totalShare: { before, after }, selfShare: { before: 0, after: 0 },
  totalPerProfile: { before: 1, after: 2 }, totalPerSecond: { before: 1, after: 2 },
  p: q / 10, q, superiority: 0.9, significant: true, paths,
});

const HASH_PATHS = [{ frames: ["runtime.goexit", "main.cpuWorker", "main.hashLoop"], share: { before: 0.2, after: 0.45 } }];

const REPORT = {
  unit: "nanoseconds",
  baseline: { query: "cpu{}", fromMillis: 1, untilMillis: 2, profiles: 40, total: 123 },
  comparison: { query: "cpu{}", fromMillis: 3, untilMillis: 4, profiles: 38, total: 456 },
  method: {
    test: "Mann–Whitney U", correction: "Benjamini–Hochberg", alpha: 0.05, minShareChange: 0.001,
    functionsSeen: 130, functionsTested: 120,
  },
  // The server's ranking, which the rows keep even where the change is smaller.
  regressions: [change("main.hashLoop", 0.2, 0.45, 1e-8, HASH_PATHS), change("main.cpuWorker", 0.5, 0.8, 3.21e-4)],
  improvements: [change("main.parse", 0.5, 0.35, 0.0123)],
  insignificant: [change("main.idle", 0.1, 0.104, 0.62)],
  newFunctions: [{ function: "main.encode", totalShare: 0.02, selfShare: 0.02 }, { function: "main.big", totalShare: 0.1, selfShare: 0 }],
  vanishedFunctions: [{ function: "main.compress", totalShare: 0.2, selfShare: 0.2 }],
};

test("regressionRows lists regressions, new, improvements, vanished, in that order", () => {
  const rows = regressionRows(REPORT);
  assert.deepEqual(rows.map((r) => [r.kind, r.function]), [
    ["regression", "main.hashLoop"],
    ["regression", "main.cpuWorker"],
    ["new", "main.big"], // new and vanished functions go largest first
    ["new", "main.encode"],
    ["improvement", "main.parse"],
    ["vanished", "main.compress"],
  ]);
  assert.deepEqual(REGRESSION_SECTIONS.map((s) => s.kind), ["regression", "new", "improvement", "vanished"]);
  assert.ok(!rows.some((r) => r.function === "main.idle"), "noise is not listed");
});

test("regressionRows shows total shares before and after, the change in points and q", () => {
  const [hash, cpu, big, , parse, compress] = regressionRows(REPORT);
  assert.deepEqual([hash.beforeText, hash.afterText, hash.changeText, hash.qText], ["20.0%", "45.0%", "+25.0 pp", "1.0e-8"]);
  assert.ok(Math.abs(hash.change - 0.25) < 1e-12);
  assert.deepEqual(hash.paths, HASH_PATHS, "the paths go along, to focus the flame graph");
  assert.deepEqual([cpu.changeText, cpu.qText], ["+30.0 pp", "3.2e-4"]);
  assert.deepEqual([big.beforeText, big.afterText, big.changeText, big.qText], ["0%", "10.0%", "+10.0 pp", ""]);
  assert.deepEqual([parse.beforeText, parse.afterText, parse.changeText, parse.qText], ["50.0%", "35.0%", "-15.0 pp", "0.012"]);
  assert.deepEqual([compress.before, compress.after, compress.changeText, compress.paths], [0.2, 0, "-20.0 pp", []]);
});

test("regressionRows reads an empty or partial report as no rows", () => {
  assert.deepEqual(regressionRows({}), []);
  assert.deepEqual(regressionRows(null), []);
  const [row] = regressionRows({ regressions: [{ function: "f" }] });
  assert.deepEqual([row.before, row.after, row.changeText, row.qText, row.paths], [0, 0, "0 pp", "", []]);
});

test("shareText, pointsText and qText", () => {
  assert.equal(shareText(0.25), "25.0%");
  assert.equal(shareText(0.0525), "5.25%");
  assert.equal(shareText(0), "0%");
  assert.equal(pointsText(0.0035), "+0.35 pp");
  assert.equal(pointsText(-0.123), "-12.3 pp");
  assert.equal(pointsText(1e-6), "0 pp");
  assert.equal(pointsText(0.2 - 0.3), "-10.0 pp", "rounding decides the digits");
  assert.equal(pointsText(0.09994), "+9.99 pp");
  assert.equal(qText(0.5), "0.5");
  assert.equal(qText(0.04567), "0.046");
  assert.equal(qText(0.001), "0.001");
  assert.equal(qText(3.21e-9), "3.2e-9");
  assert.equal(qText(0), "0");
  assert.equal(qText(undefined), "");
  assert.equal(qText(null), "");
});

test("regressionSummary: profiles on each side, the test and alpha", () => {
  assert.equal(regressionSummary(REPORT),
    "40 profiles in the baseline, 38 in the comparison · Mann–Whitney U, Benjamini–Hochberg, α = 0.05 · 120 functions tested");
  assert.equal(regressionSummary({ baseline: { profiles: 1 }, comparison: { profiles: 0 }, method: { alpha: 0.01, functionsTested: 1 } }),
    "1 profile in the baseline, 0 in the comparison · α = 0.01 · 1 function tested");
});

test("noChangeMessage names the largest change judged noise, when there is one", () => {
  assert.equal(noChangeMessage(REPORT), "No significant change. Largest change, judged noise: main.idle +0.40 pp, q = 0.62.");
  assert.equal(noChangeMessage({ insignificant: [] }), "No significant change.");
  assert.equal(noChangeMessage(undefined), "No significant change.");
});
