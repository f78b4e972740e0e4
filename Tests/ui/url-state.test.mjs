import test from "node:test";
import assert from "node:assert/strict";
import { parseViewState, viewStateQuery, splitList, DEFAULTS } from "../../Sources/QueryAPI/UI/url-state.js";

const CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

test("an empty query string gives the defaults", () => {
  assert.deepEqual(parseViewState(""), {
    view: "single", profileType: "", selector: "", from: "now-1h", until: "now", spans: [], profiles: [], heatmap: false,
    leftSelector: "", rightSelector: "", leftFrom: "", leftUntil: "", rightFrom: "", rightUntil: "",
    search: "", sort: "", maxNodes: DEFAULTS.maxNodes,
  });
});

test("every parameter is read", () => {
  const q = "?view=diff&query=" + encodeURIComponent(`${CPU}{service_name="shop"}`) +
    "&from=now-6h&until=now&spanSelector=9a517183f26a089d,5a4fe264a9c987fe&leftQuery=%7Bversion%3D%221.4%22%7D&rightQuery=%7Bversion%3D%221.5%22%7D" +
    "&leftFrom=1764090000000&leftUntil=1764093600000&rightFrom=now-1h&rightUntil=now&search=json&sort=-name&maxNodes=1024";
  assert.deepEqual(parseViewState(q), {
    view: "diff", profileType: CPU, selector: '{service_name="shop"}', from: "now-6h", until: "now",
    spans: ["9a517183f26a089d", "5a4fe264a9c987fe"], profiles: [], heatmap: false, leftSelector: '{version="1.4"}', rightSelector: '{version="1.5"}',
    leftFrom: "1764090000000", leftUntil: "1764093600000", rightFrom: "now-1h", rightUntil: "now",
    search: "json", sort: "-name", maxNodes: 1024,
  });
});

test("an unknown view is the single view; maxNodes is kept within 16 and 2^20", () => {
  assert.equal(parseViewState("view=flame").view, "single");
  assert.equal(parseViewState("maxNodes=3").maxNodes, 16);
  assert.equal(parseViewState("maxNodes=99999999").maxNodes, 1 << 20);
  assert.equal(parseViewState("maxNodes=lots").maxNodes, DEFAULTS.maxNodes);
});

test("search text with spaces and symbols survives the round trip", () => {
  const state = { ...parseViewState(""), profileType: CPU, selector: "{}", search: 'encoding/json.(*encodeState) "x" & y' };
  assert.equal(parseViewState(viewStateQuery(state)).search, 'encoding/json.(*encodeState) "x" & y');
});

test("viewStateQuery leaves out defaults and, in the single view, the comparison's fields", () => {
  const single = { ...parseViewState(""), profileType: CPU, selector: '{service_name="shop"}',
    leftFrom: "1", leftUntil: "2", leftSelector: '{a="b"}' };
  const params = new URLSearchParams(viewStateQuery(single));
  assert.deepEqual([...params.keys()], ["query", "from", "until"]);
  assert.equal(params.get("query"), `${CPU}{service_name="shop"}`);
});

test("viewStateQuery keeps a side's selector only when it differs from the main one", () => {
  const diff = { ...parseViewState(""), view: "diff", profileType: CPU, selector: '{service_name="shop"}',
    leftSelector: '{service_name="shop"}', rightSelector: '{service_name="shop", version="2"}',
    rightFrom: "now-30m", rightUntil: "now", sort: "delta", maxNodes: 512 };
  const params = new URLSearchParams(viewStateQuery(diff));
  assert.equal(params.get("view"), "diff");
  assert.equal(params.has("leftQuery"), false);
  assert.equal(params.get("rightQuery"), '{service_name="shop", version="2"}');
  assert.equal(params.get("rightFrom"), "now-30m");
  assert.equal(params.has("leftFrom"), false);
  assert.equal(params.get("sort"), "delta");
  assert.equal(params.get("maxNodes"), "512");
  assert.deepEqual(parseViewState(viewStateQuery(diff)), { ...diff, leftSelector: "" });
});

