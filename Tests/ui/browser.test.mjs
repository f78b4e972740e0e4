// The UI in headless Chromium against a fake query server: what only a browser shows (layout) and the
// issue's bugs end to end. Skipped without Chromium unless KILN_REQUIRE_INTEGRATION=1.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startFakeQueryServer, findChromium, renderDOM, bodyData } from "./fake-query-server.mjs";

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
});`;

async function render(query, seriesOffsets) {
  const server = await startFakeQueryServer({
    stacks: STACKS,
    pageScript: PROBE,
    // A profile `s` seconds into the range, as SelectSeries answers it: a point at the end of its step.
    seriesPoints: (start, end, step) => seriesOffsets.map((s) => ({
      timestamp: String(start + Math.ceil((s * 1000) / step) * step), value: 2e9,
    })),
  });
  try {
    const dom = await renderDOM(chromium, `${server.url}/${query}`, { width: 1280, height: 800 });
    const probe = bodyData(dom, "probe");
    assert.ok(probe, "the page's probe did not run");
    return JSON.parse(probe);
  } finally {
    await server.close();
  }
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

before(() => { if (required && !chromium) throw new Error("KILN_REQUIRE_INTEGRATION=1 but no chromium binary"); });
