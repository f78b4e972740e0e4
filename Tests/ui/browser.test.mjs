// The UI in headless Chromium against a fake query server: what only a browser shows (layout) and the
// issue's bugs end to end. Skipped without Chromium unless KILN_REQUIRE_INTEGRATION=1.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startFakeQueryServer, findChromium, renderDOM, bodyData, CPU_TYPE } from "./fake-query-server.mjs";

const chromium = findChromium();
const required = process.env.KILN_REQUIRE_INTEGRATION === "1";
const skip = !chromium && !required ? "needs chromium (apt-get install chromium) or KILN_CHROMIUM" : false;

// 450 functions (more than the table's 400 rows, so it has a "more functions" row) with long Go names.
const STACKS = Array.from({ length: 450 }, (_, i) => ({
  frames: ["runtime.main", "github.com/jetsetilly/gopher2600/hardware/cpu.(*CPU).ExecuteInstruction",
    `github.com/jetsetilly/gopher2600/hardware/memory/bus.Read${i}`],
  value: 1_000_000 + i * 1000,
}));

// Runs in the page once it has loaded: measures what the tests check into <body data-probe>.
const PROBE = `
const idle = () => new Promise((r) => { const check = () => document.body.dataset.state === "loading" ? setTimeout(check, 20) : r(); check(); });
await idle();
const rect = (e) => e.getBoundingClientRect();
const header = document.querySelector("header.bar");
const items = [...header.children].map(rect);
const area = document.querySelector("#timeline path.area");
const runs = area ? area.getAttribute("d").split("M").filter(Boolean).map((run) => {
  const xs = [...run.matchAll(/(?:^|L)(-?[\\d.]+),/g)].map((m) => Number(m[1]));
  return Math.max(...xs) - Math.min(...xs);
}) : [];
const firstName = document.querySelector("#functions tbody tr[data-function] td.name");
const func = firstName && firstName.querySelector(".fn-func");
const path = firstName && firstName.querySelector(".fn-path");
document.body.dataset.probe = JSON.stringify({
  state: document.body.dataset.state,
  error: document.getElementById("error").hidden ? "" : document.getElementById("error").textContent,
  headerInOneRow: items.every((a) => items.every((b) => a.top < b.bottom && b.top < a.bottom)),
  headerOverflows: header.scrollWidth > header.clientWidth,
  headerRight: Math.max(...items.map((b) => b.right)),
  matchedRows: document.querySelectorAll("#functions tbody tr.match").length,
  moreRow: document.querySelector("#functions tr.more")?.textContent || "",
  runWidths: runs,
  firstFunction: firstName?.closest("tr").dataset.function,
  funcText: func?.textContent,
  funcFullyShown: !!func && func.scrollWidth <= func.clientWidth && rect(func).right <= rect(firstName).right + 0.5,
  pathElided: !!path && path.scrollWidth > path.clientWidth,
  nameTitle: firstName?.closest("tr").title,
  explainShown: document.getElementById("explain").offsetParent !== null,
});`;

/** Opens `query` on a fake server started with `options`; the probe's findings and the server's requests. */
async function renderWith(query, options) {
  const server = await startFakeQueryServer(options);
  try {
    const dom = await renderDOM(chromium, `${server.url}/${query}`, { width: 1280, height: 800 });
    const probe = bodyData(dom, "probe");
    assert.ok(probe, "the page's probe did not run");
    return { page: JSON.parse(probe), regressionRequests: server.regressionRequests, rpcRequests: server.rpcRequests };
  } finally {
    await server.close();
  }
}

async function render(query, seriesOffsets) {
  const { page } = await renderWith(query, {
    stacks: STACKS,
    pageScript: PROBE,
    // A profile `s` seconds into the range, as SelectSeries answers it: a point at the end of its step.
    seriesPoints: (start, end, step) => seriesOffsets.map((s) => ({
      timestamp: String(start + Math.ceil((s * 1000) / step) * step), value: 2e9,
    })),
  });
  return page;
}

