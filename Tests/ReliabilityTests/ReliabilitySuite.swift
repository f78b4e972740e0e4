import Testing

/// Issue 8's reliability suite: faults against the real binaries (kiln-scraper, kiln-normalizer,
/// kiln-compactor) and real services (Tansu, moto, a tmpfs), one scenario at a time. Each scenario adds a
/// row to the summary (faults injected, records sent and stored, lost, duplicated) that the suite prints
/// and writes to `$KILN_RUN_DIR/reliability-summary.txt`.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct ReliabilitySuite {}
