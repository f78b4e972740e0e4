// Browser-test support (not a test file itself): a stand-in for kiln-query that serves the UI folder as
// UIRoutes does and answers the page's Connect JSON calls and `/kiln/v1/regressions` from fixed stacks
// and series points, and a headless Chromium runner that returns the page's DOM.

import { createServer } from "node:http";
import { existsSync } from "node:fs";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, extname } from "node:path";
import { fileURLToPath } from "node:url";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export const UI_DIR = fileURLToPath(new URL("../../Sources/QueryAPI/UI/", import.meta.url));

export const CPU_TYPE = {
  ID: "process_cpu:cpu:nanoseconds:cpu:nanoseconds", name: "process_cpu", sampleType: "cpu",
  sampleUnit: "nanoseconds", periodType: "cpu", periodUnit: "nanoseconds",
};

const CONTENT_TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" };

/** Pyroscope's flame graph encoding of `stacks` ([{frames: [root…leaf], value}]): 4 numbers per node. */
export function encodeFlamegraph(stacks) {
  const root = { name: "total", total: 0, self: 0, children: new Map() };
  for (const { frames, value } of stacks) {
    root.total += value;
    let node = root;
    for (const name of frames) {
      let child = node.children.get(name);
      if (!child) { child = { name, total: 0, self: 0, children: new Map() }; node.children.set(name, child); }
      child.total += value;
      node = child;
    }
    node.self += value;
  }
  const names = [], index = new Map();
  const nameIndex = (n) => { if (!index.has(n)) { index.set(n, names.length); names.push(n); } return index.get(n); };
  const levels = [];
  // Children start after their parent's self, in name order; x offsets are from the previous node's end.
  const place = (node, x, depth, ends) => {
    levels[depth] ??= [];
    levels[depth].push(x - (ends[depth] ?? 0), node.total, node.self, nameIndex(node.name));
    ends[depth] = x + node.total;
    let cx = x + node.self;
    for (const child of [...node.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      place(child, cx, depth + 1, ends);
      cx += child.total;
    }
  };
  place(root, 0, 0, []);
  return { names, levels: levels.map((values) => ({ values: values.map(String) })), total: String(root.total), maxSelf: "0" };
}

/** The diff encoding of two stack sets: 7 numbers per node, baseline x/total/self, comparison x/total/self, name. */
export function encodeDiffFlamegraph(leftStacks, rightStacks) {
  const tree = (stacks) => {
    const root = { total: 0, self: 0, children: new Map() };
    for (const { frames, value } of stacks) {
      root.total += value;
      let node = root;
      for (const name of frames) {
        if (!node.children.has(name)) node.children.set(name, { total: 0, self: 0, children: new Map() });
        node = node.children.get(name);
        node.total += value;
      }
      node.self += value;
    }
    return root;
  };
  const empty = { total: 0, self: 0, children: new Map() };
  const names = [], index = new Map();
  const nameIndex = (n) => { if (!index.has(n)) { index.set(n, names.length); names.push(n); } return index.get(n); };
  const levels = [];
  const place = (name, l, r, xl, xr, depth, ends) => {
    levels[depth] ??= [];
    const [endL, endR] = ends[depth] ?? [0, 0];
    levels[depth].push(xl - endL, l.total, l.self, xr - endR, r.total, r.self, nameIndex(name));
    ends[depth] = [xl + l.total, xr + r.total];
    let cl = xl + l.self, cr = xr + r.self;
    for (const child of [...new Set([...l.children.keys(), ...r.children.keys()])].sort()) {
      const a = l.children.get(child) ?? empty, b = r.children.get(child) ?? empty;
      place(child, a, b, cl, cr, depth + 1, ends);
      cl += a.total;
      cr += b.total;
    }
  };
  const left = tree(leftStacks), right = tree(rightStacks);
  place("total", left, right, 0, 0, 0, []);
  return {
    names, levels: levels.map((values) => ({ values: values.map(String) })), total: String(left.total + right.total),
    maxSelf: "0", leftTicks: String(left.total), rightTicks: String(right.total),
  };
}

const REGRESSION_PARAMS = ["baselineQuery", "baselineFrom", "baselineUntil", "comparisonQuery", "comparisonFrom", "comparisonUntil"];

/**
 * A regression report (the shape of `GET /kiln/v1/regressions`) for two stack sets. The fake has one
 * merged profile per side, nothing to run a rank-sum test on, so it calls a change of total share of
 * at least `minShareChange` significant and gives it a made-up small q; smaller changes are noise.
 */
export function regressionReport(baselineStacks, comparisonStacks, params, { minShareChange = 0.01, profiles = [40, 38] } = {}) {
  const side = (stacks) => {
    const total = stacks.reduce((sum, s) => sum + s.value, 0);
    const totals = new Map(), selves = new Map(), paths = new Map();
    for (const { frames, value } of stacks) {
      frames.forEach((name, i) => {
        if (frames.indexOf(name) !== i) return; // a recursive call counts once per stack
        totals.set(name, (totals.get(name) ?? 0) + value);
        const path = frames.slice(0, i + 1);
        const key = JSON.stringify(path);
        const byPath = paths.get(name) ?? new Map();
        byPath.set(key, (byPath.get(key) ?? 0) + value);
        paths.set(name, byPath);
      });
      const leaf = frames[frames.length - 1];
      selves.set(leaf, (selves.get(leaf) ?? 0) + value);
    }
    const share = (map, name) => (total ? (map.get(name) ?? 0) / total : 0);
    return { total, totals, selves, paths, share };
  };
  const before = side(baselineStacks), after = side(comparisonStacks);
  const changes = [], newFunctions = [], vanishedFunctions = [];
  for (const name of new Set([...before.totals.keys(), ...after.totals.keys()])) {
    const presence = (counts) => ({ function: name, totalShare: counts.share(counts.totals, name), selfShare: counts.share(counts.selves, name) });
    if (!before.totals.has(name)) { newFunctions.push(presence(after)); continue; }
    if (!after.totals.has(name)) { vanishedFunctions.push(presence(before)); continue; }
    const pair = (field) => ({ before: before.share(before[field], name), after: after.share(after[field], name) });
    const totalShare = pair("totals");
    const significant = Math.abs(totalShare.after - totalShare.before) >= minShareChange;
    const pathKeys = new Set([...before.paths.get(name).keys(), ...after.paths.get(name).keys()]);
    const pathShare = (counts, key) => (counts.paths.get(name).get(key) ?? 0) / counts.total;
    const pathShares = [...pathKeys].map((key) => ({
      frames: JSON.parse(key), share: { before: pathShare(before, key), after: pathShare(after, key) },
    }));
    const grew = totalShare.after > totalShare.before;
    pathShares.sort((a, b) => (grew ? -1 : 1) * ((a.share.after - a.share.before) - (b.share.after - b.share.before)));
    changes.push({
      function: name, totalShare, selfShare: pair("selves"),
      totalPerProfile: { before: before.totals.get(name) / profiles[0], after: after.totals.get(name) / profiles[1] },
      totalPerSecond: { before: before.totals.get(name) / 1800, after: after.totals.get(name) / 1800 },
      p: significant ? 1e-9 : 0.4, q: significant ? 3.2e-8 : 0.62, superiority: significant ? (grew ? 0.97 : 0.03) : 0.5,
      significant, paths: pathShares.slice(0, 3),
    });
  }
  const change = (c) => c.totalShare.after - c.totalShare.before;
  const bySize = (a, b) => b.totalShare - a.totalShare;
  return {
    unit: "nanoseconds",
    baseline: {
      query: params.baselineQuery, fromMillis: Number(params.baselineFrom), untilMillis: Number(params.baselineUntil),
      profiles: profiles[0], total: before.total,
    },
    comparison: {
      query: params.comparisonQuery, fromMillis: Number(params.comparisonFrom), untilMillis: Number(params.comparisonUntil),
      profiles: profiles[1], total: after.total,
    },
    method: {
      test: "Mann–Whitney U on per-profile shares", correction: "Benjamini–Hochberg", alpha: 0.05, minShareChange,
      functionsSeen: changes.length + newFunctions.length + vanishedFunctions.length, functionsTested: changes.length,
    },
    regressions: changes.filter((c) => c.significant && change(c) > 0).sort((a, b) => change(b) - change(a)),
    improvements: changes.filter((c) => c.significant && change(c) < 0).sort((a, b) => change(a) - change(b)),
    insignificant: changes.filter((c) => !c.significant).sort((a, b) => Math.abs(change(b)) - Math.abs(change(a))),
    newFunctions: newFunctions.sort(bySize),
    vanishedFunctions: vanishedFunctions.sort(bySize),
  };
}

/** A Connect error answer: `status`, with `{code, message}`. */
class ConnectError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * The stacks a flame graph request selects: with a `spanSelector`, only those whose `spanID` is listed
 * (as kiln-query keeps only the samples whose `span_id` label is one of them). Span IDs are numbers in
 * hex, so `ff` selects `00000000000000ff`; anything else is refused as the server does.
 */
export function stacksOfSpans(stacks, spanSelector) {
  if (!spanSelector || !spanSelector.length) return stacks;
  const wanted = new Set(spanSelector.map((text) => {
    if (!/^[0-9a-fA-F]{1,16}$/.test(text)) {
      throw new ConnectError(400, "invalid_argument", `span_selector "${text.slice(0, 64)}" is not a span ID (16 hex digits)`);
    }
    return BigInt(`0x${text}`);
  }));
  return stacks.filter((s) => s.spanID !== undefined && wanted.has(BigInt(`0x${s.spanID}`)));
}

/** The stacks a request's `profileIdSelector` keeps: those whose `profileId` is listed (all without one). */
export function stacksOfProfiles(stacks, profileIdSelector) {
  if (!profileIdSelector || !profileIdSelector.length) return stacks;
  return stacks.filter((s) => profileIdSelector.includes(s.profileId));
}

/**
 * Starts the server on a free port. `stacks`: the flame graph every merge answers (and a diff's baseline,
 * against `comparisonStacks`); a stack with a `spanID` is a span's sample, and a request's `spanSelector`
 * keeps only the listed spans' stacks; `seriesPoints(start,
 * end, stepMillis)`: the SelectSeries points ([{timestamp, value}]); `pageScript`: JS added to index.html;
 * `uiDir`: the folder served under /ui/; `regressionsError` ({status, code, message}): what
 * `/kiln/v1/regressions` fails with instead of answering; `exemplars(start, end)`: the individual profiles
 * ([{profileId, timestamp, value}]) a SelectSeries asking for exemplars hands out, each point its largest;
 * `heatmapSlots(start, end, stepMillis)`: the slots SelectHeatmap answers (proto3 JSON). The returned `regressionRequests` collects
 * the parameters of every regressions request, `rpcRequests` every Connect call as {method, body}.
 */
export async function startFakeQueryServer({
  stacks, comparisonStacks = stacks, seriesPoints = () => [], pageScript = "", services = ["gopher"], uiDir = UI_DIR,
  regressionsError = null, exemplars = () => [], heatmapSlots = () => [],
}) {
  const regressionRequests = [];
  const rpcRequests = [];
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://localhost");
      if (req.method === "GET" && url.pathname === "/") {
        let html = await readFile(join(uiDir, "index.html"), "utf8");
        if (pageScript) html = html.replace("</body>", `<script type="module">${pageScript}</script>\n</body>`);
        return send(res, 200, "text/html", html);
      }
      const asset = /^\/ui\/([A-Za-z0-9_-][A-Za-z0-9._-]*)$/.exec(url.pathname);
      if (req.method === "GET" && asset) {
        const body = await readFile(join(uiDir, asset[1]));
        return send(res, 200, CONTENT_TYPES[extname(asset[1])] || "application/octet-stream", body);
      }
      const rpc = /^\/querier\.v1\.QuerierService\/(\w+)$/.exec(url.pathname);
      if (req.method === "POST" && rpc) {
        const body = JSON.parse(await readBody(req) || "{}");
        rpcRequests.push({ method: rpc[1], body });
        return send(res, 200, "application/json", JSON.stringify(answer(rpc[1], body)));
      }
      if (req.method === "GET" && url.pathname === "/kiln/v1/regressions") {
        const params = Object.fromEntries(url.searchParams); // form decoding, as kiln-query's FormQuery
        regressionRequests.push(params);
        const missing = REGRESSION_PARAMS.find((k) => !params[k]);
        if (missing) {
          return send(res, 400, "application/json", JSON.stringify({ code: "invalid_argument", message: `${missing} is required` }));
        }
        if (regressionsError) {
          const { status, code, message } = regressionsError;
          return send(res, status, "application/json", JSON.stringify({ code, message }));
        }
        return send(res, 200, "application/json", JSON.stringify(regressionReport(stacks, comparisonStacks, params)));
      }
      send(res, 404, "text/plain", "not found");
    } catch (e) {
      if (e instanceof ConnectError) return send(res, e.status, "application/json", JSON.stringify({ code: e.code, message: e.message }));
      send(res, 500, "application/json", JSON.stringify({ code: "internal", message: String(e) }));
    }
  });

  function answer(method, body) {
    switch (method) {
      case "ProfileTypes": return { profileTypes: [CPU_TYPE] };
      case "LabelValues": return { names: services };
      case "LabelNames": return { names: ["service_name"] };
      case "SelectMergeStacktraces":
        return { flamegraph: encodeFlamegraph(stacksOfProfiles(stacksOfSpans(stacks, body.spanSelector), body.profileIdSelector)) };
      case "Diff": {
        const left = stacksOfSpans(stacks, body.left?.spanSelector);
        return { flamegraph: encodeDiffFlamegraph(left, stacksOfSpans(comparisonStacks, body.right?.spanSelector)) };
      }
      case "SelectHeatmap":
        return { series: [{ labels: [], slots: heatmapSlots(Number(body.start), Number(body.end), Number(body.step) * 1000) }] };
      case "SelectSeries": {
        if (body.spanSelector !== undefined) {
          // kiln-query refuses a field it does not honour rather than answer as if it were not set.
          throw new ConnectError(400, "unimplemented", "SelectSeriesRequest field span_selector is not supported by Kiln yet");
        }
        const step = Number(body.step) * 1000;
        const points = seriesPoints(Number(body.start), Number(body.end), step);
        if (body.exemplarType === "EXEMPLAR_TYPE_INDIVIDUAL") {
          const profiles = exemplars(Number(body.start), Number(body.end));
          for (const p of points) {
            const t = Number(p.timestamp);
            const inStep = profiles.filter((e) => e.timestamp > t - step && e.timestamp <= t).sort((a, b) => b.value - a.value);
            if (inStep.length) p.exemplars = [{ ...inStep[0], timestamp: String(inStep[0].timestamp), value: String(inStep[0].value) }];
          }
        }
        return { series: points.length ? [{ labels: [{ name: "service_name", value: services[0] }], points }] : [] };
      }
      default: throw new Error(`the fake server does not answer ${method}`);
    }
  }

  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`, regressionRequests, rpcRequests,
    close: () => new Promise((r) => server.close(r)),
  };
}

function send(res, status, type, body) {
  res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-cache" });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = "";
    req.setEncoding("utf8");
    req.on("data", (c) => { data += c; });
    req.on("end", () => resolve(data));
    req.on("error", reject);
  });
}

/** Debian's headless Chromium, or `KILN_CHROMIUM`; null when there is none. */
export function findChromium() {
  if (process.env.KILN_CHROMIUM) return process.env.KILN_CHROMIUM;
  for (const dir of (process.env.PATH || "/usr/bin").split(":")) {
    for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
      const path = join(dir, name);
      if (existsSync(path)) return path;
    }
  }
  return null;
}

/**
 * Loads `url` in headless Chromium at `width`x`height` and returns the DOM once the page is idle (virtual
 * time only runs while no request is in flight, so the budget is spent after every answer arrived).
 */
export async function renderDOM(chromium, url, { width = 1280, height = 800 } = {}) {
  const profile = await mkdtemp(join(tmpdir(), "kiln-ui-chromium-"));
  try {
    const args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", `--user-data-dir=${profile}`,
      `--window-size=${width},${height}`, "--virtual-time-budget=5000", "--dump-dom", url];
    const { stdout } = await execFileAsync(chromium, args, { timeout: 90_000, maxBuffer: 64 << 20 });
    return stdout;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** The value of `data-<name>` on `<body>` in a DOM dump, unescaped. */
export function bodyData(dom, name) {
  const m = new RegExp(`<body [^>]*data-${name}="([^"]*)"`).exec(dom);
  if (!m) return null;
  return m[1].replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&#39;/g, "'").replace(/&amp;/g, "&");
}
