// The Self/Total table beside a flame graph: one row per function, sortable by any column.

import { percent, change } from "./format.js";
import { splitFunctionName, searchMatcher } from "./function-names.js";
import {
  MAX_TABLE_ROWS, tableColumns, sortParam, parseSortParam, nextSort, addShareChanges, sortRows, changeColour,
} from "./table-rows.js";

export class FunctionTable {
  /** onPick(name) runs when a row is clicked (the app searches the flame graph for it). */
  constructor(table, { onPick, onSort }) {
    this.table = table;
    this.onPick = onPick;
    this.onSort = onSort || (() => {});
    this.rows = [];
    this.model = null;
    this.sort = { key: "self", desc: true };
    this.matches = searchMatcher("");
    table.addEventListener("click", (e) => {
      const th = e.target.closest("th[data-key]");
      if (th) {
        this.sort = nextSort(this.sort, th.dataset.key);
        this.onSort(this.sortParam());
        this.render();
        return;
      }
      const tr = e.target.closest("tr[data-function]");
      if (tr) this.onPick(tr.dataset.function);
    });
  }

  /** `self`, `-name`: the URL form of the sort (a leading minus means ascending). */
  sortParam() { return sortParam(this.sort); }

  setSortParam(value, diff) {
    this.sort = parseSortParam(value, diff);
  }

  setData(rows, model, format) {
    this.model = model;
    this.format = format;
    this.rows = model.diff ? addShareChanges(rows, model) : rows;
    this.render();
  }

  setSearch(text) {
    this.matches = searchMatcher(text);
    for (const tr of this.table.tBodies[0]?.rows || []) {
      tr.classList.toggle("match", this.matches(tr.dataset.function));
    }
  }

  /** Scrolls the row of the function `name` into view, if it is one of the rows shown. */
  reveal(name) {
    const tr = [...(this.table.tBodies[0]?.rows || [])].find((r) => r.dataset.function === name);
    if (tr) tr.scrollIntoView({ block: "nearest" });
  }

  render() {
    const t = this.table;
    t.replaceChildren();
    if (!this.model) return;
    const diff = this.model.diff;
    const columns = tableColumns(diff);
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
    const sorted = sortRows(this.rows, this.sort, diff);
    const body = t.createTBody();
    const f = this.format;
    const m = this.model;
    const maxSelf = Math.max(1, ...this.rows.map((r) => r.self));
    for (const r of sorted.slice(0, MAX_TABLE_ROWS)) {
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
        c.style.color = changeColour(r.relative);
        tr.append(c);
      } else {
        tr.dataset.self = r.self;
        tr.dataset.total = r.total;
        const self = valueCell(f(r.self), percent(r.self, m.total));
        self.style.setProperty("--bar", `${((r.self / maxSelf) * 100).toFixed(1)}%`);
        self.classList.add("selfbar");
        tr.append(self, valueCell(f(r.total), percent(r.total, m.total)), nameCell(r.name));
      }
      if (this.matches(r.name)) tr.classList.add("match");
    }
    if (sorted.length > MAX_TABLE_ROWS) {
      const tr = body.insertRow();
      tr.className = "more";
      const td = tr.insertCell();
      td.colSpan = columns.length;
      td.textContent = `${sorted.length - MAX_TABLE_ROWS} more functions; search to find one`;
    }
  }
}

// The package path and the function in separate spans: when the column is narrow the CSS elides the
// path and keeps the function; the row's title has the full name.
export function nameCell(name) {
  const td = document.createElement("td");
  td.className = "name";
  const { path, func } = splitFunctionName(name);
  const box = document.createElement("span");
  box.className = "fn-name";
  if (path) {
    const p = document.createElement("span");
    p.className = "fn-path";
    const text = document.createElement("span"); // left-to-right inside the right-to-left box, see style.css
    text.textContent = path;
    p.append(text);
    box.append(p);
  }
  const f = document.createElement("span");
  f.className = "fn-func";
  f.textContent = func;
  box.append(f);
  td.append(box);
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
