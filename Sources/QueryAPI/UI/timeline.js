// The timeline: an SVG area chart of SelectSeries; dragging across it selects a time range, and its
// exemplar dots (each point's largest profile) open one profile when clicked.

import { timelineSegments, timelinePaths, tickStep, tickTimes, tickLabel, heatmapCells } from "./timeline-data.js";

const NS = "http://www.w3.org/2000/svg";
const HEIGHT = 112;
const M = { left: 58, right: 10, top: 8, bottom: 20 };

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.append(e);
  return e;
}

export class Timeline {
  /**
   * host: an element the SVG fills. onSelect(from, until) gets epoch ms when the user drags a range;
   * onExemplar(exemplar) the exemplar whose dot was clicked. format: the sample value formatter.
   */
  constructor(host, { onSelect, onExemplar, format, colour }) {
    this.host = host;
    this.onSelect = onSelect;
    this.onExemplar = onExemplar;
    this.exemplars = [];
    this.selectedProfiles = [];
    this.heatmap = null;
    this.format = format || String;
    this.colour = colour || "var(--accent)";
    this.points = [];
    this.start = 0;
    this.end = 1;
    this.stepMillis = 10e3;
    this.overlays = [];
    this.message = "";
    this.svg = el("svg", { class: "timeline-svg", role: "img", height: HEIGHT }, host);
    this.drag = null;
    this.svg.addEventListener("pointerdown", (e) => this.onDown(e));
    this.svg.addEventListener("pointermove", (e) => this.onDrag(e));
    this.svg.addEventListener("pointerup", (e) => this.onUp(e));
    this.svg.addEventListener("pointercancel", () => { this.drag = null; this.draw(); });
    new ResizeObserver(() => this.draw()).observe(host);
  }

  /** points: [{t, v}], one per step with samples, at the step's end; stepMillis: SelectSeries' step. */
  setData(points, start, end, format, stepMillis) {
    this.points = points;
    this.start = start;
    this.end = end;
    if (stepMillis) this.stepMillis = stepMillis;
    if (format) this.format = format;
    this.message = points.length ? "" : "No samples in this time range";
    this.draw();
  }

  setMessage(text) {
    this.message = text;
    this.points = [];
    this.exemplars = [];
    this.heatmap = null;
    this.draw();
  }

  /**
   * Draws `heatmap` ({yMin, slots}, api.heatmapFromJSON) instead of the series: one row per value bucket,
   * a cell's colour by how many profiles it holds; a click on a cell opens its largest profile. null
   * goes back to the series.
   */
  setHeatmap(heatmap) {
    this.heatmap = heatmap;
    if (heatmap) this.message = heatmap.slots.length ? "" : "No profiles in this time range";
    this.draw();
  }

  /** exemplars: [{t, value, profileId}] (api.exemplarsOf); selected: the profile IDs shown as picked. */
  setExemplars(exemplars, selected) {
    this.exemplars = exemplars || [];
    this.selectedProfiles = selected || [];
    this.draw();
  }

  /** Highlighted ranges: [{from, until, className, label}]. */
  setOverlays(overlays) {
    this.overlays = overlays;
    this.draw();
  }

  plotWidth() { return Math.max(10, this.host.clientWidth - M.left - M.right); }
  xOf(t) { return M.left + ((t - this.start) / Math.max(1, this.end - this.start)) * this.plotWidth(); }
  tOf(x) { return this.start + ((x - M.left) / this.plotWidth()) * (this.end - this.start); }

