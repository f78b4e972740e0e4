// pprof -> stack-sample batches: series split, deltas, dedup.
