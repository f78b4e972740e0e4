import test from "node:test";
import assert from "node:assert/strict";
import { isProfileID, profileIDMillis, profileListProblem } from "../../Sources/QueryAPI/UI/profile-selector.js";

// A version-7 UUID in kiln-query's form (ExemplarTests.profileIDLayout checks how Swift writes them).
const ID = "0192e4b9-c07b-71c8-9ad5-f0e1d2c3b4a5";

test("a profile ID is a version-7 UUID, either case", () => {
  for (const id of [ID, ID.toUpperCase()]) assert.equal(isProfileID(id), true, id);
  for (const id of ["", "7c9e6679-7425-40de-944b-e07fc1f90ae7", ID.replace(/-/g, ""), ID + "0", "0192e4b9-c07b-71c8-1ad5-f0e1d2c3b4a5"]) {
    assert.equal(isProfileID(id), false, id);
  }
});

test("the ID's first 48 bits are the profile's time in ms", () => {
  assert.equal(profileIDMillis(ID), 0x0192e4b9c07b);
  assert.equal(new Date(profileIDMillis("018f0c2a-4b3d-7e21-8a4f-00000000abcd")).toISOString(), "2024-04-23T18:14:09.469Z");
});

test("profileListProblem names every entry that is not a profile ID, and nothing when all are", () => {
  assert.equal(profileListProblem([]), "");
  assert.equal(profileListProblem([ID]), "");
  assert.match(profileListProblem([ID, "trace-1"]), /^profileId "trace-1" is not a profile ID \(a version-7 UUID/);
  assert.match(profileListProblem(["x", "y"]), /^profileId "x", "y" are not profile IDs /);
});
