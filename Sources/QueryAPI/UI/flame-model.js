// Flame graph data: decoding Pyroscope's level encoding into a tree, the per-function table, colours,
// search totals, zoom windows, the tooltip's rows and the text summary of a graph.

import { percent, change } from "./format.js";
import { packageOf } from "./function-names.js";

/**
 * Decodes a single flame graph. Each level holds 4 numbers per node: x offset (relative to the end of
 * the previous node on the level), total, self, name index. Returns {levels, total, width, diff:false}
 * where levels[d] is an array of nodes {x, w, total, self, name, parent}; x and w are in ticks.
 */
export function decodeSingle(fg) {
  const levels = [];
  for (const values of fg.levels) {
    const nodes = [];
    let end = 0;
    for (let i = 0; i + 3 < values.length; i += 4) {
      const x = end + values[i];
      const total = values[i + 1];
      nodes.push({ x, w: total, total, self: values[i + 2], name: fg.names[values[i + 3]] ?? "?", parent: null });
      end = x + total;
    }
    levels.push(nodes);
  }
  const total = fg.total || (levels[0] || []).reduce((s, n) => s + n.total, 0);
  link(levels, containsSingle);
  return { levels, total, width: total, diff: false };
}

/**
 * Decodes a diff flame graph: 7 numbers per node, left (baseline) offset/total/self, right (comparison)
 * offset/total/self, name index. Each side is scaled to its own total, so a node's width is the mean
 * of its two shares: a comparison with more samples does not drown the baseline.
 */
export function decodeDiff(fg) {
  const leftTicks = fg.leftTicks || 0;
  const rightTicks = fg.rightTicks || 0;
  const ls = leftTicks > 0 ? 1 / leftTicks : 0;
  const rs = rightTicks > 0 ? 1 / rightTicks : 0;
  const levels = [];
  for (const v of fg.levels) {
    const nodes = [];
    let endL = 0, endR = 0;
    for (let i = 0; i + 6 < v.length; i += 7) {
      const xl = endL + v[i], tl = v[i + 1], sl = v[i + 2];
      const xr = endR + v[i + 3], tr = v[i + 4], sr = v[i + 5];
      nodes.push({
        x: xl * ls + xr * rs, w: tl * ls + tr * rs, xl, xr,
        leftTotal: tl, leftSelf: sl, rightTotal: tr, rightSelf: sr,
        total: tl + tr, self: sl + sr,
        name: fg.names[v[i + 6]] ?? "?", parent: null,
      });
      endL = xl + tl;
      endR = xr + tr;
    }
    levels.push(nodes);
  }
  link(levels, containsDiff);
  const width = (leftTicks > 0 ? 1 : 0) + (rightTicks > 0 ? 1 : 0);
  return { levels, total: leftTicks + rightTicks, width: width || 1, diff: true, leftTicks, rightTicks };
}

/**
 * Sets each node's parent: the node on the level above whose span holds it. Both levels are sorted by
 * x and siblings are contiguous, so one pointer walks the level above. Containment is checked on the
 * integer tick positions (both sides for a diff), never on scaled floats.
 */
function link(levels, contains) {
  for (let d = 1; d < levels.length; d++) {
    const above = levels[d - 1];
    let p = 0;
    for (const n of levels[d]) {
      while (p < above.length && !contains(above[p], n)) p++;
      n.parent = p < above.length ? above[p] : null;
      if (p === above.length) p = 0; // malformed input: do not let one orphan orphan the rest
    }
  }
}

const containsSingle = (p, c) => p.x <= c.x && c.x + c.w <= p.x + p.w;
const containsDiff = (p, c) =>
  p.xl <= c.xl && c.xl + c.leftTotal <= p.xl + p.leftTotal &&
  p.xr <= c.xr && c.xr + c.rightTotal <= p.xr + p.rightTotal;

/**
 * One row per function name: self summed over every node, total summed over the outermost occurrence
 * on each stack only (a recursive function is not counted twice).
 */
