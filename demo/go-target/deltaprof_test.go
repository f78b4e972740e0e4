package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// --- a small, strict reader of the pprof protobuf, independent of the writer ---------------------

type field struct {
	number int
	wire   int
	varint uint64
	bytes  []byte
}

func readVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("truncated or overlong varint")
}

// readFields splits one message into fields; only the wire types pprof uses are accepted.
func readFields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		key, n, err := readVarint(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		f := field{number: int(key >> 3), wire: int(key & 7)}
		if f.number == 0 {
			return nil, fmt.Errorf("field number 0")
		}
		switch f.wire {
		case 0:
			if f.varint, n, err = readVarint(b); err != nil {
				return nil, err
			}
			b = b[n:]
		case 2:
			length, n, err := readVarint(b)
			if err != nil {
				return nil, err
			}
			b = b[n:]
			if length > uint64(len(b)) {
				return nil, fmt.Errorf("field %d: length %d beyond the message", f.number, length)
			}
			f.bytes, b = b[:length], b[length:]
		default:
			return nil, fmt.Errorf("field %d: unexpected wire type %d", f.number, f.wire)
		}
		out = append(out, f)
	}
	return out, nil
}

func readPacked(f field) ([]uint64, error) {
	if f.wire == 0 {
		return []uint64{f.varint}, nil
	}
	var out []uint64
	for b := f.bytes; len(b) > 0; {
		v, n, err := readVarint(b)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = b[n:]
	}
	return out, nil
}

type decodedLine struct {
	function string
	line     int64
}

type decodedSample struct {
	stack  [][]decodedLine // per location, its lines
	values []int64
	labels map[string]int64
}

type decodedProfile struct {
	sampleTypes []string // "type/unit"
	periodType  string
	period      int64
	timeNanos   int64
	duration    int64
	samples     []decodedSample
	mappings    int
}

