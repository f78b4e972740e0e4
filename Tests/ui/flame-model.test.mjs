import test from "node:test";
import assert from "node:assert/strict";
import {
  decodeSingle, decodeDiff, functionTable, shareChange, diffColour, searchTotal, searchSummary, depthOf,
  zoomWindow, rootLabel, tooltipRows, describeFlameGraph, nodeAtPath, nodeForFunction,
} from "../../Sources/QueryAPI/UI/flame-model.js";
import { flamegraphFromJSON } from "../../Sources/QueryAPI/UI/api.js";
import { encodeDiffFlamegraph } from "./fake-query-server.mjs";

const plain = (v) => String(v);

// total 10 → main (self 1) → a (self 3) → a (self 2, recursion); main → b (self 4).
// 4 numbers per node: x offset from the previous node's end on the level, total, self, name index.
const SINGLE = {
  names: ["total", "main", "a", "b"],
  levels: [[0, 10, 0, 0], [0, 10, 1, 1], [1, 5, 3, 2, 0, 4, 4, 3], [4, 2, 2, 2]],
  total: 10,
};

// Baseline: main → a 6, main → b 4. Comparison: main → a 6, main → b 14.
// 7 numbers per node: baseline offset/total/self, comparison offset/total/self, name index.
const DIFF = {
  names: ["total", "main", "a", "b"],
  levels: [[0, 10, 0, 0, 20, 0, 0], [0, 10, 0, 0, 20, 0, 1], [0, 6, 6, 0, 6, 6, 2, 0, 4, 4, 0, 14, 14, 3]],
  leftTicks: 10,
  rightTicks: 20,
};

test("decodeSingle turns offsets into positions and links each node to its parent", () => {
  const model = decodeSingle(SINGLE);
  assert.equal(model.total, 10);
  assert.equal(model.width, 10);
  assert.equal(model.diff, false);
  const [[root], [main], [a, b], [inner]] = model.levels;
  assert.deepEqual([a.name, a.x, a.w, a.self], ["a", 1, 5, 3]);
  assert.deepEqual([b.name, b.x, b.w, b.self], ["b", 6, 4, 4]);
  assert.deepEqual([inner.name, inner.x, inner.w], ["a", 4, 2]);
  assert.equal(root.parent, null);
  assert.equal(main.parent, root);
  assert.equal(a.parent, main);
  assert.equal(b.parent, main);
  assert.equal(inner.parent, a);
  assert.equal(depthOf(inner), 3);
});

test("decodeSingle sums the first level when the total is missing, and names unknown indexes ?", () => {
  const model = decodeSingle({ names: ["total"], levels: [[0, 7, 0, 0], [0, 7, 7, 5]], total: 0 });
  assert.equal(model.total, 7);
  assert.equal(model.levels[1][0].name, "?");
});

test("functionTable sums self everywhere and total once per stack for recursive functions", () => {
  const rows = functionTable(decodeSingle(SINGLE));
  const byName = Object.fromEntries(rows.map((r) => [r.name, [r.self, r.total]]));
  assert.deepEqual(byName, { main: [1, 10], a: [5, 5], b: [4, 4] });
});

test("decodeDiff scales each side to its own total", () => {
  const model = decodeDiff(DIFF);
  assert.equal(model.diff, true);
  assert.equal(model.width, 2);
  assert.equal(model.total, 30);
  const [a, b] = model.levels[2];
  assert.ok(Math.abs(a.w - (0.6 + 0.3)) < 1e-12);
  assert.ok(Math.abs(b.x - 0.9) < 1e-12);
  assert.ok(Math.abs(b.w - (0.4 + 0.7)) < 1e-12);
  assert.deepEqual([b.leftTotal, b.rightTotal, b.leftSelf, b.rightSelf], [4, 14, 4, 14]);
  assert.equal(b.parent, model.levels[1][0]);
  const rows = Object.fromEntries(functionTable(model).map((r) => [r.name, [r.leftSelf, r.rightSelf, r.leftTotal, r.rightTotal]]));
  assert.deepEqual(rows, { main: [0, 0, 10, 20], a: [6, 6, 6, 6], b: [4, 14, 4, 14] });
});

