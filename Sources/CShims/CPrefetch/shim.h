// Swift has no prefetch intrinsic; this header-only module gives hash-table probes one.
static inline void kiln_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }
