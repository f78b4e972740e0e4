import test from "node:test";
import assert from "node:assert/strict";
import {
  flamegraphFromJSON, summedSeries, regressions, QueryError, mergeRequest, mergeStacktraces, diff, selectSeries, exemplarsOf, heatmapFromJSON,
} from "../../Sources/QueryAPI/UI/api.js";

test("flamegraphFromJSON turns proto3 JSON int64 strings into numbers", () => {
  const fg = flamegraphFromJSON({
    names: ["total", "main"],
    levels: [{ values: ["0", "10", "0", "0"] }, { values: ["0", "10", "10", "1"] }, {}],
    total: "10",
    maxSelf: "10",
  });
  assert.deepEqual(fg, { names: ["total", "main"], levels: [[0, 10, 0, 0], [0, 10, 10, 1], []], total: 10, maxSelf: 10 });
});

test("flamegraphFromJSON reads an absent flame graph as an empty one", () => {
  const empty = { names: [], levels: [], total: 0, maxSelf: 0 };
  assert.deepEqual(flamegraphFromJSON(undefined), empty);
  assert.deepEqual(flamegraphFromJSON(null), empty);
});

test("summedSeries adds the series point by point, in time order", () => {
  const points = summedSeries([
    { labels: [{ name: "pod", value: "a" }], points: [{ timestamp: "2000", value: 1.5 }, { timestamp: "1000", value: 2 }] },
    { labels: [{ name: "pod", value: "b" }], points: [{ timestamp: "2000", value: "3" }, { timestamp: "3000" }] },
    { labels: [] },
  ]);
  assert.deepEqual(points, [{ t: 1000, v: 2 }, { t: 2000, v: 4.5 }, { t: 3000, v: 0 }]);
  assert.deepEqual(summedSeries(undefined), []);
});

const COMPARISON = {
  baselineQuery: 'process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api", env="prod"}',
  baselineFrom: 1000, baselineUntil: 2000,
  comparisonQuery: "process_cpu:cpu:nanoseconds:cpu:nanoseconds{}",
  comparisonFrom: 2000, comparisonUntil: 3000,
};

/** Runs `body` with fetch answering `respond(url, init)`; returns the requests made. */
async function withFetch(respond, body) {
  const original = globalThis.fetch;
  const requests = [];
  globalThis.fetch = async (url, init) => { requests.push({ url, init }); return respond(url, init); };
  try { await body(); } finally { globalThis.fetch = original; }
  return requests;
}

test("regressions GETs /kiln/v1/regressions with both sides' queries and times", async () => {
  const report = { regressions: [], improvements: [] };
  let answer;
  const requests = await withFetch(() => new Response(JSON.stringify(report), { status: 200 }), async () => {
    answer = await regressions(COMPARISON);
  });
  assert.deepEqual(answer, report);
  assert.equal(requests.length, 1);
  const { url, init } = requests[0];
  assert.equal(init.method, "GET");
  assert.equal(init.body, undefined);
  const parsed = new URL(url, "http://kiln");
  assert.equal(parsed.pathname, "/kiln/v1/regressions");
  assert.deepEqual(Object.fromEntries(parsed.searchParams), Object.fromEntries(Object.entries(COMPARISON).map(([k, v]) => [k, String(v)])));
});

test("regressions reports the server's {code, message} as a QueryError", async () => {
  const body = JSON.stringify({ code: "invalid_argument", message: "baselineFrom must be before baselineUntil" });
  await withFetch(() => new Response(body, { status: 400 }), async () => {
    await assert.rejects(regressions(COMPARISON), (e) => {
      assert.ok(e instanceof QueryError);
      assert.deepEqual([e.method, e.code, e.message], ["Regressions", "invalid_argument", "baselineFrom must be before baselineUntil"]);
      return true;
    });
  });
  await withFetch(() => new Response("upstream timed out", { status: 504, statusText: "Gateway Timeout" }), async () => {
    await assert.rejects(regressions(COMPARISON), { code: "http 504", message: "upstream timed out" });
  });
  await withFetch(() => { throw new TypeError("Failed to fetch"); }, async () => {
    await assert.rejects(regressions(COMPARISON), { code: "unavailable", message: "cannot reach the query service (Failed to fetch)" });
  });
});

const CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const SPANS = ["9a517183f26a089d", "5a4fe264a9c987fe"];
const QUERY = { profileType: CPU, selector: '{service_name="shop"}', start: 1000, end: 2000, maxNodes: 8192 };
const jsonAnswer = (body) => () => new Response(JSON.stringify(body), { status: 200 });