test("shareChange is the relative change of a node's share of its side", () => {
  const model = decodeDiff(DIFF);
  const [a, b] = model.levels[2];
  assert.ok(Math.abs(shareChange(a, model) - -0.5) < 1e-12);
  assert.ok(Math.abs(shareChange(b, model) - 0.75) < 1e-12);
  assert.equal(shareChange({ leftTotal: 0, rightTotal: 3 }, model), Infinity);
  assert.equal(shareChange({ leftTotal: 0, rightTotal: 0 }, model), 0);
});

test("diffColour: grey within ±1%, red as it grew, green as it shrank, full at ±100%", () => {
  assert.equal(diffColour(0), "rgb(200,200,200)");
  assert.equal(diffColour(0.009), "rgb(200,200,200)");
  assert.equal(diffColour(1), "rgb(222,46,46)");
  assert.equal(diffColour(Infinity), "rgb(222,46,46)");
  assert.equal(diffColour(-1), "rgb(46,168,72)");
  assert.equal(diffColour(0.5), "rgb(214,104,104)");
});

test("searchTotal counts every match but covers nested matches once", () => {
  const model = decodeSingle(SINGLE);
  assert.deepEqual(searchTotal(model, (name) => name === "a"), { count: 2, share: 0.5 });
  assert.deepEqual(searchTotal(model, (name) => name === "b"), { count: 1, share: 0.4 });
  assert.deepEqual(searchTotal(model, () => false), { count: 0, share: 0 });
});

test("searchSummary says how many frames match and their share", () => {
  assert.equal(searchSummary({ count: 2, share: 0.5 }), "2 matches · 50.0% of the graph");
  assert.equal(searchSummary({ count: 1, share: 0.0123 }), "1 match · 1.23% of the graph");
});

test("zoomWindow is the whole graph, or the zoomed node's span and level", () => {
  const model = decodeSingle(SINGLE);
  assert.deepEqual(zoomWindow(model, null), { x0: 0, x1: 10, depth: 0 });
  assert.deepEqual(zoomWindow(model, model.levels[3][0]), { x0: 4, x1: 6, depth: 3 });
});

test("rootLabel shows the total, or both sides' totals", () => {
  assert.equal(rootLabel(decodeSingle(SINGLE), plain), "total 10");
  assert.equal(rootLabel(decodeDiff(DIFF), plain), "total (baseline 10, comparison 20)");
});

test("tooltipRows: total and self with shares; for a diff both sides and the change", () => {
  const single = decodeSingle(SINGLE);
  assert.deepEqual(tooltipRows(single.levels[2][0], single, plain), {
    rows: [["Total", "5", "50.0%"], ["Self", "3", "30.0%"]],
    change: null,
  });
  const diff = decodeDiff(DIFF);
  assert.deepEqual(tooltipRows(diff.levels[2][1], diff, plain), {
    rows: [
      ["", "Baseline", "Comparison"],
      ["Total", "4 (40.0%)", "14 (70.0%)"],
      ["Self", "4 (40.0%)", "14 (70.0%)"],
      ["Change", "share of total +75%", ""],
    ],
    change: "grew",
  });
  assert.equal(tooltipRows(diff.levels[2][0], diff, plain).change, "shrank");
});

test("describeFlameGraph names the largest functions (browser tests read this text)", () => {
  const single = decodeSingle(SINGLE);
  assert.equal(describeFlameGraph(single, null, plain),
    "Flame graph: 10 in 3 functions. Most self time: a (50.0%), b (40.0%), main (10.0%).");
  assert.equal(describeFlameGraph(single, single.levels[2][1], plain).startsWith("Flame graph zoomed to b: "), true);
  assert.equal(describeFlameGraph(decodeDiff(DIFF), null, plain),
    "Diff flame graph: baseline 10, comparison 20, 3 functions. Grew most: b (+75%). Shrank most: a (-50%).");
  assert.equal(describeFlameGraph({ levels: [] }, null, plain), "Flame graph: no samples.");
});