describe("at 1280 px, opened with ?search= and a single profile", { skip, timeout: 120_000 }, () => {
  let page;
  before(async () => { page = await render("?search=gophe", [1800]); });

  it("loads without an error", () => {
    assert.equal(page.error, "");
    assert.equal(page.state, "ready");
  });

  it("highlights the matching rows and keeps the more-functions row", () => {
    assert.equal(page.matchedRows, 400);
    assert.equal(page.moreRow, "52 more functions; search to find one"); // 452 functions, 400 shown
  });

  it("draws the single profile as an area one step wide", () => {
    assert.equal(page.runWidths.length, 1);
    assert.ok(page.runWidths[0] >= 3, `width ${page.runWidths[0]} px`); // 15 s of an hour on ~1200 px
  });

  it("offers no explanation outside the comparison view", () => {
    assert.equal(page.explainShown, false);
  });

  it("keeps the header in one row inside the window", () => {
    assert.equal(page.headerInOneRow, true);
    assert.equal(page.headerOverflows, false);
    assert.ok(page.headerRight <= 1280, `header ends at ${page.headerRight} px`);
  });

  it("shows the function and elides the package path in the table", () => {
    assert.equal(page.firstFunction, "github.com/jetsetilly/gopher2600/hardware/memory/bus.Read449");
    assert.equal(page.funcText, "bus.Read449");
    assert.equal(page.funcFullyShown, true);
    assert.equal(page.pathElided, true);
    assert.equal(page.nameTitle, page.firstFunction, "the full name on hover");
  });
});

describe("profiles ten minutes apart", { skip, timeout: 120_000 }, () => {
  it("are drawn as separate areas, with a continuous run kept whole", async () => {
    // Three lone profiles, then five consecutive 15 s steps.
    const page = await render("", [600, 1200, 1800, 2400, 2415, 2430, 2445, 2460]);
    assert.equal(page.runWidths.length, 4);
    const [a, b, c, run] = page.runWidths;
    assert.ok(Math.min(a, b, c) >= 3, `lone profiles are a step wide: ${page.runWidths}`);
    assert.ok(run > 3 * Math.max(a, b, c), `runs ${page.runWidths}`);
  });
});

// The comparison: hashLoop's share grew from 30% to 55%, all of it under cpuWorker (20% → 45%; under
// ioWorker it stayed at 10%); parse shrank, compress vanished, encode is new.
const BASELINE_STACKS = [
  { frames: ["runtime.goexit", "main.cpuWorker", "main.hashLoop"], value: 20e9 },
  { frames: ["runtime.goexit", "main.cpuWorker", "main.parse"], value: 50e9 },
  { frames: ["runtime.goexit", "main.ioWorker", "main.hashLoop"], value: 10e9 },
  { frames: ["runtime.goexit", "main.ioWorker", "main.compress"], value: 20e9 },
];
const COMPARISON_STACKS = [
  { frames: ["runtime.goexit", "main.cpuWorker", "main.hashLoop"], value: 45e9 },
  { frames: ["runtime.goexit", "main.cpuWorker", "main.parse"], value: 35e9 },
  { frames: ["runtime.goexit", "main.ioWorker", "main.hashLoop"], value: 10e9 },
  { frames: ["runtime.goexit", "main.ioWorker", "main.encode"], value: 10e9 },
];

// Runs in the page: clicks "Explain this difference", reads the list, clicks its first row and reads
// what the flame graph and the function table then show.
const EXPLAIN_PROBE = `
const until = (done) => new Promise((r) => { const check = () => done() ? r() : setTimeout(check, 20); check(); });
const pause = () => new Promise((r) => setTimeout(r, 50));
const $ = (id) => document.getElementById(id);
const graph = () => ({
  zoomInfo: $("zoom-info").textContent,
  zoomedFrames: window.kiln.zoomedFrames(),
  canvasLabel: $("flame-canvas").getAttribute("aria-label"),
  search: $("search").value,
  resetZoomDisabled: $("reset-zoom").disabled,
  matchedTableRows: [...document.querySelectorAll("#functions tbody tr.match")].map((tr) => tr.dataset.function),
});
await until(() => document.body.dataset.state !== "loading");
const header = [...document.querySelector("header.bar").children].map((e) => e.getBoundingClientRect());
const opened = { explainShown: $("explain").offsetParent !== null, panelHidden: $("explain-panel").hidden, ...graph() };
$("explain").click();
await until(() => !["closed", "loading"].includes($("explain-panel").dataset.state));
const rows = [...document.querySelectorAll("#explain-table tr[data-index]")];
const listed = {
  state: $("explain-panel").dataset.state,
  summary: $("explain-summary").textContent,
  message: $("explain-message").hidden ? "" : $("explain-message").textContent,
  sections: [...document.querySelectorAll("#explain-table tr.section")].map((tr) => tr.textContent),
  rows: rows.map((tr) => [tr.dataset.kind, tr.dataset.function, ...[...tr.cells].slice(1).map((td) => td.textContent)]),
};
rows[0]?.click();
await pause();
document.body.dataset.probe = JSON.stringify({
  state: document.body.dataset.state,
  error: $("error").hidden ? "" : $("error").textContent,
  headerInOneRow: header.every((a) => header.every((b) => a.top < b.bottom && b.top < a.bottom)),
  opened, listed,
  focused: {
    ...graph(),
    selected: document.querySelector('#explain-table tr[aria-current="true"]')?.dataset.function ?? "",
    url: location.search,
  },
});`;

