// Label selectors and the `query` parameter, Pyroscope style: `<profile type>{<matchers>}`.

/** `process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="a"}` → its type and its selector. */
export function splitQuery(query) {
  const q = query || "";
  const brace = q.indexOf("{");
  if (brace < 0) return { profileType: q.trim(), selector: "" };
  return { profileType: q.slice(0, brace).trim(), selector: q.slice(brace).trim() };
}

/** The `query` parameter for a profile type and a selector (`{}` when there is none). */
export function joinQuery(profileType, selector) {
  return (profileType || "") + (selector || "{}");
}

/** The matchers between a selector's braces, split on the commas outside quoted values. */
export function splitMatchers(inner) {
  const out = [];
  let cur = "", quoted = false;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === "\\" && quoted) { cur += c + (inner[++i] ?? ""); continue; }
    if (c === '"') quoted = !quoted;
    if (c === "," && !quoted) { if (cur.trim()) out.push(cur.trim()); cur = ""; continue; }
    cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** The selector with its `service_name` matcher set to `service` (added first when missing). */
export function withService(selector, service) {
  const inner = (selector || "{}").trim().replace(/^\{/, "").replace(/\}$/, "").trim();
  const matchers = inner ? splitMatchers(inner).filter((m) => !/^service_name\s*(=|!=|=~|!~)/.test(m)) : [];
  matchers.unshift(`service_name="${service.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`);
  return `{${matchers.join(", ")}}`;
}

/** The value of an exact `service_name="…"` matcher, or "" when the selector has none. */
export function serviceOf(selector) {
  const m = /service_name\s*=\s*"((?:[^"\\]|\\.)*)"/.exec(selector || "");
  return m ? m[1].replace(/\\(.)/g, "$1") : "";
}