// decodeProfile gunzips and reads a profile, failing on anything malformed: bad wire data, string
// indices out of range, dangling or duplicate ids, value counts that differ from the sample types.
func decodeProfile(t *testing.T, body []byte) decodedProfile {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	top, err := readFields(raw)
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	var stringTable []string
	for _, f := range top {
		if f.number == 6 {
			stringTable = append(stringTable, string(f.bytes))
		}
	}
	if len(stringTable) == 0 || stringTable[0] != "" {
		t.Fatalf("string_table[0] must be the empty string: %q", stringTable)
	}
	str := func(i uint64) string {
		if i >= uint64(len(stringTable)) {
			t.Fatalf("string index %d out of range (%d strings)", i, len(stringTable))
		}
		return stringTable[i]
	}
	sub := func(f field) map[int][]field {
		if f.wire != 2 {
			t.Fatalf("field %d should be a message", f.number)
		}
		fields, err := readFields(f.bytes)
		if err != nil {
			t.Fatalf("field %d: %v", f.number, err)
		}
		m := map[int][]field{}
		for _, g := range fields {
			m[g.number] = append(m[g.number], g)
		}
		return m
	}
	one := func(m map[int][]field, n int) uint64 {
		if len(m[n]) == 0 {
			return 0
		}
		return m[n][len(m[n])-1].varint
	}

	var p decodedProfile
	functions := map[uint64]string{}
	mappings := map[uint64]bool{}
	locations := map[uint64][]decodedLine{}
	type rawSample struct {
		locationIDs []uint64
		values      []uint64
		labels      map[string]int64
	}
	var samples []rawSample
	var locationFields []map[int][]field
	for _, f := range top {
		switch f.number {
		case 1:
			m := sub(f)
			p.sampleTypes = append(p.sampleTypes, str(one(m, 1))+"/"+str(one(m, 2)))
		case 2:
			m := sub(f)
			var s rawSample
			s.labels = map[string]int64{}
			for _, g := range m[1] {
				ids, err := readPacked(g)
				if err != nil {
					t.Fatal(err)
				}
				s.locationIDs = append(s.locationIDs, ids...)
			}
			for _, g := range m[2] {
				values, err := readPacked(g)
				if err != nil {
					t.Fatal(err)
				}
				s.values = append(s.values, values...)
			}
			for _, g := range m[3] {
				l := sub(g)
				s.labels[str(one(l, 1))] = int64(one(l, 3))
			}
			samples = append(samples, s)
		case 3:
			m := sub(f)
			id := one(m, 1)
			if id == 0 || mappings[id] {
				t.Fatalf("mapping id %d is zero or repeated", id)
			}
			mappings[id] = true
			str(one(m, 5))
		case 4:
			locationFields = append(locationFields, sub(f))
		case 5:
			m := sub(f)
			id := one(m, 1)
			if _, dup := functions[id]; id == 0 || dup {
				t.Fatalf("function id %d is zero or repeated", id)
			}
			functions[id] = str(one(m, 2))
			str(one(m, 3))
			str(one(m, 4))
		case 9:
			p.timeNanos = int64(f.varint)
		case 10:
			p.duration = int64(f.varint)
		case 11:
			m := sub(f)
			p.periodType = str(one(m, 1)) + "/" + str(one(m, 2))
		case 12:
			p.period = int64(f.varint)
		}
	}
	p.mappings = len(mappings)
	for _, m := range locationFields {
		id := one(m, 1)
		if _, dup := locations[id]; id == 0 || dup {
			t.Fatalf("location id %d is zero or repeated", id)
		}
		if mapping := one(m, 2); mapping != 0 && !mappings[mapping] {
			t.Fatalf("location %d names missing mapping %d", id, mapping)
		}
		lines := []decodedLine{}
		for _, g := range m[4] {
			l := sub(g)
			name, ok := functions[one(l, 1)]
			if !ok {
				t.Fatalf("location %d names missing function %d", id, one(l, 1))
			}
			lines = append(lines, decodedLine{function: name, line: int64(one(l, 2))})
		}
		locations[id] = lines
	}
	for _, s := range samples {
		if len(s.values) != len(p.sampleTypes) {
			t.Fatalf("sample has %d values for %d sample types", len(s.values), len(p.sampleTypes))
		}
		d := decodedSample{labels: s.labels}
		for _, v := range s.values {
			d.values = append(d.values, int64(v))
		}
		for _, id := range s.locationIDs {
			lines, ok := locations[id]
			if !ok {
				t.Fatalf("sample names missing location %d", id)
			}
			d.stack = append(d.stack, lines)
		}
		p.samples = append(p.samples, d)
	}
	return p
}

func (p decodedProfile) totals() []int64 {
	out := make([]int64, len(p.sampleTypes))
	for _, s := range p.samples {
		for i, v := range s.values {
			out[i] += v
		}
	}
	return out
}

// leafFunction is the innermost function of a sample's stack.
func (s decodedSample) leafFunction() string {
	if len(s.stack) == 0 || len(s.stack[0]) == 0 {
		return ""
	}
	return s.stack[0][0].function
}

// --- stacks with known functions -----------------------------------------------------------------

// fn is the symbol name of a function of this package: "main." in the program, the import path in
// its test binary.
func fn(name string) string {
	full := runtime.FuncForPC(reflect.ValueOf(captureStack).Pointer()).Name()
	return strings.TrimSuffix(full, "captureStack") + name
}

//go:noinline
func captureStack() []uintptr {
	pcs := make([]uintptr, 32)
	return pcs[:runtime.Callers(1, pcs)]
}

// inlinedIntoOuter is small enough for the compiler to inline into outerOfInlined.
func inlinedIntoOuter() []uintptr { return captureStack() }

//go:noinline
func outerOfInlined() []uintptr { return inlinedIntoOuter() }

//go:noinline
func otherStack() []uintptr { return captureStack() }

func asStack0(pcs []uintptr) (stack [32]uintptr) {
	copy(stack[:], pcs)
	return stack
}