// The baseline's labels hold a space and a plus, which form decoding would confuse if left unescaped.
const BASELINE_SELECTOR = '{service_name="gopher", version="1.2+b"}';
const DIFF_PAGE = `?view=diff&leftQuery=${encodeURIComponent(BASELINE_SELECTOR)}`;

describe("explaining a comparison at 1280 px", { skip, timeout: 120_000 }, () => {
  let page, requests;
  before(async () => {
    ({ page, regressionRequests: requests } = await renderWith(DIFF_PAGE, {
      stacks: BASELINE_STACKS, comparisonStacks: COMPARISON_STACKS, pageScript: EXPLAIN_PROBE,
    }));
  });

  it("shows the button in the comparison view, with the header still in one row", () => {
    assert.equal(page.error, "");
    assert.equal(page.state, "ready");
    assert.equal(page.opened.explainShown, true);
    assert.equal(page.opened.panelHidden, true, "the list waits for the click");
    assert.equal(page.headerInOneRow, true);
  });

  it("asks for the report of the sides the diff view compares", () => {
    assert.equal(requests.length, 1);
    const [r] = requests;
    assert.equal(r.baselineQuery, CPU_TYPE.ID + BASELINE_SELECTOR);
    assert.equal(r.comparisonQuery, `${CPU_TYPE.ID}{service_name="gopher"}`);
    // No side ranges in the URL: the baseline is the first half of the last hour, the comparison the second.
    const [bf, bu, cf, cu] = [r.baselineFrom, r.baselineUntil, r.comparisonFrom, r.comparisonUntil].map(Number);
    assert.ok(bf < bu && bu === cf && cf < cu, JSON.stringify(r));
    assert.ok(Math.abs(cu - bf - 3600e3) <= 1, `the two sides span ${cu - bf} ms`);
  });

  it("lists the regressions ranked, then new, improved and vanished functions, with a summary", () => {
    const { listed } = page;
    assert.equal(listed.state, "ready");
    assert.equal(listed.message, "");
    assert.match(listed.summary, /^40 profiles in the baseline, 38 in the comparison · Mann–Whitney U[^·]*, α = 0\.05 · 5 functions tested$/);
    assert.deepEqual(listed.rows[0], ["regression", "main.hashLoop", "30.0%", "55.0%", "+25.0 pp", "3.2e-8"]);
    assert.deepEqual(listed.rows[4], ["improvement", "main.ioWorker", "30.0%", "20.0%", "-10.0 pp", "3.2e-8"]);
    assert.deepEqual(listed.rows[5], ["vanished", "main.compress", "20.0%", "0%", "-20.0 pp", ""]);
    assert.deepEqual(listed.rows.map((r) => r.slice(0, 2)), [
      ["regression", "main.hashLoop"], ["regression", "main.cpuWorker"], ["new", "main.encode"],
      ["improvement", "main.parse"], ["improvement", "main.ioWorker"], ["vanished", "main.compress"],
    ]);
    assert.deepEqual(listed.sections, [
      "Grew significantly (2)", "New in the comparison (1)", "Shrank significantly (2)", "Gone from the comparison (1)",
    ]);
  });

  it("focuses the diff flame graph on the clicked function, where it grew", () => {
    const { opened, focused } = page;
    assert.deepEqual([opened.zoomInfo, opened.zoomedFrames, opened.search], ["", [], ""], "not focused before the click");
    assert.deepEqual(focused.zoomedFrames, ["runtime.goexit", "main.cpuWorker", "main.hashLoop"]);
    assert.equal(focused.zoomInfo, "zoomed to main.hashLoop");
    assert.match(focused.canvasLabel, /^Diff flame graph zoomed to main\.hashLoop:/);
    assert.equal(focused.resetZoomDisabled, false);
    assert.equal(focused.selected, "main.hashLoop");
  });

  it("highlights the function in the graph and the table, and keeps that in the URL", () => {
    const { focused } = page;
    assert.equal(focused.search, "main.hashLoop");
    assert.deepEqual(focused.matchedTableRows, ["main.hashLoop"]);
    assert.match(focused.url, /[?&]search=main\.hashLoop(&|$)/);
  });
});

