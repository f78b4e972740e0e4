import test from "node:test";
import assert from "node:assert/strict";
import { isSpanID, spanListProblem, spanChipParts } from "../../Sources/QueryAPI/UI/span-selector.js";

test("a span ID is 1 to 16 hex digits, either case", () => {
  for (const id of ["9a517183f26a089d", "9A517183F26A089D", "ff", "0", "ffffffffffffffff"]) assert.equal(isSpanID(id), true, id);
  for (const id of ["", "9a517183f26a089d0", "0x9a51", "9a51-7183", "ghij", " ff", "+ff"]) assert.equal(isSpanID(id), false, id);
});

test("spanListProblem names every entry that is not a span ID, and nothing when all are", () => {
  assert.equal(spanListProblem([]), "");
  assert.equal(spanListProblem(["9a517183f26a089d", "ff"]), "");
  assert.equal(spanListProblem(["9a517183f26a089d", "trace-1"]),
    'spanSelector "trace-1" is not a span ID (1 to 16 hex digits). Correct the URL, or remove the span filter with its ×.');
  assert.match(spanListProblem(["x", "9a517183f26a089d00"]), /^spanSelector "x", "9a517183f26a089d00" are not span IDs /);
  const long = "z".repeat(100);
  assert.match(spanListProblem([long]), new RegExp(`^spanSelector "${"z".repeat(40)}…" is not`));
});

test("spanChipParts shows the first span and how many more", () => {
  assert.deepEqual(spanChipParts([]), ["", "", ""]);
  assert.deepEqual(spanChipParts(["9a517183f26a089d"]), ["Span: ", "9a517183f26a089d", ""]);
  assert.equal(spanChipParts(["9a517183f26a089d", "5a4fe264a9c987fe"]).join(""), "Spans: 9a517183f26a089d, +1 more");
  assert.deepEqual(spanChipParts(["a", "b", "c"]), ["Spans: ", "a", ", +2 more"]);
});
