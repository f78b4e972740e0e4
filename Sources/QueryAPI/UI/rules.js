// The recording rules page: lists the tenant's rules, creates, edits and deletes them, and draws the
// series a rule records over the last hour (SelectSeries with the rule's selector and group-by: what
// kiln-ruler writes, step for step). `?rule=ID` opens with that rule's series drawn.

import * as api from "./api.js";
import { ruleRequest, ruleFields, ruleRow, ruleQuery, seriesPaths } from "./rule-form.js";
import { profileTypeLabel, defaultProfileType } from "./profile-types.js";
import { valueFormatter } from "./format.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#e8590c", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#c2255c", "#5c940d"];
let rules = [];
let editing = null;

function showError(e) {
  $("error").textContent = e ? `${e.method ? e.method + ": " : ""}${e.message}` : "";
  $("error").hidden = !e;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderList() {
  const table = $("rules");
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const h of ["Metric", "Selects", "Group by", "External labels", "Generation", ""]) {
    const th = document.createElement("th");
    th.textContent = h;
    head.append(th);
  }
  const body = table.createTBody();
  if (!rules.length) {
    const row = body.insertRow();
    cell(row, "No recording rules yet.", "muted").colSpan = 6;
  }
  for (const rule of rules) {
    const r = ruleRow(rule);
    const row = body.insertRow();
    row.dataset.id = r.id;
    row.title = `rule ${r.id}: click to draw its series`;
    const metric = cell(row, r.metricName, "name");
    const type = document.createElement("div");
    type.className = "muted";
    type.textContent = r.profileTypeShort;
    type.title = r.profileType;
    metric.append(type);
    cell(row, r.selector + (r.function ? ` through ${r.function}` : ""));
    cell(row, r.groupBy);
    cell(row, r.externalLabels);
    cell(row, r.editable ? r.generation : "provisioned");
    const actions = row.insertCell();
    if (r.editable) {
      for (const [label, act] of [["Edit", () => edit(rule)], ["Delete", () => remove(rule)]]) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = label;
        b.addEventListener("click", (e) => { e.stopPropagation(); act(); });
        actions.append(b);
      }
    }
    row.addEventListener("click", () => drawSeries(rule));
  }
}

async function load() {
  document.body.dataset.state = "loading";
  try {
    rules = await api.listRecordingRules();
    renderList();
    showError(null);
    const wanted = rules.find((r) => r.id === new URLSearchParams(location.search).get("rule"));
    if (wanted && $("series").hidden) await drawSeries(wanted);
  } catch (e) {
    showError(e);
  }
  document.body.dataset.state = "ready";
}

async function fillProfileTypes(selected) {
  const now = Date.now();
  const types = await api.profileTypes(now - 7 * 86400e3, now);
  const select = $("f-type");
  select.replaceChildren(...types.map((t) => new Option(profileTypeLabel(t), t.id)));
  if (selected && !types.some((t) => t.id === selected)) select.append(new Option(selected, selected));
  select.value = selected || defaultProfileType(types);
}

async function edit(rule) {
  editing = rule;
  const f = rule ? ruleFields(rule) : { metricName: "", profileType: "", selector: "", groupBy: "service_name", function: "", externalLabels: "" };
  $("form-title").textContent = rule ? `Edit rule ${rule.id}` : "New rule";
  $("f-metric").value = f.metricName;
  $("f-selector").value = f.selector;
  $("f-group").value = f.groupBy;
  $("f-function").value = f.function;
  $("f-external").value = f.externalLabels;
  $("rule-form").hidden = false;
  try {
    await fillProfileTypes(f.profileType);
  } catch (e) {
    showError(e);
  }
}

async function save(event) {
  event.preventDefault();
  let request;
  try {
    request = ruleRequest({
      metricName: $("f-metric").value, profileType: $("f-type").value, selector: $("f-selector").value,
      groupBy: $("f-group").value, function: $("f-function").value, externalLabels: $("f-external").value,
    }, editing);
  } catch (e) {
    showError(e);
    return;
  }
  try {
    const rule = await api.upsertRecordingRule(request);
    $("rule-form").hidden = true;
    await load();
    drawSeries(rule);
  } catch (e) {
    showError(e);
  }
}

async function remove(rule) {
  if (!confirm(`Delete recording rule ${rule.metricName} (${rule.id})? Its series stop at the next step.`)) return;
  try {
    await api.deleteRecordingRule(rule.id);
    await load();
    $("series").hidden = true;
  } catch (e) {
    showError(e);
  }
}

async function drawSeries(rule) {
  const { profileType, selector } = ruleQuery(rule);
  const end = Date.now(), start = Math.floor((end - 3600e3) / 15e3) * 15e3;
  $("series").hidden = false;
  $("series-title").textContent = `${rule.metricName} — last hour`;
  const fn = rule.stacktraceFilter?.functionName?.functionName;
  $("series-note").textContent = fn
    ? `Drawn without the function filter (${fn}): the series in Prometheus holds only the stacks through it.`
    : `SelectSeries ${profileType} ${selector}, step 15 s, by ${(rule.groupBy || []).join(", ") || "nothing"}: what kiln-ruler writes.`;
  try {
    const groups = await api.groupedSeries({ profileType, selector, start, end }, 15, rule.groupBy || []);
    // From the step before the first sample: a rule on a young stack fills the chart, not its last pixels.
    const first = Math.min(end - 15e3, ...groups.flatMap((g) => g.points.map((p) => p.t - 15e3)));
    const { top, paths } = seriesPaths(groups, Math.max(start, first), end, 800, 200);
    const chart = $("series-chart");
    chart.replaceChildren(...paths.map((p, i) => {
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", p.d);
      path.setAttribute("stroke", COLORS[i % COLORS.length]);
      path.setAttribute("class", "series-line");
      return path;
    }));
    const unit = profileType.split(":")[2] || "";
    const format = valueFormatter(unit);
    $("series-legend").replaceChildren(...paths.map((p, i) => {
      const li = document.createElement("li");
      li.style.setProperty("--swatch", COLORS[i % COLORS.length]);
      li.textContent = p.name;
      return li;
    }));
    if (!paths.length) $("series-note").textContent += " No samples in the last hour.";
    else $("series-note").textContent += ` Peak ${format(top)} per step.`;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

$("new-rule").addEventListener("click", () => edit(null));
$("cancel").addEventListener("click", () => { $("rule-form").hidden = true; editing = null; });
$("rule-form").addEventListener("submit", save);
load();
