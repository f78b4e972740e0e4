// Flame graphs: decoding Pyroscope's level encoding into a tree, the per-function table, and a canvas
// renderer with hover, click-to-zoom and search highlighting.

import { percent, change } from "./format.js";

/**
 * Decodes a single flame graph. Each level holds 4 numbers per node: x offset (relative to the end of
 * the previous node on the level), total, self, name index. Returns {names, levels, total, diff:false}
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

function packageOf(name) {
  const paren = name.indexOf("(");
  const head = paren > 0 ? name.slice(0, paren) : name;
  const slash = head.lastIndexOf("/");
  const dot = head.indexOf(".", slash + 1);
  return dot > 0 ? head.slice(0, dot) : head;
}

function singleColour(name) {
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

const ROW = 18;
const FONT = '12px ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace';

/** Draws a decoded model into a canvas inside `host`; interactive. */
export class FlameGraph {
  constructor(host, { format, onZoom, describe }) {
    this.host = host;
    this.format = format;
    this.onZoom = onZoom || (() => {});
    this.describe = describe || (() => "");
    this.canvas = host.querySelector("canvas");
    this.tooltip = host.querySelector(".tooltip");
    this.model = null;
    this.zoom = null; // the node clicked, or null for the whole graph
    this.search = "";
    this.hover = null;
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("mouseleave", () => { this.hover = null; this.hideTooltip(); this.draw(); });
    this.canvas.addEventListener("click", (e) => {
      const n = this.nodeAt(e);
      if (n) this.zoomTo(n.parent ? n : null);
    });
    new ResizeObserver(() => this.draw()).observe(host);
  }

  setModel(model, format) {
    this.model = model;
    if (format) this.format = format;
    this.zoom = null;
    this.hover = null;
    this.hideTooltip();
    this.draw();
  }

  setSearch(text) {
    this.search = (text || "").toLowerCase();
    this.draw();
  }

  zoomTo(node) {
    this.zoom = node;
    this.draw();
    this.onZoom(node);
  }

  matches(n) {
    return this.search !== "" && n.name.toLowerCase().includes(this.search);
  }

  /** Totals of the outermost nodes matching the search, as [value, share of the graph]. */
  searchTotal() {
    if (!this.model || !this.search) return null;
    let sum = 0, count = 0;
    for (let d = 1; d < this.model.levels.length; d++) {
      for (const n of this.model.levels[d]) {
        if (!this.matches(n)) continue;
        count++;
        let inner = false;
        for (let a = n.parent; a; a = a.parent) if (this.matches(a)) { inner = true; break; }
        if (!inner) sum += n.w;
      }
    }
    return { count, share: this.model.width ? sum / this.model.width : 0 };
  }

  // The visible window in model units: x0..x1, and the level the zoomed node sits on.
  view() {
    if (!this.zoom) return { x0: 0, x1: this.model.width, depth: 0 };
    let depth = 0;
    for (let a = this.zoom.parent; a; a = a.parent) depth++;
    return { x0: this.zoom.x, x1: this.zoom.x + this.zoom.w, depth };
  }

  draw() {
    const canvas = this.canvas;
    const width = this.host.clientWidth;
    if (!this.model || width === 0) return;
    const levels = this.model.levels;
    const dpr = window.devicePixelRatio || 1;
    const height = Math.max(1, levels.length) * ROW;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    const { x0, x1, depth } = this.view();
    const scale = width / Math.max(x1 - x0, 1e-12);
    const charWidth = ctx.measureText("m").width;
    const searching = this.search !== "";
    for (let d = 0; d < levels.length; d++) {
      const y = d * ROW;
      for (const n of levels[d]) {
        let px, pw;
        const ancestor = d < depth; // drawn full width above the zoomed node, faded
        if (ancestor) {
          if (n.x > x0 + 1e-12 || n.x + n.w < x1 - 1e-12) continue;
          px = 0; pw = width;
        } else {
          if (n.x + n.w <= x0 || n.x >= x1) continue;
          px = (n.x - x0) * scale;
          pw = n.w * scale;
          if (pw < 0.4) continue;
        }
        let fill;
        if (d === 0) fill = "rgb(170,178,196)";
        else if (this.model.diff) fill = diffColour(shareChange(n, this.model));
        else fill = singleColour(n.name);
        const dim = (searching && !this.matches(n)) || ancestor;
        ctx.globalAlpha = dim ? 0.35 : 1;
        ctx.fillStyle = fill;
        ctx.fillRect(px, y, Math.max(pw - 0.5, 0.4), ROW - 1);
        if (searching && this.matches(n)) {
          ctx.globalAlpha = 1;
          ctx.strokeStyle = "rgb(40,60,200)";
          ctx.lineWidth = 1.5;
          ctx.strokeRect(px + 0.75, y + 0.75, Math.max(pw - 2, 0.5), ROW - 2.5);
        }
        if (n === this.hover) {
          ctx.globalAlpha = 1;
          ctx.strokeStyle = "rgb(20,20,20)";
          ctx.lineWidth = 1;
          ctx.strokeRect(px + 0.5, y + 0.5, Math.max(pw - 1.5, 0.5), ROW - 2);
        }
        if (pw > charWidth * 3 + 6) {
          const label = d === 0 ? this.rootLabel() : n.name;
          const room = Math.floor((pw - 6) / charWidth);
          const text = label.length <= room ? label : label.slice(0, Math.max(room - 1, 1)) + "…";
          ctx.globalAlpha = dim ? 0.55 : 1;
          ctx.fillStyle = "rgb(24,24,28)";
          ctx.fillText(text, px + 3, y + ROW / 2 + 0.5);
        }
      }
    }
    ctx.globalAlpha = 1;
    this.updateSummary();
  }