describe("explaining a comparison without a significant change", { skip, timeout: 120_000 }, () => {
  it("says so, and names the largest change judged noise", async () => {
    const { page } = await renderWith("?view=diff", { stacks: BASELINE_STACKS, pageScript: EXPLAIN_PROBE });
    assert.equal(page.listed.state, "empty");
    assert.deepEqual(page.listed.rows, []);
    assert.match(page.listed.message, /^No significant change\./);
    assert.deepEqual(page.focused.zoomedFrames, []);
  });
});

describe("explaining a comparison the server cannot", { skip, timeout: 120_000 }, () => {
  it("shows the server's message in the panel and leaves the graph alone", async () => {
    const { page } = await renderWith("?view=diff", {
      stacks: BASELINE_STACKS, comparisonStacks: COMPARISON_STACKS, pageScript: EXPLAIN_PROBE,
      regressionsError: { status: 503, code: "unavailable", message: "the profile store is not reachable" },
    });
    assert.equal(page.listed.state, "error");
    assert.equal(page.listed.message, "Explaining the difference failed (unavailable): the profile store is not reachable");
    assert.deepEqual(page.listed.rows, []);
    assert.equal(page.error, "", "the page's own error box stays for the graph's errors");
    assert.equal(page.state, "ready");
  });
});

// A trace view's link: two spans' samples among others'. 9a51… ran checkout, 5a4f… search; the
// background work belongs to no span.
const SPAN_STACKS = [
  { frames: ["runtime.main", "main.handleCheckout", "main.chargeCard"], value: 3e9, spanID: "9a517183f26a089d" },
  { frames: ["runtime.main", "main.handleSearch", "main.queryIndex"], value: 5e9, spanID: "5a4fe264a9c987fe" },
  { frames: ["runtime.main", "main.backgroundFlush"], value: 7e9 },
];
const ALL_SPAN_STACK_FUNCTIONS = [
  "main.backgroundFlush", "main.chargeCard", "main.handleCheckout", "main.handleSearch", "main.queryIndex", "runtime.main",
];

// Runs in the page: reads the span filter's chip, the table and the error, then (with `clear`) clicks
// the chip's × and reads them again.
const spanProbe = ({ clear }) => `
const until = (done) => new Promise((r) => { const check = () => done() ? r() : setTimeout(check, 20); check(); });
const idle = () => until(() => document.body.dataset.state !== "loading");
const $ = (id) => document.getElementById(id);
const look = () => {
  const header = [...document.querySelector("header.bar").children].map((e) => e.getBoundingClientRect());
  const toolbarBox = $("span-filter").parentElement;
  const chip = $("span-filter").getBoundingClientRect(), toolbar = toolbarBox.getBoundingClientRect();
  return {
    state: document.body.dataset.state,
    error: $("error").hidden ? "" : $("error").textContent,
    url: location.search,
    chipShown: !$("span-filter").hidden && chip.width > 0,
    chipInToolbar: chip.right <= toolbar.right && chip.top >= toolbar.top && chip.bottom <= toolbar.bottom,
    chipText: $("span-filter-text").textContent,
    chipCountShown: $("span-filter-more").scrollWidth <= $("span-filter-more").getBoundingClientRect().width + 0.5 &&
      $("span-filter-more").getBoundingClientRect().right <= $("span-filter-text").getBoundingClientRect().right + 0.5,
    toolbarFits: toolbarBox.scrollWidth <= toolbarBox.clientWidth,
    chipTitle: $("span-filter").title,
    timelineTitle: $("timeline").title,
    functions: [...document.querySelectorAll("#functions tbody tr[data-function]")].map((tr) => tr.dataset.function).sort(),
    headerInOneRow: header.every((a) => header.every((b) => a.top < b.bottom && b.top < a.bottom)),
  };
};
await idle();
const opened = look();
let cleared = null;
if (${clear}) {
  $("span-filter-clear").click();
  await idle();
  cleared = look();
}
document.body.dataset.probe = JSON.stringify({ opened, cleared });`;

