// Recording rules as the rules page edits them: the form's fields into an UpsertRecordingRule request
// (checked here as the server checks it, so mistakes are named before the round trip), a rule into the
// fields and the row the page lists, and the rule's series into chart paths.

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

/**
 * The request for the form's fields: {metricName, profileType, selector, groupBy, function, externalLabels}
 * (group-by and external labels as comma-separated text, `name=value` for labels). `editing` is the rule
 * being changed (its id and generation go along), or null for a new one. Throws an Error naming every problem.
 */
export function ruleRequest(fields, editing) {
  const problems = [];
  const metricName = (fields.metricName || "").trim();
  if (!METRIC_NAME.test(metricName)) problems.push(`metric name "${metricName}" is not a Prometheus metric name`);
  if (!fields.profileType) problems.push("choose a profile type");
  const selector = (fields.selector || "").trim();
  if (selector && !/^\{.*\}$/.test(selector)) problems.push(`labels "${selector}" must be a selector like {service_name="checkout"}`);
  const groupBy = list(fields.groupBy || "");
  for (const name of groupBy) if (!LABEL_NAME.test(name)) problems.push(`group-by label "${name}" is not a label name`);
  const externalLabels = [];
  for (const pair of list(fields.externalLabels || "")) {
    const eq = pair.indexOf("=");
    const name = eq > 0 ? pair.slice(0, eq).trim() : "";
    if (!LABEL_NAME.test(name)) {
      problems.push(`external label "${pair}" must be name=value`);
      continue;
    }
    externalLabels.push({ name, value: pair.slice(eq + 1).trim() });
  }
  if (problems.length) throw new Error(problems.join("; "));
  const request = {
    metricName,
    matchers: [`{__profile_type__="${fields.profileType}"}`].concat(selector && selector !== "{}" ? [selector] : []),
    groupBy,
    externalLabels,
  };
  const fn = (fields.function || "").trim();
  if (fn) request.stacktraceFilter = { functionName: { functionName: fn } };
  if (editing) {
    request.id = editing.id;
    request.generation = editing.generation;
  }
  return request;
}

/** The matchers of a selector text `{a="x", b=~"y,z"}`, split at the commas outside quotes. */
export function selectorMatchers(text) {
  const inner = text.trim().replace(/^\{/, "").replace(/\}$/, "");
  const out = [];
  let current = "", quoted = false;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === "\\" && quoted) {
      current += c + (inner[i + 1] ?? "");
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === "," && !quoted) {
      out.push(current.trim());
      current = "";
      continue;
    }
    current += c;
  }
  if (current.trim()) out.push(current.trim());
  return out.filter(Boolean);
}

/** The profile type a rule records and its other matchers, joined into one selector (`{}` for none). */
export function ruleQuery(rule) {
  let profileType = rule.profileType || "";
  const others = [];
  for (const text of rule.matchers || []) {
    for (const m of selectorMatchers(text)) {
      const type = /^__profile_type__\s*=\s*"([^"]*)"$/.exec(m);
      if (type) profileType = profileType || type[1];
      else others.push(m);
    }
  }
  return { profileType, selector: `{${others.join(", ")}}` };
}

/** The form's fields for an existing rule. */
export function ruleFields(rule) {
  const { profileType, selector } = ruleQuery(rule);
  return {
    metricName: rule.metricName || "",
    profileType,
    selector: selector === "{}" ? "" : selector,
    groupBy: (rule.groupBy || []).join(", "),
    function: rule.stacktraceFilter?.functionName?.functionName || "",
    externalLabels: (rule.externalLabels || []).map((l) => `${l.name}=${l.value}`).join(", "),
  };
}

/** What the list shows of a rule. */
export function ruleRow(rule) {
  const { profileType, selector } = ruleQuery(rule);
  return {
    id: rule.id,
    metricName: rule.metricName,
    profileType,
    /** `process_cpu:cpu`: the type's name and sample type, enough to tell types apart in a list. */
    profileTypeShort: profileType.split(":").slice(0, 2).join(":"),
    selector,
    groupBy: (rule.groupBy || []).join(", ") || "—",
    function: rule.stacktraceFilter?.functionName?.functionName || "",
    externalLabels: (rule.externalLabels || []).map((l) => `${l.name}="${l.value}"`).join(", "),
    generation: String(rule.generation ?? ""),
    editable: !rule.provisioned,
  };
}

/**
 * SVG polylines for grouped series on one chart `width` × `height` (y from 0 to the largest value):
 * [{name, d}] with `name` the group's labels as text; at most `max` groups, the largest totals first.
 */
export function seriesPaths(groups, start, end, width, height, max = 8) {
  const ranked = groups
    .map((g) => ({ g, total: g.points.reduce((a, p) => a + p.v, 0) }))
    .sort((a, b) => b.total - a.total)
    .slice(0, max)
    .map((x) => x.g);
  const top = Math.max(0, ...ranked.flatMap((g) => g.points.map((p) => p.v)));
  const span = Math.max(1, end - start);
  const xOf = (t) => ((t - start) / span) * width;
  const yOf = (v) => (top > 0 ? height - (v / top) * height : height);
  return {
    top,
    paths: ranked.map((g) => ({
      name: Object.entries(g.labels).map(([k, v]) => `${k}="${v}"`).join(", ") || "all",
      d: g.points.map((p, i) => `${i ? "L" : "M"}${xOf(p.t).toFixed(1)},${yOf(p.v).toFixed(1)}`).join(""),
    })),
  };
}