// hashLoop runs under two workers; its share grew under cpuWorker only (20% → 36%; ioWorker's 30% →
// 24%). The recursive walk's inner frame changed more (10% → 40%) than the outer one (50% → 40%), but
// the outer frame is where the function's total is.
const WORKERS_BEFORE = [
  { frames: ["runtime.goexit", "main.cpuWorker", "main.hashLoop"], value: 20 },
  { frames: ["runtime.goexit", "main.ioWorker", "main.hashLoop"], value: 30 },
  { frames: ["runtime.goexit", "main.ioWorker", "main.walk"], value: 40 },
  { frames: ["runtime.goexit", "main.ioWorker", "main.walk", "main.walk"], value: 10 },
];
const WORKERS_AFTER = [
  { frames: ["runtime.goexit", "main.cpuWorker", "main.hashLoop"], value: 45 },
  { frames: ["runtime.goexit", "main.ioWorker", "main.hashLoop"], value: 30 },
  { frames: ["runtime.goexit", "main.ioWorker", "main.walk", "main.walk"], value: 50 },
];
const workersDiff = () => {
  const json = encodeDiffFlamegraph(WORKERS_BEFORE, WORKERS_AFTER);
  return decodeDiff({ ...flamegraphFromJSON(json), leftTicks: Number(json.leftTicks), rightTicks: Number(json.rightTicks) });
};
const framesOf = (node) => {
  const frames = [];
  for (let n = node; n && n.parent; n = n.parent) frames.unshift(n.name);
  return frames;
};

test("nodeAtPath follows the frames down from the root, or finds nothing", () => {
  const model = workersDiff();
  const node = nodeAtPath(model, ["runtime.goexit", "main.ioWorker", "main.hashLoop"]);
  assert.deepEqual(framesOf(node), ["runtime.goexit", "main.ioWorker", "main.hashLoop"]);
  assert.equal(node.leftTotal, 30);
  assert.equal(nodeAtPath(model, ["runtime.goexit", "main.cpuWorker", "main.walk"]), null);
  assert.equal(nodeAtPath(model, ["main.hashLoop"]), null, "paths start at the root's child");
  assert.equal(nodeAtPath(model, []), model.levels[0][0]);
});

test("nodeForFunction takes the first of the report's paths that the graph holds", () => {
  const model = workersDiff();
  const paths = [
    { frames: ["runtime.goexit", "main.gone", "main.hashLoop"] }, // cut from the graph (maxNodes): skipped
    { frames: ["runtime.goexit", "main.ioWorker", "main.hashLoop"] },
  ];
  assert.deepEqual(framesOf(nodeForFunction(model, "main.hashLoop", paths)), ["runtime.goexit", "main.ioWorker", "main.hashLoop"]);
  // A path to another function does not count as found.
  assert.deepEqual(framesOf(nodeForFunction(model, "main.hashLoop", [{ frames: ["runtime.goexit", "main.ioWorker"] }])),
    ["runtime.goexit", "main.cpuWorker", "main.hashLoop"]);
});

test("nodeForFunction without paths: the outermost frame whose share changed most", () => {
  const model = workersDiff();
  // cpuWorker's hashLoop changed most; ioWorker's is about as wide.
  assert.deepEqual(framesOf(nodeForFunction(model, "main.hashLoop")), ["runtime.goexit", "main.cpuWorker", "main.hashLoop"]);
  assert.deepEqual(framesOf(nodeForFunction(model, "main.walk", [])), ["runtime.goexit", "main.ioWorker", "main.walk"]);
  assert.equal(nodeForFunction(model, "main.absent", []), null);
});

test("nodeForFunction in a single graph takes the widest outermost frame", () => {
  const model = decodeSingle(SINGLE);
  const a = nodeForFunction(model, "a");
  assert.deepEqual([a.name, a.w, a.parent.name], ["a", 5, "main"]);
});
