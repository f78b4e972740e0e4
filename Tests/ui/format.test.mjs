import test from "node:test";
import assert from "node:assert/strict";
import {
  valueFormatter, duration, bytes, count, percent, change, dateTime, timeOfDay, shortDate,
} from "../../Sources/QueryAPI/UI/format.js";

test("duration picks the unit that keeps the number short", () => {
  assert.equal(duration(0), "0 s");
  assert.equal(duration(4.2e-7), "420 ns");
  assert.equal(duration(1.5e-5), "15 µs");
  assert.equal(duration(0.0123), "12.3 ms");
  assert.equal(duration(1.234), "1.23 s");
  assert.equal(duration(119), "119 s");
  assert.equal(duration(150), "2.5 min");
  assert.equal(duration(3 * 3600), "3 h");
  assert.equal(duration(3 * 86400), "3 d");
  assert.equal(duration(-0.25), "-250 ms");
});

test("bytes uses binary units, whole bytes below a KiB", () => {
  assert.equal(bytes(512), "512 B");
  assert.equal(bytes(1536), "1.5 KiB");
  assert.equal(bytes(10 * 1024 ** 2), "10 MiB");
  assert.equal(bytes(3.25 * 1024 ** 3), "3.25 GiB");
  assert.equal(bytes(-2048), "-2 KiB");
  assert.equal(bytes(5 * 1024 ** 6), "5,120 PiB");
});

test("count abbreviates thousands, millions and billions", () => {
  assert.equal(count(0), "0");
  assert.equal(count(999), "999");
  assert.equal(count(1234), "1.23k");
  assert.equal(count(56_700_000), "56.7M");
  assert.equal(count(2e9), "2G");
  assert.equal(count(-1500), "-1.5k");
});

test("valueFormatter follows the profile type's sample unit", () => {
  assert.equal(valueFormatter("nanoseconds")(2.5e9), "2.5 s");
  assert.equal(valueFormatter("NANOSECONDS")(2.5e6), "2.5 ms");
  assert.equal(valueFormatter("microseconds")(1500), "1.5 ms");
  assert.equal(valueFormatter("milliseconds")(90_000), "90 s");
  assert.equal(valueFormatter("seconds")(7200), "2 h");
  assert.equal(valueFormatter("bytes")(2048), "2 KiB");
  assert.equal(valueFormatter("objects")(4200), "4.2k");
  assert.equal(valueFormatter("")(12), "12");
  assert.equal(valueFormatter(undefined)(12), "12");
  assert.equal(valueFormatter("goroutines")(1200), "1.2k goroutines");
});

test("percent shows two decimals below 10%, one above, and marks tiny shares", () => {
  assert.equal(percent(1, 3), "33.3%");
  assert.equal(percent(1, 40), "2.50%");
  assert.equal(percent(1, 1e6), "<0.01%");
  assert.equal(percent(0, 10), "0%");
  assert.equal(percent(5, 0), "0%", "no total: no share rather than Infinity");
});

test("change is signed and relative, with new and gone for one-sided values", () => {
  assert.equal(change(0.2, 0.25), "+25%");
  assert.equal(change(0.2, 0.19), "-5.0%");
  assert.equal(change(0.1, 0.1), "0.0%");
  assert.equal(change(0, 0.3), "new");
  assert.equal(change(0.3, 0), "gone");
  assert.equal(change(0, 0), "");
});

test("dates and times are local and zero-padded", () => {
  const t = new Date(2026, 10, 5, 4, 3, 9).getTime(); // 2026-11-05 04:03:09 local
  assert.equal(dateTime(t), "2026-11-05 04:03");
  assert.equal(dateTime(t, true), "2026-11-05 04:03:09");
  assert.equal(timeOfDay(t), "04:03");
  assert.equal(timeOfDay(t, true), "04:03:09");
  assert.equal(shortDate(t), "11-05");
});