export function functionTable(model) {
  const rows = new Map();
  const row = (name) => {
    let r = rows.get(name);
    if (!r) {
      r = { name, self: 0, total: 0, leftSelf: 0, leftTotal: 0, rightSelf: 0, rightTotal: 0 };
      rows.set(name, r);
    }
    return r;
  };
  for (let d = 1; d < model.levels.length; d++) {
    for (const n of model.levels[d]) {
      const r = row(n.name);
      r.self += n.self;
      if (model.diff) { r.leftSelf += n.leftSelf; r.rightSelf += n.rightSelf; }
      let recursive = false;
      for (let a = n.parent; a && a.parent; a = a.parent) {
        if (a.name === n.name) { recursive = true; break; }
      }
      if (!recursive) {
        r.total += n.total;
        if (model.diff) { r.leftTotal += n.leftTotal; r.rightTotal += n.rightTotal; }
      }
    }
  }
  return [...rows.values()];
}

// Colours. Single graphs: a warm palette keyed by the function's package, so one library reads as one
// colour. Diff graphs: grey when unchanged, towards red as a function's share grew, green as it shrank.
const PALETTE = [
  [244, 166, 90], [238, 130, 98], [250, 200, 88], [227, 152, 124], [245, 184, 120], [222, 118, 100],
  [236, 196, 132], [248, 144, 74], [214, 170, 98], [240, 160, 140], [229, 189, 95], [252, 176, 110],
];

function hash(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
  return h >>> 0;
}

/** A single graph frame's fill: its package's palette colour, shaded by the name. */
export function singleColour(name) {
  const base = PALETTE[hash(packageOf(name)) % PALETTE.length];
  const shade = ((hash(name) % 21) - 10) / 100; // ±10% so neighbours of one package stay apart
  return `rgb(${base.map((c) => Math.max(0, Math.min(255, Math.round(c * (1 + shade))))).join(",")})`;
}

/** The relative change of a node's share of its side, from -1 (gone) to +∞ (new is +Infinity). */
export function shareChange(n, model) {
  const l = model.leftTicks ? n.leftTotal / model.leftTicks : 0;
  const r = model.rightTicks ? n.rightTotal / model.rightTicks : 0;
  if (l === 0) return r === 0 ? 0 : Infinity;
  return (r - l) / l;
}

/** A diff frame's fill for a relative change: grey, towards red as it grew, green as it shrank. */
export function diffColour(delta) {
  const neutral = [200, 200, 200];
  const grew = [222, 46, 46];
  const shrank = [46, 168, 72];
  // Full colour at ±100%; below 1% it stays grey, since that is noise in most profiles.
  const t = Math.abs(delta) < 0.01 ? 0 : Math.min(1, Math.abs(delta));
  const target = delta > 0 ? grew : shrank;
  const k = 0.25 + 0.75 * t;
  const mix = t === 0 ? neutral : neutral.map((c, i) => Math.round(c + (target[i] - c) * k));
  return `rgb(${mix.join(",")})`;
}

/** How many frames `matches(name)` accepts, and the share of the graph the outermost of them cover. */
export function searchTotal(model, matches) {
  let sum = 0, count = 0;
  for (let d = 1; d < model.levels.length; d++) {
    for (const n of model.levels[d]) {
      if (!matches(n.name)) continue;
      count++;
      let inner = false;
      for (let a = n.parent; a; a = a.parent) if (matches(a.name)) { inner = true; break; }
      if (!inner) sum += n.w;
    }
  }
  return { count, share: model.width ? sum / model.width : 0 };
}

/** The search box's note: `3 matches · 12.5% of the graph`. */
export function searchSummary({ count, share }) {
  return `${count} ${count === 1 ? "match" : "matches"} · ${(share * 100).toFixed(share < 0.1 ? 2 : 1)}% of the graph`;
}

/** How many ancestors a node has (its level). */
export function depthOf(node) {
  let depth = 0;
  for (let a = node.parent; a; a = a.parent) depth++;
  return depth;
}

/** The visible window in model units, x0..x1, and the level of the zoomed node (0 when not zoomed). */
export function zoomWindow(model, zoom) {
  if (!zoom) return { x0: 0, x1: model.width, depth: 0 };
  return { x0: zoom.x, x1: zoom.x + zoom.w, depth: depthOf(zoom) };
}

/** The node reached from the root through `frames` (names, the root's child first), or null. */
export function nodeAtPath(model, frames) {
  let node = model.levels[0]?.[0] ?? null;
  for (let d = 0; node && d < frames.length; d++) {
    const parent = node;
    node = (model.levels[d + 1] || []).find((n) => n.parent === parent && n.name === frames[d]) ?? null;
  }
  return node;
}

