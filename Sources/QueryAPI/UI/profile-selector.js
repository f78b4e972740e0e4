// The profile filter (`profileId` in the URL): IDs of individual profiles, as the timeline's exemplar dots
// name them, that the flame graph request passes on so the server merges only those profiles.

import { listProblem } from "./url-state.js";

// Kiln's profile IDs are version-7 UUIDs (docs/query.md, "Individual profiles").
const PROFILE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** Whether `text` is a profile ID Kiln gives out. */
export function isProfileID(text) {
  return PROFILE_ID.test(text);
}

/** The profile's time, epoch ms: the ID's first 48 bits. */
export function profileIDMillis(id) {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/** Why the profile list cannot be sent to the server, or "" when every entry is a profile ID. */
export function profileListProblem(ids) {
  return listProblem("profileId", ids, isProfileID, {
    one: "a profile ID", many: "profile IDs", rule: "a version-7 UUID, as the timeline's dots give them", filter: "profile",
  });
}