func memRecord(pcs []uintptr, allocObjects, allocBytes, freeObjects, freeBytes int64) runtime.MemProfileRecord {
	return runtime.MemProfileRecord{AllocObjects: allocObjects, AllocBytes: allocBytes, FreeObjects: freeObjects,
		FreeBytes: freeBytes, Stack0: asStack0(pcs)}
}

func blockRecord(pcs []uintptr, count, cycles int64) runtime.BlockProfileRecord {
	return runtime.BlockProfileRecord{Count: count, Cycles: cycles, StackRecord: runtime.StackRecord{Stack0: asStack0(pcs)}}
}

func encodeHeap(t *testing.T, h *heapDeltas, records ...runtime.MemProfileRecord) decodedProfile {
	t.Helper()
	var out bytes.Buffer
	if err := h.writeRecords(&out, time.Now(), records, 1); err != nil {
		t.Fatal(err)
	}
	return decodeProfile(t, out.Bytes())
}

func sampleWithLeaf(t *testing.T, p decodedProfile, function string) decodedSample {
	t.Helper()
	for _, s := range p.samples {
		if s.leafFunction() == function {
			return s
		}
	}
	t.Fatalf("no sample with leaf %s", function)
	return decodedSample{}
}

// --- tests ---------------------------------------------------------------------------------------

func TestHeapServesAllocIncreasesAndInuseSnapshots(t *testing.T) {
	stack := otherStack()
	var h heapDeltas
	first := encodeHeap(t, &h, memRecord(stack, 10, 1000, 4, 400))
	want := []string{"alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes"}
	if fmt.Sprint(first.sampleTypes) != fmt.Sprint(want) || first.periodType != "space/bytes" || first.period != 1 {
		t.Fatalf("types %v, period %s %d", first.sampleTypes, first.periodType, first.period)
	}
	s := sampleWithLeaf(t, first, fn("captureStack"))
	if fmt.Sprint(s.values) != "[10 1000 6 600]" || s.labels["bytes"] != 100 {
		t.Fatalf("first: values %v labels %v", s.values, s.labels)
	}
	if first.duration <= 0 || first.timeNanos <= 0 {
		t.Fatalf("time %d duration %d", first.timeNanos, first.duration)
	}

	second := encodeHeap(t, &h, memRecord(stack, 15, 1500, 12, 1200))
	if s := sampleWithLeaf(t, second, fn("captureStack")); fmt.Sprint(s.values) != "[5 500 3 300]" {
		t.Fatalf("second: values %v", s.values)
	}
	// No new allocations but live objects: the sample stays, with zero alloc deltas.
	third := encodeHeap(t, &h, memRecord(stack, 15, 1500, 12, 1200))
	if s := sampleWithLeaf(t, third, fn("captureStack")); fmt.Sprint(s.values) != "[0 0 3 300]" {
		t.Fatalf("third: values %v", s.values)
	}
	// Nothing allocated and nothing live: no sample at all.
	fourth := encodeHeap(t, &h, memRecord(stack, 15, 1500, 15, 1500))
	if len(fourth.samples) != 0 {
		t.Fatalf("fourth: %d samples, want none", len(fourth.samples))
	}
}

func TestHeapKeepsBucketsOfOneStackApartBySize(t *testing.T) {
	stack := otherStack()
	var h heapDeltas
	encodeHeap(t, &h, memRecord(stack, 2, 64, 2, 64), memRecord(stack, 1, 4096, 1, 4096))
	second := encodeHeap(t, &h, memRecord(stack, 3, 96, 3, 96), memRecord(stack, 3, 12288, 3, 12288))
	got := map[int64]string{}
	for _, s := range second.samples {
		got[s.labels["bytes"]] = fmt.Sprint(s.values)
	}
	if got[32] != "[1 32 0 0]" || got[4096] != "[2 8192 0 0]" || len(got) != 2 {
		t.Fatalf("samples by size: %v", got)
	}
}