test("mergeRequest carries spanSelector only when there is a span filter", () => {
  assert.deepEqual(mergeRequest(QUERY), {
    profileTypeID: CPU, labelSelector: '{service_name="shop"}', start: "1000", end: "2000", maxNodes: "8192",
  });
  assert.equal("spanSelector" in mergeRequest({ ...QUERY, spans: [] }), false);
  assert.deepEqual(mergeRequest({ ...QUERY, spans: SPANS }).spanSelector, SPANS);
});

test("the flame graph and both sides of a diff are filtered by span, the series never", async () => {
  const q = { ...QUERY, spans: SPANS };
  const requests = await withFetch((url) => {
    if (url.endsWith("/SelectSeries")) return jsonAnswer({ series: [] })();
    return jsonAnswer({ flamegraph: {} })();
  }, async () => {
    await mergeStacktraces(q);
    await diff(q, { ...q, start: 2000, end: 3000 });
    await selectSeries(q, 15);
  });
  const bodies = Object.fromEntries(requests.map(({ url, init }) => [url.split("/").pop(), JSON.parse(init.body)]));
  assert.deepEqual(bodies.SelectMergeStacktraces.spanSelector, SPANS);
  assert.deepEqual([bodies.Diff.left.spanSelector, bodies.Diff.right.spanSelector], [SPANS, SPANS]);
  assert.equal("spanSelector" in bodies.SelectSeries, false);
});

const PROFILE = "018f0c2a-4b3d-7e21-8a4f-00000000abcd";

test("mergeRequest carries profileIdSelector only when there is a profile filter", () => {
  assert.equal("profileIdSelector" in mergeRequest({ ...QUERY, profiles: [] }), false);
  assert.deepEqual(mergeRequest({ ...QUERY, profiles: [PROFILE] }).profileIdSelector, [PROFILE]);
});

test("selectSeries asks for individual exemplars only when told to, and reads them in time order", async () => {
  const answer = {
    series: [{
      labels: [{ name: "service_name", value: "shop" }],
      points: [
        { timestamp: "2000", value: 7, exemplars: [{ profileId: PROFILE, timestamp: "1990", value: "5", labels: [{ name: "pod", value: "a" }] }] },
        { timestamp: "1000", value: 3, exemplars: [{ profileId: "p-early", timestamp: "990", value: "3" }] },
        { timestamp: "3000", value: 1 },
      ],
    }],
  };
  const requests = await withFetch(jsonAnswer(answer), async () => {
    const { points, exemplars } = await selectSeries(QUERY, 15, undefined, { exemplars: true });
    assert.deepEqual(points.map((p) => p.t), [1000, 2000, 3000]);
    assert.deepEqual(exemplars, [
      { t: 990, value: 3, profileId: "p-early", labels: {} },
      { t: 1990, value: 5, profileId: PROFILE, labels: { pod: "a" } },
    ]);
    await selectSeries(QUERY, 15);
  });
  const bodies = requests.map(({ init }) => JSON.parse(init.body));
  assert.equal(bodies[0].exemplarType, "EXEMPLAR_TYPE_INDIVIDUAL");
  assert.equal("exemplarType" in bodies[1], false);
  assert.deepEqual(exemplarsOf(undefined), []);
});

test("heatmapFromJSON adds the groups' counts slot by slot and reads the exemplars", () => {
  const yMin = [100, 200, 300];
  const h = heatmapFromJSON({
    series: [
      { labels: [{ name: "pod", value: "a" }], slots: [
        { timestamp: "2000", yMin, counts: [1, 0, 2], exemplars: [{ profileId: PROFILE, timestamp: "1990", value: "350" }] },
        { timestamp: "1000", yMin, counts: [0, 1, 0] },
      ] },
      { labels: [{ name: "pod", value: "b" }], slots: [{ timestamp: "2000", yMin, counts: [3, 0, 0] }] },
    ],
  });
  assert.deepEqual(h.yMin, yMin);
  assert.deepEqual(h.slots.map((s) => [s.t, s.counts]), [[1000, [0, 1, 0]], [2000, [4, 0, 2]]]);
  assert.deepEqual(h.slots[1].exemplars, [{ t: 1990, value: 350, profileId: PROFILE, labels: {} }]);
  assert.deepEqual(heatmapFromJSON({}), { yMin: [], slots: [] });
});