const SPAN_LINK = `?query=${encodeURIComponent(`${CPU_TYPE.ID}{service_name="gopher"}`)}&from=now-1h&until=now` +
  "&spanSelector=9a517183f26a089d,00000000deadbeef";

describe("opened from a trace view with ?spanSelector=", { skip, timeout: 120_000 }, () => {
  let page, requests;
  const calls = (method) => requests.filter((r) => r.method === method).map((r) => r.body);
  before(async () => {
    ({ page, rpcRequests: requests } = await renderWith(SPAN_LINK, { stacks: SPAN_STACKS, pageScript: spanProbe({ clear: true }) }));
  });

  it("asks for the flame graph of those spans only, and the timeline of all samples", () => {
    const [first] = calls("SelectMergeStacktraces");
    assert.deepEqual(first.spanSelector, ["9a517183f26a089d", "00000000deadbeef"]);
    assert.ok(calls("SelectSeries").length > 0);
    assert.ok(calls("SelectSeries").every((body) => !("spanSelector" in body)), "SelectSeries refuses spanSelector");
  });

  it("shows the spans' samples, and the filter as a chip that says the timeline is not filtered", () => {
    const { opened } = page;
    assert.equal(opened.error, "");
    assert.equal(opened.state, "ready");
    assert.deepEqual(opened.functions, ["main.chargeCard", "main.handleCheckout", "runtime.main"]);
    assert.equal(opened.chipShown, true);
    assert.equal(opened.chipInToolbar, true);
    assert.equal(opened.chipText, "Spans: 9a517183f26a089d, +1 more");
    assert.equal(opened.chipCountShown, true);
    assert.equal(opened.toolbarFits, true);
    assert.match(opened.chipTitle, /only the samples of spans 9a517183f26a089d, 00000000deadbeef\. The timeline shows all samples\./);
    assert.match(opened.timelineTitle, /All samples/);
    assert.equal(opened.headerInOneRow, true);
  });

  it("drops the filter from the URL and the next request when the chip's × is clicked", () => {
    const { opened, cleared } = page;
    assert.match(opened.url, /[?&]spanSelector=9a517183f26a089d(,|%2C)00000000deadbeef(&|$)/);
    assert.doesNotMatch(cleared.url, /spanSelector/);
    assert.match(cleared.url, /[?&]query=/, "the rest of the view stays");
    const merges = calls("SelectMergeStacktraces");
    assert.equal(merges.length, 2);
    assert.equal("spanSelector" in merges[1], false);
    assert.equal(cleared.state, "ready");
    assert.equal(cleared.chipShown, false);
    assert.deepEqual(cleared.functions, ALL_SPAN_STACK_FUNCTIONS);
    assert.doesNotMatch(cleared.timelineTitle, /All samples/);
  });
});

describe("comparing with ?spanSelector=", { skip, timeout: 120_000 }, () => {
  it("filters both sides of the diff to the spans, with the chip's count shown in the diff toolbar", async () => {
    const { page, rpcRequests } = await renderWith("?view=diff&spanSelector=5a4fe264a9c987fe,00000000deadbeef", {
      stacks: SPAN_STACKS, pageScript: spanProbe({ clear: false }),
    });
    const spans = ["5a4fe264a9c987fe", "00000000deadbeef"];
    const [diff] = rpcRequests.filter((r) => r.method === "Diff").map((r) => r.body);
    assert.deepEqual([diff.left.spanSelector, diff.right.spanSelector], [spans, spans]);
    assert.equal(page.opened.error, "");
    assert.equal(page.opened.chipText, "Spans: 5a4fe264a9c987fe, +1 more");
    assert.equal(page.opened.chipCountShown, true);
    assert.equal(page.opened.toolbarFits, true);
    assert.equal(page.opened.headerInOneRow, true);
    assert.match(page.opened.chipTitle, /The timelines and Explain this difference use all samples\./);
    assert.deepEqual(page.opened.functions, ["main.handleSearch", "main.queryIndex", "runtime.main"]);
  });
});

