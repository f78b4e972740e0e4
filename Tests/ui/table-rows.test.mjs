import test from "node:test";
import assert from "node:assert/strict";
import {
  MAX_TABLE_ROWS, tableColumns, sortParam, parseSortParam, nextSort, addShareChanges, sortRows, changeColour,
} from "../../Sources/QueryAPI/UI/table-rows.js";

test("the single and comparison tables have their own columns", () => {
  assert.deepEqual(tableColumns(false).map((c) => c.key), ["self", "total", "name"]);
  assert.deepEqual(tableColumns(true).map((c) => c.key), ["name", "leftSelf", "rightSelf", "delta"]);
  assert.equal(MAX_TABLE_ROWS, 400);
});

test("sortParam and parseSortParam: a leading minus means ascending", () => {
  assert.equal(sortParam({ key: "self", desc: true }), "self");
  assert.equal(sortParam({ key: "name", desc: false }), "-name");
  assert.deepEqual(parseSortParam("-name", false), { key: "name", desc: false });
  assert.deepEqual(parseSortParam("total", false), { key: "total", desc: true });
  assert.deepEqual(parseSortParam("-leftSelf", true), { key: "leftSelf", desc: false });
});

test("parseSortParam falls back to the view's default for columns it does not have", () => {
  assert.deepEqual(parseSortParam("delta", false), { key: "self", desc: true });
  assert.deepEqual(parseSortParam("total", true), { key: "delta", desc: true });
  assert.deepEqual(parseSortParam("", true), { key: "delta", desc: true });
  assert.deepEqual(parseSortParam(undefined, false), { key: "self", desc: true });
});

test("nextSort reverses the same column; a new one starts descending, names ascending", () => {
  assert.deepEqual(nextSort({ key: "self", desc: true }, "self"), { key: "self", desc: false });
  assert.deepEqual(nextSort({ key: "self", desc: true }, "total"), { key: "total", desc: true });
  assert.deepEqual(nextSort({ key: "self", desc: true }, "name"), { key: "name", desc: false });
});

test("addShareChanges: change of self share in points, and relative to the baseline share", () => {
  const rows = addShareChanges([
    { name: "a", leftSelf: 6, rightSelf: 6 },
    { name: "new", leftSelf: 0, rightSelf: 2 },
    { name: "idle", leftSelf: 0, rightSelf: 0 },
  ], { leftTicks: 10, rightTicks: 20 });
  const [a, added, idle] = rows;
  assert.ok(Math.abs(a.delta - -0.3) < 1e-12);
  assert.ok(Math.abs(a.relative - -0.5) < 1e-12);
  assert.ok(Math.abs(added.delta - 0.1) < 1e-12);
  assert.equal(added.relative, Infinity);
  assert.deepEqual([idle.delta, idle.relative], [0, 0]);
});

const SINGLE_ROWS = [
  { name: "b", self: 4, total: 4 },
  { name: "a", self: 5, total: 5 },
  { name: "main", self: 1, total: 10 },
  { name: "c", self: 3, total: 9 },
];
const names = (rows) => rows.map((r) => r.name);

test("sortRows orders by the chosen column in either direction", () => {
  assert.deepEqual(names(sortRows(SINGLE_ROWS, { key: "self", desc: true }, false)), ["a", "b", "c", "main"]);
  assert.deepEqual(names(sortRows(SINGLE_ROWS, { key: "total", desc: false }, false)), ["b", "a", "c", "main"]);
  assert.deepEqual(names(sortRows(SINGLE_ROWS, { key: "name", desc: false }, false)), ["a", "b", "c", "main"]);
  assert.deepEqual(names(SINGLE_ROWS), ["b", "a", "main", "c"], "the input is not reordered");
});

test("sortRows breaks ties by the larger self, then the name A to Z, in either direction", () => {
  const rows = [{ name: "x", self: 1, total: 7 }, { name: "y", self: 6, total: 7 }, { name: "w", self: 1, total: 7 }];
  assert.deepEqual(names(sortRows(rows, { key: "total", desc: false }, false)), ["y", "w", "x"]);
  assert.deepEqual(names(sortRows(rows, { key: "total", desc: true }, false)), ["y", "w", "x"]);
  const idle = [{ name: "runtime.main", self: 0, total: 9 }, { name: "main.main", self: 0, total: 8 }];
  assert.deepEqual(names(sortRows(idle, { key: "self", desc: true }, false)), ["main.main", "runtime.main"]);
});

test("sortRows drops comparison rows with nothing on either side", () => {
  const rows = addShareChanges([
    { name: "grew", self: 8, leftSelf: 2, rightSelf: 6, leftTotal: 2, rightTotal: 6 },
    { name: "empty", self: 0, leftSelf: 0, rightSelf: 0, leftTotal: 0, rightTotal: 0 },
    { name: "shrank", self: 6, leftSelf: 5, rightSelf: 1, leftTotal: 5, rightTotal: 1 },
    { name: "caller", self: 0, leftSelf: 0, rightSelf: 0, leftTotal: 7, rightTotal: 7 },
  ], { leftTicks: 10, rightTicks: 10 });
  assert.deepEqual(names(sortRows(rows, { key: "delta", desc: true }, true)), ["grew", "caller", "shrank"]);
});

test("changeColour: none when unchanged, capped at full red or green", () => {
  assert.equal(changeColour(0), "");
  assert.equal(changeColour(Infinity), "rgb(222,46,46)");
  assert.equal(changeColour(-5), "rgb(46,168,72)");
  assert.equal(changeColour(0.5), "rgb(214,104,104)");
});
