// The comparison view's "Explain this difference" panel: the regression report's one-line summary and
// its ranked functions (regression-rows.js); picking a row hands it to the app, which focuses the flame
// graph on that function.

import { regressionRows, regressionSummary, noChangeMessage, REGRESSION_SECTIONS } from "./regression-rows.js";
import { nameCell } from "./table.js";

const COLUMNS = [
  { label: "Function", className: "name" },
  { label: "Baseline", className: "num", title: "Share of the baseline's total, the function and what it calls" },
  { label: "Comparison", className: "num", title: "Share of the comparison's total, the function and what it calls" },
  { label: "Change", className: "num", title: "Change of the share in percentage points" },
  { label: "q", className: "num", title: "The p-value adjusted for testing every function; below α counts as significant" },
];

export class RegressionPanel {
  /**
   * `elements`: {button, summary, close, panel, message, table}. onPick(row) runs when a function's
   * row is clicked or chosen with Enter.
   */
  constructor(elements, { onPick }) {
    this.el = elements;
    this.onPick = onPick;
    this.rows = [];
    const pick = (target) => {
      const tr = target.closest("tr[data-index]");
      if (!tr) return;
      this.select(tr.dataset.index);
      this.onPick(this.rows[Number(tr.dataset.index)]);
    };
    elements.table.addEventListener("click", (e) => pick(e.target));
    elements.table.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" && e.key !== " ") return;
      e.preventDefault();
      pick(e.target);
    });
  }

  showLoading() {
    this.open("loading");
    this.el.button.disabled = true;
    this.el.summary.textContent = "";
    this.setMessage("Testing every function of the baseline against the comparison…");
    this.el.table.replaceChildren();
    this.rows = [];
  }

  showReport(report) {
    this.rows = regressionRows(report);
    this.open(this.rows.length ? "ready" : "empty");
    this.el.button.disabled = false;
    this.el.summary.textContent = regressionSummary(report);
    this.el.summary.title = this.el.summary.textContent;
    this.setMessage(this.rows.length ? "" : noChangeMessage(report));
    this.render();
  }

  showError(error) {
    this.open("error");
    this.el.button.disabled = false;
    this.el.summary.textContent = "";
    const what = error.code ? `Explaining the difference failed (${error.code}): ` : "Explaining the difference failed: ";
    this.setMessage(what + (error.message || String(error)));
    this.el.table.replaceChildren();
    this.rows = [];
  }

  hide() {
    this.el.panel.hidden = true;
    this.el.close.hidden = true;
    this.el.button.disabled = false;
    this.el.summary.textContent = "";
    this.el.panel.dataset.state = "closed";
  }

  open(state) {
    this.el.panel.hidden = false;
    this.el.close.hidden = false;
    this.el.panel.dataset.state = state;
  }

  setMessage(text) {
    this.el.message.textContent = text;
    this.el.message.hidden = !text;
    this.el.message.classList.toggle("failed", this.el.panel.dataset.state === "error");
  }

  /** Marks the row at `index` as the one the graph is focused on. */
  select(index) {
    for (const tr of this.el.table.querySelectorAll("tr[data-index]")) {
      tr.setAttribute("aria-current", String(tr.dataset.index === String(index)));
    }
  }

  render() {
    const t = this.el.table;
    t.replaceChildren();
    if (!this.rows.length) return;
    const head = t.createTHead().insertRow();
    for (const c of COLUMNS) {
      const th = document.createElement("th");
      th.scope = "col";
      th.className = c.className;
      th.textContent = c.label;
      if (c.title) th.title = c.title;
      head.append(th);
    }
    const body = t.createTBody();
    for (const { kind, heading } of REGRESSION_SECTIONS) {
      const rows = this.rows.map((r, index) => ({ r, index })).filter(({ r }) => r.kind === kind);
      if (!rows.length) continue;
      const section = body.insertRow();
      section.className = "section";
      const th = document.createElement("th");
      th.colSpan = COLUMNS.length;
      th.scope = "colgroup";
      th.textContent = `${heading} (${rows.length})`;
      section.append(th);
      for (const { r, index } of rows) {
        const tr = body.insertRow();
        tr.dataset.index = index;
        tr.dataset.function = r.function;
        tr.dataset.kind = r.kind;
        tr.tabIndex = 0;
        tr.title = `${r.function}: click to focus the flame graph on it`;
        tr.setAttribute("aria-current", "false");
        tr.append(nameCell(r.function));
        for (const [text, className] of [[r.beforeText, "num"], [r.afterText, "num"], [r.changeText, "num change"], [r.qText, "num"]]) {
          const td = tr.insertCell();
          td.className = className;
          td.textContent = text;
        }
      }
    }
  }
}
