// The UI's module structure: index.html reaches every module through relative imports, and the pure
// modules stay free of the DOM (so these tests can run them under Node).

import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const UI = fileURLToPath(new URL("../../Sources/QueryAPI/UI/", import.meta.url));

const PURE_MODULES = [
  "format.js", "selector.js", "url-state.js", "time-range.js", "profile-types.js", "function-names.js",
  "timeline-data.js", "flame-model.js", "table-rows.js", "regression-rows.js", "span-selector.js", "rule-form.js",
  "profile-selector.js",
];

const read = (name) => readFileSync(join(UI, name), "utf8");

/** The `./x.js` files a module imports (the same patterns UIRoutesTests follows). */
function relativeImports(source) {
  const found = [];
  for (const re of [/from\s+"\.\/([^"]+)"/g, /import\s*\(\s*"\.\/([^"]+)"\s*\)/g, /import\s+"\.\/([^"]+)"/g]) {
    for (const m of source.matchAll(re)) found.push(m[1]);
  }
  return found;
}

test("the pages (index.html, rules.html) load every module in the folder through relative imports", () => {
  const pending = [];
  for (const [page, entry] of [["index.html", "app.js"], ["rules.html", "rules.js"]]) {
    const scripts = [...read(page).matchAll(/<script[^>]*\ssrc="\/ui\/([^"]+\.js)"/g)].map((m) => m[1]);
    assert.deepEqual(scripts, [entry], page);
    pending.push(...scripts);
  }
  const seen = new Set();
  while (pending.length) {
    const name = pending.pop();
    if (seen.has(name)) continue;
    assert.ok(existsSync(join(UI, name)), `${name} is imported but missing`);
    seen.add(name);
    pending.push(...relativeImports(read(name)));
  }
  const all = readdirSync(UI).filter((f) => f.endsWith(".js")).sort();
  assert.deepEqual([...seen].sort(), all);
});

test("imports use double-quoted ./ paths, the form UIRoutesTests follows", () => {
  for (const name of readdirSync(UI).filter((f) => f.endsWith(".js"))) {
    const statements = read(name).match(/^import\s[^;]*;/gm) || [];
    for (const s of statements) assert.match(s, /from "\.\/[\w-]+\.js";$/, `${name}: ${s}`);
  }
});

test("pure modules import only pure modules and touch no browser globals", () => {
  const browserGlobal = /\b(document|window|location|history|navigator|localStorage)\s*\.|\bnew\s+ResizeObserver\b|\bfetch\s*\(/;
  for (const name of PURE_MODULES) {
    const source = read(name);
    for (const imported of relativeImports(source)) {
      assert.ok(PURE_MODULES.includes(imported), `${name} imports ${imported}, which is not pure`);
    }
    assert.doesNotMatch(source, browserGlobal, `${name} uses a browser global`);
  }
});

test("every pure module loads under Node and exports functions", async () => {
  for (const name of PURE_MODULES) {
    const module = await import(new URL(name, `file://${UI}`).href);
    const functions = Object.values(module).filter((v) => typeof v === "function");
    assert.ok(functions.length > 0, `${name} exports no functions`);
  }
});
