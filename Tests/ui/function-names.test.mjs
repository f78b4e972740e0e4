import test from "node:test";
import assert from "node:assert/strict";
import {
  splitFunctionName, packageOf, elideEnd, elideFunctionName, searchMatcher,
} from "../../Sources/QueryAPI/UI/function-names.js";

const GO = "github.com/jetsetilly/gopher2600/hardware/cpu.(*CPU).ExecuteInstruction";

test("splitFunctionName separates a Go package path from the function", () => {
  assert.deepEqual(splitFunctionName(GO), { path: "github.com/jetsetilly/gopher2600/hardware/", func: "cpu.(*CPU).ExecuteInstruction" });
  assert.deepEqual(splitFunctionName("encoding/json.(*encodeState).marshal"), { path: "encoding/", func: "json.(*encodeState).marshal" });
  assert.deepEqual(splitFunctionName("runtime.mallocgc"), { path: "", func: "runtime.mallocgc" });
});

test("splitFunctionName ignores slashes inside receivers, generics and file names", () => {
  assert.deepEqual(splitFunctionName("example.com/m/pkg.Map[go.shape.*example.com/x/y.T].Get"),
    { path: "example.com/m/", func: "pkg.Map[go.shape.*example.com/x/y.T].Get" });
  assert.deepEqual(splitFunctionName("handle (/srv/app/views.py:42)"), { path: "", func: "handle (/srv/app/views.py:42)" });
  assert.deepEqual(splitFunctionName("odd/"), { path: "", func: "odd/" });
});

test("packageOf is the full import path up to the first dot after it", () => {
  assert.equal(packageOf(GO), "github.com/jetsetilly/gopher2600/hardware/cpu");
  assert.equal(packageOf("runtime.mallocgc"), "runtime");
  assert.equal(packageOf("main"), "main");
});

test("elideEnd cuts long text with a trailing ellipsis", () => {
  assert.equal(elideEnd("total 1.5 s", 20), "total 1.5 s");
  assert.equal(elideEnd("total (baseline 1 s, comparison 2 s)", 10), "total (ba…");
  assert.equal(elideEnd("abcdef", 1), "a…", "keeps at least one character");
});

// The issue: every row read `github.com/jetsetilly/gophe…`; the function must stay visible.
test("elideFunctionName drops leading package-path segments before touching the function", () => {
  assert.equal(elideFunctionName(GO, 200), GO);
  assert.equal(elideFunctionName(GO, 60), "…/gopher2600/hardware/cpu.(*CPU).ExecuteInstruction");
  assert.equal(elideFunctionName(GO, 40), "…/hardware/cpu.(*CPU).ExecuteInstruction");
  assert.equal(elideFunctionName(GO, 35), "…/cpu.(*CPU).ExecuteInstruction");
  assert.equal(elideFunctionName(GO, 29), "cpu.(*CPU).ExecuteInstruction");
});

test("elideFunctionName cuts the function's end only when it alone does not fit", () => {
  assert.equal(elideFunctionName(GO, 12), "cpu.(*CPU).…");
  assert.equal(elideFunctionName("runtime.gcBgMarkWorker", 10), "runtime.g…");
  for (const width of [3, 8, 20, 31, 45, 70]) {
    assert.ok(elideFunctionName(GO, width).length <= width, `fits in ${width}`);
  }
});

// The issue: `?search=…` failed with "Cannot read properties of undefined (reading 'toLowerCase')"
// because the table's "N more functions" row has no function name.
test("searchMatcher never matches a row without a function name", () => {
  const matches = searchMatcher("gophe");
  assert.equal(matches(undefined), false);
  assert.equal(matches(null), false);
  assert.equal(matches(GO), true);
});

test("searchMatcher is a case-insensitive substring test and matches nothing when empty", () => {
  assert.equal(searchMatcher("EXECUTE")(GO), true);
  assert.equal(searchMatcher("(*cpu)")(GO), true);
  assert.equal(searchMatcher("mallocgc")(GO), false);
  assert.equal(searchMatcher("")(GO), false);
  assert.equal(searchMatcher(undefined)(GO), false);
});