func TestHeapScalesLikeGo(t *testing.T) {
	var h heapDeltas
	var out bytes.Buffer
	if err := h.writeRecords(&out, time.Now(), []runtime.MemProfileRecord{memRecord(otherStack(), 4, 4096, 0, 0)}, 512*1024); err != nil {
		t.Fatal(err)
	}
	p := decodeProfile(t, out.Bytes())
	objects, bytes := scaleHeapSample(4, 4096, 512*1024)
	if s := p.samples[0]; s.values[0] != objects || s.values[1] != bytes || objects <= 4 || p.period != 512*1024 {
		t.Fatalf("values %v, want scaled %d %d", s.values, objects, bytes)
	}
}

func TestContentionServesIncreasesInNanoseconds(t *testing.T) {
	stack, other := otherStack(), outerOfInlined()
	c := &contentionDeltas{scale: func(n int64, ns float64) (int64, float64) { return n, ns }}
	encode := func(records ...runtime.BlockProfileRecord) decodedProfile {
		var out bytes.Buffer
		if err := c.writeRecords(&out, time.Now(), records, 2e9); err != nil { // 2 cycles per nanosecond
			t.Fatal(err)
		}
		return decodeProfile(t, out.Bytes())
	}
	first := encode(blockRecord(stack, 3, 3000), blockRecord(other, 1, 10))
	if fmt.Sprint(first.sampleTypes) != "[contentions/count delay/nanoseconds]" || first.periodType != "contentions/count" || first.period != 1 {
		t.Fatalf("types %v, period %s %d", first.sampleTypes, first.periodType, first.period)
	}
	if got := first.totals(); fmt.Sprint(got) != "[4 1505]" || len(first.samples) != 2 {
		t.Fatalf("first totals %v over %d samples", got, len(first.samples))
	}
	// Only the first stack moved: the other one has no sample.
	second := encode(blockRecord(stack, 7, 5000), blockRecord(other, 1, 10))
	if len(second.samples) != 1 || fmt.Sprint(second.samples[0].values) != "[4 1000]" {
		t.Fatalf("second: %+v", second.samples)
	}
}

func TestMutexScaleUndoesSampling(t *testing.T) {
	previous := runtime.SetMutexProfileFraction(5)
	defer runtime.SetMutexProfileFraction(previous)
	if n, ns := scaleByMutexFraction(3, 100); n != 15 || ns != 500 {
		t.Fatalf("scaled to %d %f", n, ns)
	}
}

func TestInlinedFramesAreLinesOfOneLocation(t *testing.T) {
	stack := outerOfInlined()
	frames := runtime.CallersFrames(stack)
	var inlined bool
	for {
		f, more := frames.Next()
		if f.Function == fn("inlinedIntoOuter") && f.Func == nil {
			inlined = true
		}
		if !more {
			break
		}
	}
	if !inlined {
		t.Skip("main.inlinedIntoOuter was not inlined (built with -gcflags=-l?)")
	}
	var h heapDeltas
	p := encodeHeap(t, &h, memRecord(stack, 1, 8, 0, 0))
	s := sampleWithLeaf(t, p, fn("captureStack"))
	if len(s.stack) < 2 {
		t.Fatalf("stack %v", s.stack)
	}
	second := s.stack[1]
	if len(second) != 2 || second[0].function != fn("inlinedIntoOuter") || second[1].function != fn("outerOfInlined") {
		t.Fatalf("the caller's location has lines %v, want inlinedIntoOuter then outerOfInlined", second)
	}
	for _, location := range s.stack[2:] {
		for _, line := range location {
			if line.function == fn("outerOfInlined") {
				t.Fatalf("outerOfInlined has a location of its own as well: %v", s.stack)
			}
		}
	}
}

func TestParseCyclesPerSecond(t *testing.T) {
	if v := parseCyclesPerSecond("--- contention:\ncycles/second=2400003456\n"); v != 2400003456 {
		t.Fatalf("parsed %f", v)
	}
	if v := parseCyclesPerSecond("garbage"); v != 1e9 {
		t.Fatalf("fallback %f", v)
	}
	if v := cyclesPerSecond(); v <= 0 {
		t.Fatalf("runtime cycles per second %f", v)
	}
}

