// pprof decode/encode over raw buffers, validation, limits, gzip.