test("spanSelector is read comma-separated or repeated, and written back as one comma-separated value", () => {
  const spans = ["9a517183f26a089d", "5a4fe264a9c987fe"];
  assert.deepEqual(parseViewState("spanSelector=9a517183f26a089d,5a4fe264a9c987fe").spans, spans);
  assert.deepEqual(parseViewState("spanSelector=9a517183f26a089d&spanSelector=5a4fe264a9c987fe").spans, spans);
  assert.deepEqual(parseViewState("spanSelector=9a517183f26a089d%2C5a4fe264a9c987fe").spans, spans);
  const state = { ...parseViewState(""), profileType: CPU, selector: "{}", spans };
  const params = new URLSearchParams(viewStateQuery(state));
  assert.deepEqual(params.getAll("spanSelector"), ["9a517183f26a089d,5a4fe264a9c987fe"]);
  assert.deepEqual(parseViewState(viewStateQuery(state)), state);
});

test("a trace view's link round-trips, and no span filter writes no spanSelector", () => {
  const link = `query=${encodeURIComponent(`${CPU}{service_name="shop"}`)}&from=1764090000000&until=1764093600000` +
    "&spanSelector=9a517183f26a089d";
  const state = parseViewState(link);
  assert.deepEqual(state.spans, ["9a517183f26a089d"]);
  assert.equal(viewStateQuery(state), link);
  assert.equal(new URLSearchParams(viewStateQuery({ ...state, spans: [] })).has("spanSelector"), false);
});

test("entries that are not span IDs are kept in the state and the URL, to be reported", () => {
  const state = parseViewState("spanSelector=9a517183f26a089d,not-a-span");
  assert.deepEqual(state.spans, ["9a517183f26a089d", "not-a-span"]);
  assert.equal(new URLSearchParams(viewStateQuery(state)).get("spanSelector"), "9a517183f26a089d,not-a-span");
});

test("splitList reads comma-separated and repeated values, in order, without blanks or repeats", () => {
  assert.deepEqual(splitList(["9a517183f26a089d,5a4fe264a9c987fe"]), ["9a517183f26a089d", "5a4fe264a9c987fe"]);
  assert.deepEqual(splitList(["9a517183f26a089d", "5a4fe264a9c987fe"]), ["9a517183f26a089d", "5a4fe264a9c987fe"]);
  assert.deepEqual(splitList([" 9a517183f26a089d , ,5a4fe264a9c987fe,", "9a517183f26a089d"]), ["9a517183f26a089d", "5a4fe264a9c987fe"]);
  assert.deepEqual(splitList([]), []);
  assert.deepEqual(splitList([""]), []);
  assert.deepEqual(splitList(undefined), []);
});

test("splitList keeps entries that are not span IDs, so they can be reported (span IDs, profile IDs)", () => {
  assert.deepEqual(splitList(["not-a-span,ff"]), ["not-a-span", "ff"]);
});

test("profileId is read as a list and written only for the single view", () => {
  const id = "018f0c2a-4b3d-7e21-8a4f-00000000abcd";
  const state = parseViewState(`?profileId=${id}`);
  assert.deepEqual(state.profiles, [id]);
  assert.match(viewStateQuery(state), new RegExp(`profileId=${id}`));
  assert.doesNotMatch(viewStateQuery({ ...state, view: "diff" }), /profileId/);
});

test("timeline=heatmap is read and written for the single view only", () => {
  const state = parseViewState("?timeline=heatmap");
  assert.equal(state.heatmap, true);
  assert.match(viewStateQuery(state), /timeline=heatmap/);
  assert.doesNotMatch(viewStateQuery({ ...state, view: "diff" }), /timeline/);
  assert.doesNotMatch(viewStateQuery({ ...state, heatmap: false }), /timeline/);
});