// holdLockOnce makes a goroutine wait for a mutex, which the block and the mutex profile both record
// once the goroutine has really been waiting when the lock is released.
//
//go:noinline
func holdLockOnce() {
	var mu sync.Mutex
	mu.Lock()
	done := make(chan struct{})
	go func() {
		mu.Lock()
		mu.Unlock()
		close(done)
	}()
	for i := 0; i < 100; i++ {
		runtime.Gosched()
	}
	mu.Unlock()
	<-done
}

func recordsMention(records func([]runtime.BlockProfileRecord) (int, bool), prefix string) bool {
	n, _ := records(nil)
	all := make([]runtime.BlockProfileRecord, n+50)
	n, _ = records(all)
	for _, r := range all[:n] {
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			if strings.HasPrefix(f.Function, prefix) {
				return true
			}
			if !more {
				break
			}
		}
	}
	return false
}

// contendUntilRecorded repeats holdLockOnce until both profiles hold it (the waiter may not have
// blocked yet in one round), failing after a deadline.
func contendUntilRecorded(t *testing.T) {
	deadline := time.Now().Add(5 * time.Second)
	for !recordsMention(runtime.BlockProfile, fn("holdLockOnce")) || !recordsMention(runtime.MutexProfile, fn("holdLockOnce")) {
		if time.Now().After(deadline) {
			t.Fatal("holdLockOnce never showed up in the block and mutex profiles")
		}
		holdLockOnce()
	}
}

//go:noinline
func allocateForTest() {
	for i := 0; i < 2000; i++ {
		testSink = append(testSink, make([]byte, 8192))
	}
	testSink = nil
}

var testSink [][]byte

func TestEndpointsServeDeltasOfThisProcess(t *testing.T) {
	runtime.SetMutexProfileFraction(1)
	runtime.SetBlockProfileRate(1)
	defer runtime.SetMutexProfileFraction(0)
	defer runtime.SetBlockProfileRate(0)
	mux := http.NewServeMux()
	registerDeltaProfiles(mux)
	server := httptest.NewServer(mux)
	defer server.Close()
	fetch := func(path string) decodedProfile {
		t.Helper()
		resp, err := http.Get(server.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		return decodeProfile(t, body)
	}
	hasFunction := func(p decodedProfile, name string) bool {
		for _, s := range p.samples {
			for _, location := range s.stack {
				for _, line := range location {
					if line.function == name {
						return true
					}
				}
			}
		}
		return false
	}

	contendUntilRecorded(t)
	allocateForTest()
	runtime.GC() // heap records describe the last completed GC cycle
	runtime.GC()
	for _, path := range []string{"/debug/pprof/delta_block", "/debug/pprof/delta_mutex"} {
		p := fetch(path)
		if !hasFunction(p, fn("holdLockOnce")) && !hasFunction(p, fn("holdLockOnce.func1")) {
			t.Errorf("%s: no sample from main.holdLockOnce", path)
		}
		// Nothing has waited in holdLockOnce since: its stacks are gone from the second answer.
		if again := fetch(path); hasFunction(again, fn("holdLockOnce")) || hasFunction(again, fn("holdLockOnce.func1")) {
			t.Errorf("%s: the second answer repeats the first one's contention", path)
		}
	}
	heap := fetch("/debug/pprof/delta_heap")
	if !hasFunction(heap, fn("allocateForTest")) {
		t.Fatalf("delta_heap: no sample from main.allocateForTest")
	}
	again := fetch("/debug/pprof/delta_heap")
	for _, s := range again.samples {
		for _, location := range s.stack {
			if len(location) > 0 && location[0].function == fn("allocateForTest") && (s.values[0] != 0 || s.values[1] != 0) {
				t.Fatalf("delta_heap repeats allocateForTest's allocations: %v", s.values)
			}
		}
	}
	if heap.mappings == 0 && runtime.GOOS == "linux" {
		t.Errorf("no mappings on Linux")
	}
	if !strings.HasPrefix(heap.sampleTypes[0], "alloc_objects") {
		t.Errorf("sample types %v", heap.sampleTypes)
	}
}
