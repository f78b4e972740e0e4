import test from "node:test";
import assert from "node:assert/strict";
import { profileTypeLabel, defaultProfileType } from "../../Sources/QueryAPI/UI/profile-types.js";

const type = (id, name, sampleType, sampleUnit) => ({ id, name, sampleType, sampleUnit });
const ALLOC = type("memory:alloc_space:bytes:space:bytes", "memory", "alloc_space", "bytes");
const CPU = type("process_cpu:cpu:nanoseconds:cpu:nanoseconds", "process_cpu", "cpu", "nanoseconds");
const SAMPLES = type("process_cpu:samples:count:cpu:nanoseconds", "process_cpu", "samples", "count");
const WALL = type("wall:wall:nanoseconds:wall:nanoseconds", "wall", "wall", "nanoseconds");
const GOROUTINES = type("goroutines:goroutine:count:goroutine:count", "goroutines", "goroutine", "");

test("profileTypeLabel shows name, sample type and unit when there is one", () => {
  assert.equal(profileTypeLabel(CPU), "process_cpu · cpu (nanoseconds)");
  assert.equal(profileTypeLabel(GOROUTINES), "goroutines · goroutine");
});

test("defaultProfileType prefers process CPU time, then anything CPU, then the first", () => {
  assert.equal(defaultProfileType([ALLOC, SAMPLES, CPU]), CPU.id);
  assert.equal(defaultProfileType([ALLOC, SAMPLES]), SAMPLES.id);
  assert.equal(defaultProfileType([WALL, ALLOC]), WALL.id);
  assert.equal(defaultProfileType([]), "");
});