/**
 * Where to focus the graph for a function: the end of the first of `paths` ({frames}, as the regression
 * report lists the paths that changed most) found in the graph, else the function's outermost frame
 * whose share changed most (covers most, in a single graph). Null when the graph does not hold it.
 */
export function nodeForFunction(model, name, paths = []) {
  for (const { frames } of paths) {
    const node = frames && frames.length ? nodeAtPath(model, frames) : null;
    if (node && node.name === name) return node;
  }
  const weight = (n) => (model.diff
    ? Math.abs((model.rightTicks ? n.rightTotal / model.rightTicks : 0) - (model.leftTicks ? n.leftTotal / model.leftTicks : 0))
    : n.w);
  let best = null;
  for (let d = 1; d < model.levels.length; d++) {
    for (const n of model.levels[d]) {
      if (n.name !== name) continue;
      let inner = false;
      for (let a = n.parent; a; a = a.parent) if (a.name === name) { inner = true; break; }
      if (inner) continue;
      if (!best || weight(n) > weight(best) || (weight(n) === weight(best) && n.w > best.w)) best = n;
    }
  }
  return best;
}

/** The root frame's label: the graph's total, or both sides' totals. */
export function rootLabel(model, format) {
  if (model.diff) return `total (baseline ${format(model.leftTicks)}, comparison ${format(model.rightTicks)})`;
  return `total ${format(model.total)}`;
}

/**
 * The tooltip of a node: `rows` of cells (the first a heading) and, for a diff, whether the node's share
 * `grew`, `shrank` or stayed the `same`.
 */
export function tooltipRows(n, model, format) {
  const f = format;
  if (!model.diff) {
    return {
      rows: [
        ["Total", f(n.total), percent(n.total, model.total)],
        ["Self", f(n.self), percent(n.self, model.total)],
      ],
      change: null,
    };
  }
  const m = model;
  const delta = shareChange(n, m);
  const share = change(m.leftTicks ? n.leftTotal / m.leftTicks : 0, m.rightTicks ? n.rightTotal / m.rightTicks : 0);
  return {
    rows: [
      ["", "Baseline", "Comparison"],
      ["Total", `${f(n.leftTotal)} (${percent(n.leftTotal, m.leftTicks)})`, `${f(n.rightTotal)} (${percent(n.rightTotal, m.rightTicks)})`],
      ["Self", `${f(n.leftSelf)} (${percent(n.leftSelf, m.leftTicks)})`, `${f(n.rightSelf)} (${percent(n.rightSelf, m.rightTicks)})`],
      ["Change", share ? `share of total ${share}` : "unchanged", ""],
    ],
    change: delta > 0 ? "grew" : delta < 0 ? "shrank" : "same",
  };
}

/** The canvas's text alternative (screen readers and browser tests read it): what it shows, the top functions. */
export function describeFlameGraph(model, zoom, format) {
  if (!model || !model.levels.length) return "Flame graph: no samples.";
  const rows = functionTable(model);
  const where = zoom ? ` zoomed to ${zoom.name}` : "";
  if (model.diff) {
    const share = (r, side) => (side === "left" ? (model.leftTicks ? r.leftSelf / model.leftTicks : 0) : (model.rightTicks ? r.rightSelf / model.rightTicks : 0));
    const moved = rows.map((r) => ({ r, d: share(r, "right") - share(r, "left") }));
    const grew = moved.filter((m) => m.d > 0).sort((a, b) => b.d - a.d).slice(0, 5)
      .map((m) => `${m.r.name} (${change(share(m.r, "left"), share(m.r, "right"))})`);
    const shrank = moved.filter((m) => m.d < 0).sort((a, b) => a.d - b.d).slice(0, 5)
      .map((m) => `${m.r.name} (${change(share(m.r, "left"), share(m.r, "right"))})`);
    return `Diff flame graph${where}: baseline ${format(model.leftTicks)}, comparison ${format(model.rightTicks)}, ${rows.length} functions. ` +
      `Grew most: ${grew.join(", ") || "none"}. Shrank most: ${shrank.join(", ") || "none"}.`;
  }
  const top = rows.sort((a, b) => b.self - a.self).slice(0, 5).map((r) => `${r.name} (${percent(r.self, model.total)})`);
  return `Flame graph${where}: ${format(model.total)} in ${rows.length} functions. Most self time: ${top.join(", ")}.`;
}