  rootLabel() {
    const m = this.model;
    if (m.diff) return `total (baseline ${this.format(m.leftTicks)}, comparison ${this.format(m.rightTicks)})`;
    return `total ${this.format(m.total)}`;
  }

  // Screen readers and tests read the same summary: what the graph shows, and the largest frames.
  updateSummary() {
    const text = this.describe(this.model, this.zoom);
    this.canvas.setAttribute("aria-label", text);
    this.canvas.textContent = text;
  }

  nodeAt(e) {
    if (!this.model) return null;
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left, y = e.clientY - rect.top;
    const d = Math.floor(y / ROW);
    const nodes = this.model.levels[d];
    if (!nodes) return null;
    const { x0, x1, depth } = this.view();
    if (d < depth) {
      for (let a = this.zoom; a; a = a.parent) {
        let ad = 0;
        for (let p = a.parent; p; p = p.parent) ad++;
        if (ad === d) return a;
      }
      return null;
    }
    const at = x0 + (x / rect.width) * (x1 - x0);
    let lo = 0, hi = nodes.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const n = nodes[mid];
      if (at < n.x) hi = mid - 1;
      else if (at >= n.x + n.w) lo = mid + 1;
      else return n;
    }
    return null;
  }

  onMove(e) {
    const n = this.nodeAt(e);
    if (n !== this.hover) { this.hover = n; this.draw(); }
    if (!n) { this.hideTooltip(); return; }
    this.canvas.style.cursor = "pointer";
    this.showTooltip(n, e);
  }

  showTooltip(n, e) {
    const m = this.model, f = this.format;
    const name = n.parent ? n.name : "total";
    let rows;
    if (m.diff) {
      const delta = shareChange(n, m);
      rows = [
        ["", "Baseline", "Comparison"],
        ["Total", `${f(n.leftTotal)} (${percent(n.leftTotal, m.leftTicks)})`, `${f(n.rightTotal)} (${percent(n.rightTotal, m.rightTicks)})`],
        ["Self", `${f(n.leftSelf)} (${percent(n.leftSelf, m.leftTicks)})`, `${f(n.rightSelf)} (${percent(n.rightSelf, m.rightTicks)})`],
      ];
      const share = change(m.leftTicks ? n.leftTotal / m.leftTicks : 0, m.rightTicks ? n.rightTotal / m.rightTicks : 0);
      rows.push(["Change", share ? `share of total ${share}` : "unchanged", ""]);
      this.tooltip.dataset.change = delta > 0 ? "grew" : delta < 0 ? "shrank" : "same";
    } else {
      rows = [
        ["Total", f(n.total), percent(n.total, m.total)],
        ["Self", f(n.self), percent(n.self, m.total)],
      ];
      delete this.tooltip.dataset.change;
    }
    const tip = this.tooltip;
    tip.replaceChildren();
    const title = document.createElement("div");
    title.className = "tip-name";
    title.textContent = name;
    tip.append(title);
    const table = document.createElement("table");
    for (const r of rows) {
      const tr = table.insertRow();
      r.forEach((c, i) => {
        const cell = document.createElement(i === 0 || (m.diff && r === rows[0]) ? "th" : "td");
        cell.textContent = c;
        tr.append(cell);
      });
    }
    tip.append(table);
    const hint = document.createElement("div");
    hint.className = "tip-hint";
    hint.textContent = n.parent ? "click to zoom" : "click to reset zoom";
    tip.append(hint);
    tip.hidden = false;
    const host = this.host.getBoundingClientRect();
    const w = tip.offsetWidth, h = tip.offsetHeight;
    let left = e.clientX - host.left + 14, top = e.clientY - host.top + this.host.scrollTop + 16;
    if (left + w > host.width - 4) left = Math.max(4, e.clientX - host.left - w - 14);
    if (e.clientY + h + 24 > window.innerHeight) top = e.clientY - host.top + this.host.scrollTop - h - 12;
    tip.style.left = `${left}px`;
    tip.style.top = `${top}px`;
  }

  hideTooltip() {
    this.tooltip.hidden = true;
    this.canvas.style.cursor = "default";
  }
}
