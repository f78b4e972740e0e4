import test from "node:test";
import assert from "node:assert/strict";
import { splitQuery, joinQuery, splitMatchers, withService, serviceOf } from "../../Sources/QueryAPI/UI/selector.js";

const CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

test("splitQuery separates the profile type from the selector", () => {
  assert.deepEqual(splitQuery(`${CPU}{service_name="shop", region="eu"}`),
    { profileType: CPU, selector: '{service_name="shop", region="eu"}' });
  assert.deepEqual(splitQuery(` ${CPU} `), { profileType: CPU, selector: "" });
  assert.deepEqual(splitQuery(""), { profileType: "", selector: "" });
  assert.deepEqual(splitQuery(undefined), { profileType: "", selector: "" });
});

test("joinQuery writes an empty selector as {}", () => {
  assert.equal(joinQuery(CPU, '{a="1"}'), `${CPU}{a="1"}`);
  assert.equal(joinQuery(CPU, ""), `${CPU}{}`);
  assert.deepEqual(splitQuery(joinQuery(CPU, '{a="1"}')), { profileType: CPU, selector: '{a="1"}' });
});

test("splitMatchers splits on commas outside quoted values only", () => {
  assert.deepEqual(splitMatchers('service_name="a", region=~"eu-.*"'), ['service_name="a"', 'region=~"eu-.*"']);
  assert.deepEqual(splitMatchers('path="/a,b", x!="y"'), ['path="/a,b"', 'x!="y"']);
  assert.deepEqual(splitMatchers('q="say \\"hi, there\\"", z="1"'), ['q="say \\"hi, there\\""', 'z="1"']);
  assert.deepEqual(splitMatchers(" , "), []);
});

test("withService replaces any service_name matcher and puts it first", () => {
  assert.equal(withService('{region="eu", service_name=~"sh.*"}', "shop"), '{service_name="shop", region="eu"}');
  assert.equal(withService('{region="eu"}', "shop"), '{service_name="shop", region="eu"}');
  assert.equal(withService("", "shop"), '{service_name="shop"}');
  assert.equal(withService("{}", 'we"ird\\name'), '{service_name="we\\"ird\\\\name"}');
});

test("serviceOf reads an exact service_name matcher, unescaped", () => {
  assert.equal(serviceOf('{region="eu", service_name="shop"}'), "shop");
  assert.equal(serviceOf('{service_name="we\\"ird\\\\name"}'), 'we"ird\\name');
  assert.equal(serviceOf('{service_name=~"shop"}'), "", "a regex matcher names no single service");
  assert.equal(serviceOf(""), "");
  assert.equal(serviceOf(withService('{a="1"}', "cart")), "cart");
});
