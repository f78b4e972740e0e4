// Function names as profiles spell them, e.g. Go's `github.com/org/repo/pkg.(*Type).Method`: where the
// package path ends, how to shorten a name without losing the function, and search matching.

/** Where a name's qualifier ends: before its first `(` or `[` (receivers, generics may hold `/` or `.`). */
function headLength(name) {
  const cut = [name.indexOf("("), name.indexOf("[")].filter((i) => i > 0);
  return cut.length ? Math.min(...cut) : name.length;
}

/**
 * The package path and the rest: `github.com/a/b/cpu.(*CPU).Step` → `{ path: "github.com/a/b/",
 * func: "cpu.(*CPU).Step" }`. Names without a `/` before the function have an empty path.
 */
export function splitFunctionName(name) {
  const slash = name.lastIndexOf("/", headLength(name) - 1);
  if (slash < 0 || slash === name.length - 1) return { path: "", func: name };
  return { path: name.slice(0, slash + 1), func: name.slice(slash + 1) };
}

/** The package a function belongs to, `github.com/a/b/cpu` for `github.com/a/b/cpu.(*CPU).Step`. */
export function packageOf(name) {
  const head = name.slice(0, headLength(name));
  const slash = head.lastIndexOf("/");
  const dot = head.indexOf(".", slash + 1);
  return dot > 0 ? head.slice(0, dot) : head;
}

/** `text` cut to `maxChars` with a trailing `…`. */
export function elideEnd(text, maxChars) {
  return text.length <= maxChars ? text : text.slice(0, Math.max(maxChars - 1, 1)) + "…";
}

/**
 * A name in at most `maxChars` characters that keeps the function readable: leading package-path
 * segments give way first (`…/hardware/cpu.(*CPU).Step`), and only a function that alone is too long
 * is cut at its end. Cutting the end instead would leave every row of a Go profile reading
 * `github.com/org/rep…`.
 */
export function elideFunctionName(name, maxChars) {
  if (name.length <= maxChars) return name;
  const { path, func } = splitFunctionName(name);
  const segments = path.split("/").slice(0, -1); // the path ends with "/"
  for (let keep = segments.length - 1; keep >= 0; keep--) {
    const kept = segments.slice(segments.length - keep).map((s) => s + "/").join("");
    const candidate = "…/" + kept + func;
    if (candidate.length <= maxChars) return candidate;
  }
  return elideEnd(func, maxChars);
}

/**
 * The search box's test: case-insensitive substring of the function name. Rows that are not a function
 * (the table's "N more functions" row has no name) never match, rather than throwing.
 */
export function searchMatcher(text) {
  const needle = (text || "").toLowerCase();
  return (name) => needle !== "" && typeof name === "string" && name.toLowerCase().includes(needle);
}