describe("a spanSelector that is not span IDs", { skip, timeout: 120_000 }, () => {
  it("is reported in the error bar and not sent; × clears it", async () => {
    const { page, rpcRequests } = await renderWith("?spanSelector=9a517183f26a089d,trace-42", {
      stacks: SPAN_STACKS, pageScript: spanProbe({ clear: true }),
    });
    const { opened, cleared } = page;
    assert.equal(opened.state, "error");
    assert.equal(opened.error, 'Error: spanSelector "trace-42" is not a span ID (1 to 16 hex digits). Correct the URL, or remove the span filter with its ×.');
    assert.equal(opened.chipShown, true);
    assert.equal(opened.chipText, "Spans: 9a517183f26a089d, +1 more");
    const sent = rpcRequests.filter((r) => "spanSelector" in r.body);
    assert.deepEqual(sent, [], "nothing carried the bad list");
    assert.equal(cleared.state, "ready");
    assert.equal(cleared.error, "");
    assert.deepEqual(cleared.functions, ALL_SPAN_STACK_FUNCTIONS);
  });
});

// Two profiles of one service, 10 and 40 minutes into the last hour, each its own stacks.
const PROFILE_A = "018f0c2a-4b3d-7e21-8a4f-00000000000a", PROFILE_B = "018f0c2a-4b3d-7e21-8a4f-00000000000b";
const PROFILE_STACKS = [
  { frames: ["runtime.main", "main.handleCheckout"], value: 3e9, profileId: PROFILE_A },
  { frames: ["runtime.main", "main.handleSearch"], value: 5e9, profileId: PROFILE_B },
];

// Runs in the page: reads the timeline's exemplar dots, clicks the first, reads the flame graph's
// functions and the chip, then clicks the chip's × and reads them again.
const exemplarProbe = `
const until = (done) => new Promise((r) => { const check = () => done() ? r() : setTimeout(check, 20); check(); });
const idle = () => until(() => document.body.dataset.state !== "loading");
const $ = (id) => document.getElementById(id);
const dots = () => [...document.querySelectorAll("#timeline circle.exemplar")];
const look = () => ({
  state: document.body.dataset.state,
  error: $("error").hidden ? "" : $("error").textContent,
  url: location.search,
  dots: dots().map((d) => ({ id: d.dataset.profileId, selected: d.classList.contains("selected"), title: d.querySelector("title")?.textContent || "" })),
  chipShown: !$("profile-filter").hidden,
  chipText: $("profile-filter-text").textContent,
  functions: [...document.querySelectorAll("#functions tbody tr[data-function]")].map((tr) => tr.dataset.function).sort(),
});
await idle();
await until(() => dots().length > 0 || document.body.dataset.state !== "ready");
const opened = look();
dots()[0]?.dispatchEvent(new MouseEvent("click", { bubbles: true }));
await until(() => location.search.includes("profileId"));
await idle();
const picked = look();
$("profile-filter-clear").click();
await until(() => !location.search.includes("profileId"));
await idle();
const cleared = look();
document.body.dataset.probe = JSON.stringify({ opened, picked, cleared });`;

describe("exemplars on the timeline", { skip, timeout: 120_000 }, () => {
  let page, requests;
  const calls = (method) => requests.filter((r) => r.method === method).map((r) => r.body);
  before(async () => {
    const query = `?query=${encodeURIComponent(`${CPU_TYPE.ID}{service_name="gopher"}`)}&from=now-1h&until=now`;
    ({ page, rpcRequests: requests } = await renderWith(query, {
      stacks: PROFILE_STACKS, pageScript: exemplarProbe,
      seriesPoints: (start, end, step) => [600, 2400].map((s) => ({ timestamp: String(start + Math.ceil((s * 1000) / step) * step), value: 8e9 })),
      exemplars: (start) => [
        { profileId: PROFILE_A, timestamp: start + 600_000 - 1000, value: 3e9 },
        { profileId: PROFILE_B, timestamp: start + 2_400_000 - 1000, value: 5e9 },
      ],
    }));
  });

  it("asks SelectSeries for individual exemplars and draws a dot per exemplar", () => {
    assert.ok(calls("SelectSeries").every((b) => b.exemplarType === "EXEMPLAR_TYPE_INDIVIDUAL"));
    assert.equal(page.opened.error, "");
    assert.deepEqual(page.opened.dots.map((d) => d.id), [PROFILE_A, PROFILE_B]);
    assert.match(page.opened.dots[0].title, /^Profile at .*Click to open it alone$/);
    assert.equal(page.opened.chipShown, false);
  });

  it("opens the clicked profile alone: its ID in the URL and the request, a chip, its functions only", () => {
    const { picked } = page;
    assert.match(picked.url, new RegExp(`[?&]profileId=${PROFILE_A}(&|$)`));
    const merges = calls("SelectMergeStacktraces");
    assert.deepEqual(merges[1].profileIdSelector, [PROFILE_A]);
    assert.equal(picked.state, "ready");
    assert.deepEqual(picked.functions, ["main.handleCheckout", "runtime.main"]);
    assert.equal(picked.chipShown, true);
    assert.match(picked.chipText, /^Profile at /);
    assert.deepEqual(picked.dots.map((d) => d.selected), [true, false]);
  });

  it("the chip's × shows every profile again", () => {
    const { cleared } = page;
    assert.doesNotMatch(cleared.url, /profileId/);
    // The whole range's flame graph is the first answer again (the page reuses it rather than asking twice).
    assert.equal(calls("SelectMergeStacktraces").length, 2);
    assert.equal("profileIdSelector" in calls("SelectMergeStacktraces")[0], false);
    assert.deepEqual(cleared.functions, ["main.handleCheckout", "main.handleSearch", "runtime.main"]);
    assert.equal(cleared.chipShown, false);
  });
});

