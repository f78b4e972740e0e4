// Profile types as ProfileTypes lists them ({id, name, sampleType, sampleUnit, …}).

/** The picker's text: `process_cpu · cpu (nanoseconds)`. */
export function profileTypeLabel(type) {
  return `${type.name} · ${type.sampleType}` + (type.sampleUnit ? ` (${type.sampleUnit})` : "");
}

/** The type to show first: CPU (where profiling usually starts), else the server's first. */
export function defaultProfileType(types) {
  if (!types.length) return "";
  return (types.find((t) => t.id.startsWith("process_cpu:cpu:")) || types.find((t) => /cpu/.test(t.id)) || types[0]).id;
}
