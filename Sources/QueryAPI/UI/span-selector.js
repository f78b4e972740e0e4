// The span filter (`spanSelector` in the URL): span IDs, as a trace view links them, that the flame graph
// requests pass on so the server merges only those spans' samples (their `span_id` sample label).

import { listProblem } from "./url-state.js";

// What the server accepts: a 64-bit span ID in hex. OpenTelemetry writes all 16 digits; shorter ones
// are the same number with its leading zeros left out.
const SPAN_ID = /^[0-9a-fA-F]{1,16}$/;

/** Whether `text` is a span ID: 1 to 16 hex digits. */
export function isSpanID(text) {
  return SPAN_ID.test(text);
}

/** Why the span list cannot be sent to the server, or "" when every entry is a span ID. */
export function spanListProblem(spans) {
  return listProblem("spanSelector", spans, isSpanID, { one: "a span ID", many: "span IDs", rule: "1 to 16 hex digits", filter: "span" });
}

/**
 * The span filter chip's text in three parts, label, first span and how many more (joined:
 * "Spans: 9a517183f26a089d, +1 more"), so a narrow chip can elide the span ID and keep the count.
 */
export function spanChipParts(spans) {
  if (!spans || !spans.length) return ["", "", ""];
  if (spans.length === 1) return ["Span: ", spans[0], ""];
  return ["Spans: ", spans[0], `, +${spans.length - 1} more`];
}
