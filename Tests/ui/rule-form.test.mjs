// The rules page's pure part: form fields into UpsertRecordingRule requests, rules back into fields and
// rows, and grouped series into chart paths.

import test from "node:test";
import assert from "node:assert/strict";
import { ruleRequest, ruleFields, ruleRow, ruleQuery, selectorMatchers, seriesPaths } from "../../Sources/QueryAPI/UI/rule-form.js";

const CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

test("a new rule's fields become Pyroscope's upsert request", () => {
  const request = ruleRequest({
    metricName: " profiles_recorded_checkout_json ", profileType: CPU, selector: '{service_name="checkout"}',
    groupBy: "service_name, region", function: "encoding/json.Marshal", externalLabels: "team=payments, tier = gold",
  }, null);
  assert.deepEqual(request, {
    metricName: "profiles_recorded_checkout_json",
    matchers: [`{__profile_type__="${CPU}"}`, '{service_name="checkout"}'],
    groupBy: ["service_name", "region"],
    externalLabels: [{ name: "team", value: "payments" }, { name: "tier", value: "gold" }],
    stacktraceFilter: { functionName: { functionName: "encoding/json.Marshal" } },
  });
  assert.equal("id" in request, false, "the server names a new rule");
});

test("an edit carries the rule's id and the generation it was read at", () => {
  const request = ruleRequest({ metricName: "m", profileType: CPU, selector: "", groupBy: "", function: "", externalLabels: "" },
    { id: "abc", generation: "3" });
  assert.equal(request.id, "abc");
  assert.equal(request.generation, "3");
  assert.deepEqual(request.matchers, [`{__profile_type__="${CPU}"}`]);
  assert.equal("stacktraceFilter" in request, false);
});

test("every problem of the form is named at once", () => {
  assert.throws(
    () => ruleRequest({ metricName: "9bad", profileType: "", selector: "service_name=x", groupBy: "ok, bad-label", externalLabels: "novalue" }, null),
    (e) => ["9bad", "profile type", "service_name=x", "bad-label", "novalue"].every((s) => e.message.includes(s)) || assert.fail(e.message));
});

test("a rule's matchers split back into its profile type and one selector", () => {
  assert.deepEqual(selectorMatchers('{a="x,y", b=~"z.*"}'), ['a="x,y"', 'b=~"z.*"']);
  const rule = {
    id: "abc", metricName: "m", generation: "2",
    matchers: [`{__profile_type__="${CPU}", env="prod"}`, '{service_name=~"check.*"}'],
    groupBy: ["service_name"], externalLabels: [{ name: "team", value: "a" }],
    stacktraceFilter: { functionName: { functionName: "main.work" } },
  };
  assert.deepEqual(ruleQuery(rule), { profileType: CPU, selector: '{env="prod", service_name=~"check.*"}' });
  assert.deepEqual(ruleFields(rule), {
    metricName: "m", profileType: CPU, selector: '{env="prod", service_name=~"check.*"}', groupBy: "service_name",
    function: "main.work", externalLabels: "team=a",
  });
  // Fields read from a rule make the same rule again.
  const again = ruleRequest(ruleFields(rule), rule);
  assert.deepEqual(again.stacktraceFilter, rule.stacktraceFilter);
  assert.deepEqual(ruleQuery(again), ruleQuery(rule));
  const row = ruleRow({ ...rule, provisioned: true });
  assert.equal(row.editable, false);
  assert.equal(row.externalLabels, 'team="a"');
});

test("grouped series become paths on one scale, the largest first", () => {
  const groups = [
    { labels: { service_name: "small" }, points: [{ t: 0, v: 1 }, { t: 50, v: 1 }] },
    { labels: { service_name: "big" }, points: [{ t: 0, v: 4 }, { t: 100, v: 2 }] },
  ];
  const { top, paths } = seriesPaths(groups, 0, 100, 200, 100);
  assert.equal(top, 4);
  assert.deepEqual(paths.map((p) => p.name), ['service_name="big"', 'service_name="small"']);
  assert.equal(paths[0].d, "M0.0,0.0L200.0,50.0");
  assert.equal(paths[1].d, "M0.0,75.0L100.0,75.0");
  assert.equal(seriesPaths(groups, 0, 100, 200, 100, 1).paths.length, 1);
  assert.deepEqual(seriesPaths([{ labels: {}, points: [] }], 0, 100, 200, 100).paths[0].name, "all");
});
