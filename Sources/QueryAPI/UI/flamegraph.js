// The flame graph canvas: draws a decoded model (flame-model.js) with hover, click-to-zoom and search
// highlighting.

import { singleColour, diffColour, shareChange, searchTotal, zoomWindow, rootLabel, tooltipRows, depthOf } from "./flame-model.js";
import { elideFunctionName, elideEnd, searchMatcher } from "./function-names.js";

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
    this.matchesSearch = searchMatcher("");
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
    this.matchesSearch = searchMatcher(text);
    this.draw();
  }

  zoomTo(node) {
    this.zoom = node;
    this.draw();
    this.onZoom(node);
  }

  /**
   * Zooms to `node` and scrolls its row into view: picked from outside the graph (not clicked), a
   * deep frame may sit below the visible part.
   */
  focusOn(node) {
    this.zoomTo(node);
    if (!node) return;
    const top = depthOf(node) * ROW;
    const host = this.host;
    if (top < host.scrollTop || top + ROW > host.scrollTop + host.clientHeight) {
      host.scrollTop = Math.max(0, top - 2 * ROW); // two callers' rows above it for context
    }
  }

  matches(n) {
    return this.matchesSearch(n.name);
  }

  /** The matching frames' count and the share of the graph they cover; null without a search. */
  searchTotal() {
    if (!this.model || !this.search) return null;
    return searchTotal(this.model, this.matchesSearch);
  }

  // The visible window in model units: x0..x1, and the level the zoomed node sits on.
  view() {
    return zoomWindow(this.model, this.zoom);
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
          const room = Math.floor((pw - 6) / charWidth);
          const text = d === 0 ? elideEnd(rootLabel(this.model, this.format), room) : elideFunctionName(n.name, room);
          ctx.globalAlpha = dim ? 0.55 : 1;
          ctx.fillStyle = "rgb(24,24,28)";
          ctx.fillText(text, px + 3, y + ROW / 2 + 0.5);
        }
      }
    }
    ctx.globalAlpha = 1;
    this.updateSummary();
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
    const m = this.model;
    const name = n.parent ? n.name : "total";
    const { rows, change } = tooltipRows(n, m, this.format);
    if (change) this.tooltip.dataset.change = change;
    else delete this.tooltip.dataset.change;
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