// Runs in the page: reads the heatmap's cells, clicks the one that names a profile, reads the URL and chip.
const heatmapProbe = `
const until = (done) => new Promise((r) => { const check = () => done() ? r() : setTimeout(check, 20); check(); });
const idle = () => until(() => document.body.dataset.state !== "loading");
const $ = (id) => document.getElementById(id);
const cells = () => [...document.querySelectorAll("#timeline rect.heat-cell")];
await idle();
await until(() => cells().length > 0 || document.body.dataset.state !== "ready");
const opened = {
  error: $("error").hidden ? "" : $("error").textContent,
  cells: cells().map((c) => ({ id: c.dataset.profileId, title: c.querySelector("title")?.textContent || "" })),
  area: !!document.querySelector("#timeline path.area"),
  button: $("timeline-mode").textContent,
};
cells().find((c) => c.dataset.profileId)?.dispatchEvent(new MouseEvent("click", { bubbles: true }));
await until(() => location.search.includes("profileId"));
await idle();
document.body.dataset.probe = JSON.stringify({ opened, url: location.search, chip: $("profile-filter-text").textContent });`;

describe("the timeline as a heatmap (?timeline=heatmap)", { skip, timeout: 120_000 }, () => {
  it("draws SelectHeatmap's cells instead of the sum, and a click on a cell opens its largest profile", async () => {
    const query = `?query=${encodeURIComponent(`${CPU_TYPE.ID}{service_name="gopher"}`)}&from=now-1h&until=now&timeline=heatmap`;
    const { page, rpcRequests } = await renderWith(query, {
      stacks: PROFILE_STACKS, pageScript: heatmapProbe,
      heatmapSlots: (start, end, step) => [{
        timestamp: String(start + 10 * step), yMin: ["1000000000", "3000000000"], counts: [2, 1],
        exemplars: [{ profileId: PROFILE_B, timestamp: String(start + 10 * step - 1000), value: "5000000000" }],
      }],
    });
    const heat = rpcRequests.filter((r) => r.method === "SelectHeatmap").map((r) => r.body);
    assert.equal(heat.length, 1);
    assert.equal(heat[0].queryType, "HEATMAP_QUERY_TYPE_INDIVIDUAL");
    assert.equal(heat[0].exemplarType, "EXEMPLAR_TYPE_INDIVIDUAL");
    assert.equal(page.opened.error, "");
    assert.equal(page.opened.area, false, "the sum is not drawn under the heatmap");
    assert.equal(page.opened.button, "Sum");
    assert.deepEqual(page.opened.cells.map((c) => c.id), ["", PROFILE_B]);
    assert.match(page.opened.cells[0].title, /^2 profiles of /);
    assert.match(page.opened.cells[1].title, /^1 profile of .*Click to open the largest/);
    assert.match(page.url, new RegExp(`profileId=${PROFILE_B}`));
    assert.match(page.url, /timeline=heatmap/);
    assert.match(page.chip, /^Profile at /);
    const merges = rpcRequests.filter((r) => r.method === "SelectMergeStacktraces").map((r) => r.body);
    assert.deepEqual(merges[merges.length - 1].profileIdSelector, [PROFILE_B]);
  });
});

before(() => { if (required && !chromium) throw new Error("KILN_REQUIRE_INTEGRATION=1 but no chromium binary"); });
