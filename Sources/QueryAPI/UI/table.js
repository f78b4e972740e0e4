// The Self/Total table beside a flame graph: one row per function, sortable by any column.

import { percent, change } from "./format.js";
import { diffColour } from "./flamegraph.js";

const MAX_ROWS = 400;

const SINGLE_COLUMNS = [
  { key: "self", label: "Self", numeric: true },
  { key: "total", label: "Total", numeric: true },
  { key: "name", label: "Function" },
];

const DIFF_COLUMNS = [
  { key: "name", label: "Function" },
  { key: "leftSelf", label: "Baseline self", numeric: true },
  { key: "rightSelf", label: "Comparison self", numeric: true },
  { key: "delta", label: "Change", numeric: true },
];

export class FunctionTable {
  /** onPick(name) runs when a row is clicked (the app searches the flame graph for it). */
  constructor(table, { onPick, onSort }) {
    this.table = table;
    this.onPick = onPick;
    this.onSort = onSort || (() => {});
    this.rows = [];
    this.model = null;
    this.sort = { key: "self", desc: true };
    this.search = "";
    table.addEventListener("click", (e) => {
      const th = e.target.closest("th[data-key]");
      if (th) {
        const key = th.dataset.key;
        this.sort = { key, desc: this.sort.key === key ? !this.sort.desc : key !== "name" };
        this.onSort(this.sortParam());
        this.render();
        return;
      }
      const tr = e.target.closest("tr[data-function]");
      if (tr) this.onPick(tr.dataset.function);
    });
  }

  /** `self`, `-name`: the URL form of the sort (a leading minus means ascending). */
  sortParam() { return (this.sort.desc ? "" : "-") + this.sort.key; }

  setSortParam(value, diff) {
    const columns = diff ? DIFF_COLUMNS : SINGLE_COLUMNS;
    const key = (value || "").replace(/^-/, "");
    if (columns.some((c) => c.key === key)) this.sort = { key, desc: !value.startsWith("-") };
    else this.sort = { key: diff ? "delta" : "self", desc: true };
  }

  setData(rows, model, format) {
    this.model = model;
    this.format = format;
    if (model.diff) {
      for (const r of rows) {
        const l = model.leftTicks ? r.leftSelf / model.leftTicks : 0;
        const rr = model.rightTicks ? r.rightSelf / model.rightTicks : 0;
        // Change of the function's share of its side, in percentage points; the sort key.
        r.delta = rr - l;
        r.relative = l === 0 ? (rr === 0 ? 0 : Infinity) : (rr - l) / l;
      }
    }
    this.rows = rows;
    this.render();
  }

  setSearch(text) {
    this.search = (text || "").toLowerCase();
    for (const tr of this.table.tBodies[0]?.rows || []) {
      tr.classList.toggle("match", this.search !== "" && tr.dataset.function.toLowerCase().includes(this.search));
    }
  }

  render() {
    const t = this.table;
    t.replaceChildren();
    if (!this.model) return;
    const diff = this.model.diff;
    const columns = diff ? DIFF_COLUMNS : SINGLE_COLUMNS;
    const head = t.createTHead().insertRow();
    for (const c of columns) {
      const th = document.createElement("th");
      th.dataset.key = c.key;
      th.scope = "col";
      th.className = c.numeric ? "num" : "name";
      th.textContent = c.label;
      if (this.sort.key === c.key) {
        th.setAttribute("aria-sort", this.sort.desc ? "descending" : "ascending");
        th.append(Object.assign(document.createElement("span"), { className: "arrow", textContent: this.sort.desc ? " ▾" : " ▴" }));
      }
      th.title = "Sort by " + c.label.toLowerCase();
      head.append(th);
    }
    const { key, desc } = this.sort;
    const sorted = [...this.rows].filter((r) => !diff || r.leftSelf || r.rightSelf || r.leftTotal || r.rightTotal);
    sorted.sort((a, b) => {
      const av = key === "delta" && diff ? a.delta : a[key];
      const bv = key === "delta" && diff ? b.delta : b[key];
      let c = key === "name" ? String(av).localeCompare(String(bv)) : av - bv;
      if (c === 0) c = b.self - a.self || a.name.localeCompare(b.name);
      return desc ? -c : c;
    });
    const body = t.createTBody();
    const f = this.format;
    const m = this.model;
    const maxSelf = Math.max(1, ...this.rows.map((r) => r.self));
    for (const r of sorted.slice(0, MAX_ROWS)) {
      const tr = body.insertRow();
      tr.dataset.function = r.name;
      tr.title = r.name;
      if (diff) {
        tr.dataset.leftSelf = r.leftSelf;
        tr.dataset.rightSelf = r.rightSelf;
        tr.append(nameCell(r.name));
        tr.append(valueCell(f(r.leftSelf), percent(r.leftSelf, m.leftTicks)));
        tr.append(valueCell(f(r.rightSelf), percent(r.rightSelf, m.rightTicks)));
        const c = valueCell(change(m.leftTicks ? r.leftSelf / m.leftTicks : 0, m.rightTicks ? r.rightSelf / m.rightTicks : 0), "");
        c.classList.add("change");
        c.style.color = r.relative === 0 ? "" : diffColour(Math.max(-1, Math.min(1, r.relative)) || (r.relative > 0 ? 1 : -1));
        tr.append(c);
      } else {
        tr.dataset.self = r.self;
        tr.dataset.total = r.total;
        const self = valueCell(f(r.self), percent(r.self, m.total));
        self.style.setProperty("--bar", `${((r.self / maxSelf) * 100).toFixed(1)}%`);
        self.classList.add("selfbar");
        tr.append(self, valueCell(f(r.total), percent(r.total, m.total)), nameCell(r.name));
      }
      if (this.search && r.name.toLowerCase().includes(this.search)) tr.classList.add("match");
    }
    if (sorted.length > MAX_ROWS) {
      const tr = body.insertRow();
      tr.className = "more";
      const td = tr.insertCell();
      td.colSpan = columns.length;
      td.textContent = `${sorted.length - MAX_ROWS} more functions; search to find one`;
    }
  }
}

function nameCell(name) {
  const td = document.createElement("td");
  td.className = "name";
  td.textContent = name;
  return td;
}

function valueCell(value, share) {
  const td = document.createElement("td");
  td.className = "num";
  td.textContent = value;
  if (share) {
    const s = document.createElement("span");
    s.className = "share";
    s.textContent = share;
    td.append(" ", s);
  }
  return td;
}