  draw() {
    const svg = this.svg;
    const width = this.host.clientWidth;
    if (width === 0) return;
    svg.setAttribute("width", width);
    svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    svg.replaceChildren();
    const bottom = HEIGHT - M.bottom;
    const plotH = bottom - M.top;
    const map = this.heatmap ? heatmapCells(this.heatmap) : null;
    const low = map && this.heatmap.yMin.length ? this.heatmap.yMin[0] : 0;
    const max = map ? map.top : Math.max(0, ...this.points.map((p) => p.v));
    const yOf = (v) => bottom - (max > 0 ? (v / max) * plotH : 0);

    // Grid and y labels: zero (a heatmap: its lowest bucket), half and the maximum.
    for (const f of [0, 0.5, 1]) {
      const y = bottom - f * plotH;
      el("line", { x1: M.left, x2: width - M.right, y1: y, y2: y, class: "grid" }, svg);
      if (max > 0 || f === 0) {
        const t = el("text", { x: M.left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, svg);
        t.textContent = this.format(low + (max - low) * f);
      }
    }
    // X ticks at a round interval that gives about one label per 110 px.
    const span = this.end - this.start;
    const step = tickStep(span, this.plotWidth());
    for (const t of tickTimes(this.start, this.end, step, new Date().getTimezoneOffset() * 60e3)) {
      const x = this.xOf(t);
      el("line", { x1: x, x2: x, y1: bottom, y2: bottom + 4, class: "tick" }, svg);
      const label = el("text", { x, y: HEIGHT - 5, class: "axis", "text-anchor": "middle" }, svg);
      label.textContent = tickLabel(t, step, span);
    }

    if (map) this.drawHeatmap(map, bottom, plotH);
    const segments = map ? [] : timelineSegments(this.points, this.stepMillis, this.start, this.end);
    if (segments.length) {
      const { area, line } = timelinePaths(segments, (t) => this.xOf(t), yOf, bottom);
      el("path", { d: area, class: "area", fill: this.colour }, svg);
      el("path", { d: line, class: "line", stroke: this.colour }, svg);
    }
    for (const o of this.overlays) {
      const x1 = Math.max(M.left, this.xOf(o.from));
      const x2 = Math.min(width - M.right, this.xOf(o.until));
      if (x2 <= x1) continue;
      el("rect", { x: x1, y: M.top, width: x2 - x1, height: plotH, class: `overlay ${o.className || ""}` }, svg);
      if (o.label) {
        const t = el("text", { x: x1 + 4, y: M.top + 12, class: `overlay-label ${o.className || ""}` }, svg);
        t.textContent = o.label;
      }
    }
    for (const e of map ? [] : this.exemplars) {
      if (e.t < this.start || e.t > this.end) continue;
      const picked = this.selectedProfiles.includes(e.profileId);
      const dot = el("circle", {
        cx: this.xOf(e.t), cy: yOf(Math.min(e.value, max)), r: picked ? 5 : 3.5,
        class: picked ? "exemplar selected" : "exemplar", "data-profile-id": e.profileId, tabindex: 0, role: "button",
      }, svg);
      el("title", {}, dot).textContent = `Profile at ${new Date(e.t).toLocaleString()}: ${this.format(e.value)}. Click to open it alone`;
      // A press on a dot is a click on it, not the start of a range drag.
      dot.addEventListener("pointerdown", (ev) => ev.stopPropagation());
      dot.addEventListener("click", () => this.onExemplar && this.onExemplar(e));
      dot.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && this.onExemplar) this.onExemplar(e); });
    }
    if (this.message) {
      const t = el("text", { x: M.left + this.plotWidth() / 2, y: M.top + plotH / 2, class: "empty", "text-anchor": "middle" }, svg);
      t.textContent = this.message;
    }
    if (this.drag && Math.abs(this.drag.x1 - this.drag.x0) > 1) {
      const a = Math.min(this.drag.x0, this.drag.x1), b = Math.max(this.drag.x0, this.drag.x1);
      el("rect", { x: a, y: M.top, width: b - a, height: plotH, class: "brush" }, svg);
    }
    svg.setAttribute("aria-label", `Timeline with ${this.points.length} points; drag to select a time range`);
  }

  drawHeatmap({ cells, maxCount }, bottom, plotH) {
    const rows = Math.max(1, this.heatmap.yMin.length);
    const rowH = plotH / rows;
    const yMin = this.heatmap.yMin;
    for (const c of cells) {
      const x1 = Math.max(M.left, this.xOf(c.t - this.stepMillis)), x2 = Math.min(this.host.clientWidth - M.right, this.xOf(c.t));
      if (x2 <= x1) continue;
      // Colour by the count on a log scale, so one profile still shows beside a busy cell.
      const strength = 0.2 + 0.8 * (Math.log1p(c.count) / Math.log1p(Math.max(1, maxCount)));
      const picked = c.exemplar && this.selectedProfiles.includes(c.exemplar.profileId);
      const rect = el("rect", {
        x: x1, y: bottom - (c.bucket + 1) * rowH, width: Math.max(1, x2 - x1 - 0.5), height: Math.max(1, rowH - 0.5),
        class: picked ? "heat-cell selected" : "heat-cell", "fill-opacity": strength.toFixed(3),
        "data-profile-id": c.exemplar ? c.exemplar.profileId : "", tabindex: c.exemplar ? 0 : -1,
      }, this.svg);
      const range = `${this.format(yMin[c.bucket])}–${this.format(yMin[c.bucket] + (yMin[1] - yMin[0] || 0))}`;
      el("title", {}, rect).textContent = `${c.count} ${c.count === 1 ? "profile" : "profiles"} of ${range}` +
        (c.exemplar ? `. Click to open the largest (${this.format(c.exemplar.value)}) alone` : "");
      if (!c.exemplar) continue;
      rect.addEventListener("pointerdown", (ev) => ev.stopPropagation());
      rect.addEventListener("click", () => this.onExemplar && this.onExemplar(c.exemplar));
      rect.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && this.onExemplar) this.onExemplar(c.exemplar); });
    }
  }

  localX(e) {
    const r = this.svg.getBoundingClientRect();
    return Math.min(Math.max(e.clientX - r.left, M.left), this.host.clientWidth - M.right);
  }

  onDown(e) {
    if (e.button !== 0) return;
    this.svg.setPointerCapture(e.pointerId);
    const x = this.localX(e);
    this.drag = { x0: x, x1: x };
  }

  onDrag(e) {
    if (!this.drag) return;
    this.drag.x1 = this.localX(e);
    this.draw();
  }

  onUp(e) {
    if (!this.drag) return;
    const { x0 } = this.drag;
    const x1 = this.localX(e);
    this.drag = null;
    this.draw();
    if (Math.abs(x1 - x0) < 4) return; // a click, not a drag
    const from = Math.round(this.tOf(Math.min(x0, x1)));
    const until = Math.round(this.tOf(Math.max(x0, x1)));
    if (until > from) this.onSelect(from, until);
  }
}
