// Numbers, units and times as people read them.

/** A formatter for sample values of a profile type's unit (Pyroscope's `sample_unit`). */
export function valueFormatter(unit) {
  switch ((unit || "").toLowerCase()) {
    case "nanoseconds": return (v) => duration(v / 1e9);
    case "microseconds": return (v) => duration(v / 1e6);
    case "milliseconds": return (v) => duration(v / 1e3);
    case "seconds": return (v) => duration(v);
    case "bytes": return bytes;
    case "count": case "samples": case "objects": case "": return count;
    default: return (v) => `${count(v)} ${unit}`;
  }
}

export function duration(seconds) {
  const s = Math.abs(seconds);
  if (s === 0) return "0 s";
  if (s < 1e-6) return `${trim(seconds * 1e9)} ns`;
  if (s < 1e-3) return `${trim(seconds * 1e6)} µs`;
  if (s < 1) return `${trim(seconds * 1e3)} ms`;
  if (s < 120) return `${trim(seconds)} s`;
  if (s < 7200) return `${trim(seconds / 60)} min`;
  if (s < 172800) return `${trim(seconds / 3600)} h`;
  return `${trim(seconds / 86400)} d`;
}

export function bytes(v) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let x = Math.abs(v), i = 0;
  while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
  return `${v < 0 ? "-" : ""}${i === 0 ? x : trim(x)} ${units[i]}`;
}

export function count(v) {
  const x = Math.abs(v);
  const sign = v < 0 ? "-" : "";
  if (x < 1000) return sign + trim(x);
  if (x < 1e6) return `${sign}${trim(x / 1e3)}k`;
  if (x < 1e9) return `${sign}${trim(x / 1e6)}M`;
  return `${sign}${trim(x / 1e9)}G`;
}

function trim(x) {
  const a = Math.abs(x);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : 2;
  return Number(x.toFixed(digits)).toLocaleString("en-US", { maximumFractionDigits: digits });
}

export function percent(part, whole) {
  if (!whole) return "0%";
  const p = (part / whole) * 100;
  if (p === 0) return "0%";
  if (Math.abs(p) < 0.01) return "<0.01%";
  return `${p.toFixed(p >= 10 ? 1 : 2)}%`;
}

/** A signed relative change, `+12.5%`, or `new` / `gone` when one side is zero. */
export function change(before, after) {
  if (before === 0 && after === 0) return "";
  if (before === 0) return "new";
  if (after === 0) return "gone";
  const p = ((after - before) / before) * 100;
  return `${p > 0 ? "+" : ""}${p.toFixed(Math.abs(p) >= 10 ? 0 : 1)}%`;
}

const pad = (n) => String(n).padStart(2, "0");

/** `2026-11-25 14:03` in local time; seconds when the span asks for them. */
export function dateTime(ms, withSeconds = false) {
  const d = new Date(ms);
  const base = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return withSeconds ? `${base}:${pad(d.getSeconds())}` : base;
}

export function timeOfDay(ms, withSeconds = false) {
  const d = new Date(ms);
  return withSeconds ? `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` : `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function shortDate(ms) {
  const d = new Date(ms);
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}
