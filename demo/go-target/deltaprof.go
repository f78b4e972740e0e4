package main

// godeltaprof-compatible endpoints (/debug/pprof/delta_heap, delta_block,
// delta_mutex), written with the standard library only.
//
// Each endpoint serves the same sample types, period type and period as the
// plain Go heap/block/mutex profile, but its cumulative values are the
// increase since the previous request of that endpoint (the first request
// gets everything since process start). Heap's inuse_* values are snapshots
// and are served whole. Scrapers (Alloy, Kiln) treat these bodies as deltas.

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

var processStart = time.Now()

// registerDeltaProfiles adds the three godeltaprof paths to mux.
func registerDeltaProfiles(mux *http.ServeMux) {
	heap := &heapDeltas{}
	block := &contentionDeltas{records: runtime.BlockProfile, scale: func(c int64, ns float64) (int64, float64) { return c, ns }}
	mutex := &contentionDeltas{records: runtime.MutexProfile, scale: scaleByMutexFraction}
	mux.HandleFunc("/debug/pprof/delta_heap", serveProfile("delta_heap", heap.write))
	mux.HandleFunc("/debug/pprof/delta_block", serveProfile("delta_block", block.write))
	mux.HandleFunc("/debug/pprof/delta_mutex", serveProfile("delta_mutex", mutex.write))
}

// serveProfile builds the whole body before answering, so a failure is a 500 and not a cut-off body.
func serveProfile(name string, write func(*bytes.Buffer, time.Time) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		if err := write(&body, time.Now()); err != nil {
			http.Error(w, fmt.Sprintf("%s: %v", name, err), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body.Bytes())
	}
}

// --- heap ---------------------------------------------------------------

// heapKey identifies one runtime memory bucket: the runtime keys buckets by stack and allocation size.
type heapKey struct {
	stack     [32]uintptr
	blockSize int64
}

type allocCounts struct{ objects, bytes int64 }

type heapDeltas struct {
	mu       sync.Mutex
	previous map[heapKey]allocCounts
	lastTime time.Time
}

func (h *heapDeltas) write(out *bytes.Buffer, now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.writeRecords(out, now, memProfileRecords(), int64(runtime.MemProfileRate))
}

// writeRecords is write with its inputs passed in, so tests can feed chosen records.
// The caller holds h.mu.
func (h *heapDeltas) writeRecords(out *bytes.Buffer, now time.Time, records []runtime.MemProfileRecord, rate int64) error {
	// Several records may share a key (the same stack reached again); add them up first.
	type current struct {
		alloc   allocCounts
		inuse   allocCounts
		stack   []uintptr
		ordinal int
	}
	byKey := make(map[heapKey]*current, len(records))
	order := make([]heapKey, 0, len(records))
	for i := range records {
		r := &records[i]
		var blockSize int64
		if r.AllocObjects > 0 {
			blockSize = r.AllocBytes / r.AllocObjects
		}
		key := heapKey{stack: r.Stack0, blockSize: blockSize}
		c := byKey[key]
		if c == nil {
			c = &current{stack: r.Stack(), ordinal: len(order)}
			byKey[key] = c
			order = append(order, key)
		}
		c.alloc.objects += r.AllocObjects
		c.alloc.bytes += r.AllocBytes
		c.inuse.objects += r.InUseObjects()
		c.inuse.bytes += r.InUseBytes()
	}

	b := newProfileBuilder()
	b.periodType("space", "bytes", rate)
	b.sampleType("alloc_objects", "count")
	b.sampleType("alloc_space", "bytes")
	b.sampleType("inuse_objects", "count")
	b.sampleType("inuse_space", "bytes")
	b.setTime(now, h.since())

	next := make(map[heapKey]allocCounts, len(order))
	for _, key := range order {
		c := byKey[key]
		next[key] = c.alloc
		prev := h.previous[key]
		deltaObjects, deltaBytes := c.alloc.objects-prev.objects, c.alloc.bytes-prev.bytes
		if deltaObjects < 0 || deltaBytes < 0 { // counters never shrink; if they did, start over from them
			deltaObjects, deltaBytes = c.alloc.objects, c.alloc.bytes
		}
		if deltaObjects == 0 && deltaBytes == 0 && c.inuse.objects == 0 && c.inuse.bytes == 0 {
			continue
		}
		allocObjects, allocBytes := scaleHeapSample(deltaObjects, deltaBytes, rate)
		inuseObjects, inuseBytes := scaleHeapSample(c.inuse.objects, c.inuse.bytes, rate)
		var labels []numLabel
		if key.blockSize != 0 {
			labels = []numLabel{{key: "bytes", value: key.blockSize}}
		}
		b.sample([]int64{allocObjects, allocBytes, inuseObjects, inuseBytes}, b.heapLocations(c.stack), labels)
	}
	if err := b.writeGzip(out); err != nil {
		return err
	}
	h.previous = next
	h.lastTime = now
	return nil
}

func (h *heapDeltas) since() time.Time {
	if h.lastTime.IsZero() {
		return processStart
	}
	return h.lastTime
}

func memProfileRecords() []runtime.MemProfileRecord {
	n, _ := runtime.MemProfile(nil, true)
	for {
		records := make([]runtime.MemProfileRecord, n+50)
		var ok bool
		if n, ok = runtime.MemProfile(records, true); ok {
			return records[:n]
		}
	}
}

// scaleHeapSample estimates the unsampled count and size from sampled ones, as Go's heap profile does:
// an allocation of average size s is sampled with probability 1 - exp(-s/rate).
func scaleHeapSample(count, size, rate int64) (int64, int64) {
	if count == 0 || size == 0 {
		return 0, 0
	}
	if rate <= 1 {
		return count, size
	}
	average := float64(size) / float64(count)
	scale := 1 / (1 - math.Exp(-average/float64(rate)))
	return int64(float64(count) * scale), int64(float64(size) * scale)
}

// --- block and mutex ----------------------------------------------------

type contentionCounts struct{ count, cycles int64 }

type contentionDeltas struct {
	records func([]runtime.BlockProfileRecord) (int, bool)
	scale   func(count int64, nanoseconds float64) (int64, float64)

	mu       sync.Mutex
	previous map[[32]uintptr]contentionCounts
	lastTime time.Time
}

func (c *contentionDeltas) write(out *bytes.Buffer, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, _ := c.records(nil)
	var records []runtime.BlockProfileRecord
	for {
		records = make([]runtime.BlockProfileRecord, n+50)
		var ok bool
		if n, ok = c.records(records); ok {
			records = records[:n]
			break
		}
	}
	return c.writeRecords(out, now, records, cyclesPerSecond())
}

// writeRecords is write with its inputs passed in, so tests can feed chosen records.
// The caller holds c.mu.
func (c *contentionDeltas) writeRecords(out *bytes.Buffer, now time.Time, records []runtime.BlockProfileRecord, cyclesPerSecond float64) error {
	byStack := make(map[[32]uintptr]*contentionCounts, len(records))
	order := make([]int, 0, len(records))
	for i := range records {
		r := &records[i]
		counts := byStack[r.Stack0]
		if counts == nil {
			counts = &contentionCounts{}
			byStack[r.Stack0] = counts
			order = append(order, i)
		}
		counts.count += r.Count
		counts.cycles += r.Cycles
	}

	b := newProfileBuilder()
	b.periodType("contentions", "count", 1)
	b.sampleType("contentions", "count")
	b.sampleType("delay", "nanoseconds")
	b.setTime(now, c.since())

	next := make(map[[32]uintptr]contentionCounts, len(order))
	for _, i := range order {
		stack := records[i].Stack0
		total := *byStack[stack]
		next[stack] = total
		prev := c.previous[stack]
		delta := contentionCounts{count: total.count - prev.count, cycles: total.cycles - prev.cycles}
		if delta.count < 0 || delta.cycles < 0 { // counters never shrink; if they did, start over from them
			delta = total
		}
		if delta.count == 0 && delta.cycles == 0 {
			continue
		}
		count, nanoseconds := c.scale(delta.count, float64(delta.cycles)/(cyclesPerSecond/1e9))
		b.sample([]int64{count, int64(nanoseconds)}, b.locations(records[i].Stack()), nil)
	}
	if err := b.writeGzip(out); err != nil {
		return err
	}
	c.previous = next
	c.lastTime = now
	return nil
}

func (c *contentionDeltas) since() time.Time {
	if c.lastTime.IsZero() {
		return processStart
	}
	return c.lastTime
}

// scaleByMutexFraction undoes mutex sampling: on average one in `fraction` contentions is recorded.
func scaleByMutexFraction(count int64, nanoseconds float64) (int64, float64) {
	fraction := runtime.SetMutexProfileFraction(-1)
	return count * int64(fraction), nanoseconds * float64(fraction)
}

var (
	cyclesOnce  sync.Once
	cyclesValue float64
)

// cyclesPerSecond is the runtime's tick rate, which converts Cycles in block and mutex records to time.
// The standard library exposes it only in the text form of the block profile ("cycles/second=N").
func cyclesPerSecond() float64 {
	cyclesOnce.Do(func() {
		var text headWriter
		_ = pprof.Lookup("block").WriteTo(&text, 1)
		cyclesValue = parseCyclesPerSecond(text.head.String())
	})
	return cyclesValue
}

func parseCyclesPerSecond(text string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "cycles/second=") {
			value := strings.TrimSpace(strings.TrimPrefix(line, "cycles/second="))
			if v, err := strconv.ParseFloat(value, 64); err == nil && v > 0 {
				return v
			}
		}
	}
	return 1e9 // unknown: treat ticks as nanoseconds rather than failing the endpoint
}

// headWriter keeps the first few KiB written to it and drops the rest.
type headWriter struct{ head bytes.Buffer }

func (h *headWriter) Write(p []byte) (int, error) {
	if room := 4096 - h.head.Len(); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		h.head.Write(p[:room])
	}
	return len(p), nil
}

// --- pprof protobuf -----------------------------------------------------

// Field numbers of profile.proto (github.com/google/pprof/proto/profile.proto).
const (
	profileSampleType      = 1
	profileSample          = 2
	profileMapping         = 3
	profileLocation        = 4
	profileFunction        = 5
	profileStringTable     = 6
	profileTimeNanos       = 9
	profileDurationNanos   = 10
	profilePeriodType      = 11
	profilePeriod          = 12
	valueTypeType          = 1
	valueTypeUnit          = 2
	sampleLocationID       = 1
	sampleValue            = 2
	sampleLabel            = 3
	labelKey               = 1
	labelNum               = 3
	mappingID              = 1
	mappingMemoryStart     = 2
	mappingMemoryLimit     = 3
	mappingFileOffset      = 4
	mappingFilename        = 5
	mappingHasFunctions    = 7
	mappingHasFilenames    = 8
	mappingHasLineNumbers  = 9
	mappingHasInlineFrames = 10
	locationID             = 1
	locationMappingID      = 2
	locationAddress        = 3
	locationLine           = 4
	lineFunctionID         = 1
	lineLine               = 2
	functionID             = 1
	functionName           = 2
	functionSystemName     = 3
	functionFilename       = 4
	wireVarint             = 0
	wireLengthDelimited    = 2
)

// protoBuffer appends protobuf fields to a byte slice.
type protoBuffer struct{ data []byte }

func (p *protoBuffer) varint(v uint64) {
	for v >= 0x80 {
		p.data = append(p.data, byte(v)|0x80)
		v >>= 7
	}
	p.data = append(p.data, byte(v))
}

func (p *protoBuffer) key(field, wire int) { p.varint(uint64(field)<<3 | uint64(wire)) }

// uint64Field and int64Field omit zero values, as proto3 does.
func (p *protoBuffer) uint64Field(field int, v uint64) {
	if v != 0 {
		p.key(field, wireVarint)
		p.varint(v)
	}
}

func (p *protoBuffer) int64Field(field int, v int64) { p.uint64Field(field, uint64(v)) }

func (p *protoBuffer) bytesField(field int, b []byte) {
	p.key(field, wireLengthDelimited)
	p.varint(uint64(len(b)))
	p.data = append(p.data, b...)
}

func (p *protoBuffer) packedUint64(field int, values []uint64) {
	var packed protoBuffer
	for _, v := range values {
		packed.varint(v)
	}
	p.bytesField(field, packed.data)
}

type numLabel struct {
	key   string
	value int64
}

type functionKey struct{ name, file string }

// profileBuilder collects one pprof Profile message: samples, their locations symbolised with
// runtime.CallersFrames (inlined calls become extra lines of one location), functions and strings.
type profileBuilder struct {
	body       protoBuffer // sample types, samples, period, times
	locs       protoBuffer // Location messages
	funcs      protoBuffer // Function messages
	strings    []string
	stringIDs  map[string]int64
	locIDs     map[string]uint64 // by the run of PCs the location stands for
	framesByPC map[uintptr][]runtime.Frame
	funcIDs    map[functionKey]uint64

	locationCount uint64
	unsymbolised  map[uint64]bool // mapping ids with a location that has no lines
}

func newProfileBuilder() *profileBuilder {
	b := &profileBuilder{
		stringIDs:  map[string]int64{},
		locIDs:     map[string]uint64{},
		framesByPC: map[uintptr][]runtime.Frame{},
		funcIDs:    map[functionKey]uint64{},

		unsymbolised: map[uint64]bool{},
	}
	b.str("") // string_table[0] must be ""
	return b
}

func (b *profileBuilder) str(s string) int64 {
	if id, ok := b.stringIDs[s]; ok {
		return id
	}
	id := int64(len(b.strings))
	b.strings = append(b.strings, s)
	b.stringIDs[s] = id
	return id
}

func (b *profileBuilder) valueType(field int, typ, unit string) {
	var m protoBuffer
	m.int64Field(valueTypeType, b.str(typ))
	m.int64Field(valueTypeUnit, b.str(unit))
	b.body.bytesField(field, m.data)
}

func (b *profileBuilder) sampleType(typ, unit string) { b.valueType(profileSampleType, typ, unit) }

func (b *profileBuilder) periodType(typ, unit string, period int64) {
	b.valueType(profilePeriodType, typ, unit)
	b.body.int64Field(profilePeriod, period)
}

func (b *profileBuilder) setTime(now, since time.Time) {
	b.body.int64Field(profileTimeNanos, now.UnixNano())
	b.body.int64Field(profileDurationNanos, now.Sub(since).Nanoseconds())
}

func (b *profileBuilder) sample(values []int64, locations []uint64, labels []numLabel) {
	var m protoBuffer
	m.packedUint64(sampleLocationID, locations)
	packed := make([]uint64, len(values))
	for i, v := range values {
		packed[i] = uint64(v)
	}
	m.packedUint64(sampleValue, packed)
	for _, l := range labels {
		var lm protoBuffer
		lm.int64Field(labelKey, b.str(l.key))
		lm.int64Field(labelNum, l.value)
		m.bytesField(sampleLabel, lm.data)
	}
	b.body.bytesField(profileSample, m.data)
}

// heapLocations hides the runtime's allocation frames above the first non-runtime frame, as Go's heap
// profile does; a stack made only of runtime frames is kept whole.
func (b *profileBuilder) heapLocations(stack []uintptr) []uint64 {
	for i, pc := range stack {
		if f := runtime.FuncForPC(pc); f != nil && strings.HasPrefix(f.Name(), "runtime.") {
			continue
		}
		if ids := b.locations(stack[i:]); len(ids) > 0 {
			return ids
		}
		break
	}
	return b.locations(stack)
}

// locations maps a stack of return PCs (as the runtime's profile records hold them, one PC per logical
// frame) to location ids. A frame inlined into its caller is listed as its own PC; as in Go's own
// profiles, such a run of PCs becomes one location whose lines go from the innermost inlined call out.
func (b *profileBuilder) locations(stack []uintptr) []uint64 {
	ids := make([]uint64, 0, len(stack))
	for i := 0; i < len(stack); {
		frames := b.frames(stack[i])
		if frames == nil { // runtime.goexit: the bottom of every goroutine carries no information
			i++
			continue
		}
		group := []uintptr{stack[i]}
		end := i + 1
		for ; end < len(stack); end++ {
			last := frames[len(frames)-1]
			if last.Func != nil || last.Entry == 0 { // the last frame is a real (not inlined) call
				break
			}
			next := b.frames(stack[end])
			if len(next) == 0 || next[0].Entry != last.Entry || next[0].Function == last.Function {
				break // a different physical function, or recursion
			}
			group = append(group, stack[end])
			frames = append(frames[:len(frames):len(frames)], next...)
		}
		ids = append(ids, b.location(group, frames))
		i = end
	}
	return ids
}

// frames symbolises one PC (cached); nil for runtime.goexit.
func (b *profileBuilder) frames(pc uintptr) []runtime.Frame {
	if frames, seen := b.framesByPC[pc]; seen {
		return frames
	}
	var frames []runtime.Frame
	iterator := runtime.CallersFrames([]uintptr{pc})
	for {
		frame, more := iterator.Next()
		if frame.Function == "runtime.goexit" {
			frames = nil
			break
		}
		if frame.PC == 0 {
			frame.PC = pc - 1 // unknown code: at least point at the call, not the return address
		}
		frames = append(frames, frame)
		if !more {
			break
		}
	}
	b.framesByPC[pc] = frames
	return frames
}

// location returns the id of the location for a run of PCs, adding it on first use.
func (b *profileBuilder) location(pcs []uintptr, frames []runtime.Frame) uint64 {
	key := fmt.Sprint(pcs)
	if id, ok := b.locIDs[key]; ok {
		return id
	}
	b.locationCount++
	id := b.locationCount
	b.locIDs[key] = id
	address := uint64(frames[0].PC)
	mapping := mappingFor(address)
	var m protoBuffer
	m.uint64Field(locationID, id)
	m.uint64Field(locationMappingID, mapping)
	m.uint64Field(locationAddress, address)
	symbolised := false
	for _, frame := range frames {
		if frame.Function == "" {
			continue
		}
		symbolised = true
		var line protoBuffer
		line.uint64Field(lineFunctionID, b.function(frame.Function, frame.File))
		line.int64Field(lineLine, int64(frame.Line))
		m.bytesField(locationLine, line.data)
	}
	if !symbolised {
		b.unsymbolised[mapping] = true
	}
	b.locs.bytesField(profileLocation, m.data)
	return id
}

func (b *profileBuilder) function(name, file string) uint64 {
	key := functionKey{name: name, file: file}
	if id, ok := b.funcIDs[key]; ok {
		return id
	}
	id := uint64(len(b.funcIDs) + 1)
	b.funcIDs[key] = id
	var m protoBuffer
	m.uint64Field(functionID, id)
	m.int64Field(functionName, b.str(name))
	m.int64Field(functionSystemName, b.str(name))
	m.int64Field(functionFilename, b.str(file))
	b.funcs.bytesField(profileFunction, m.data)
	return id
}

// encode returns the serialised Profile message.
func (b *profileBuilder) encode() []byte {
	var out protoBuffer
	out.data = append(out.data, b.body.data...)
	for i, m := range executableMappings() {
		var mm protoBuffer
		mm.uint64Field(mappingID, uint64(i+1))
		mm.uint64Field(mappingMemoryStart, m.start)
		mm.uint64Field(mappingMemoryLimit, m.limit)
		mm.uint64Field(mappingFileOffset, m.offset)
		mm.int64Field(mappingFilename, b.str(m.file))
		// Where every location is symbolised, readers need not look for the binary.
		if !b.unsymbolised[uint64(i+1)] {
			for _, flag := range []int{mappingHasFunctions, mappingHasFilenames, mappingHasLineNumbers, mappingHasInlineFrames} {
				mm.uint64Field(flag, 1)
			}
		}
		out.bytesField(profileMapping, mm.data)
	}
	out.data = append(out.data, b.locs.data...)
	out.data = append(out.data, b.funcs.data...)
	for _, s := range b.strings {
		out.bytesField(profileStringTable, []byte(s))
	}
	return out.data
}

func (b *profileBuilder) writeGzip(out *bytes.Buffer) error {
	zw, err := gzip.NewWriterLevel(out, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if _, err := zw.Write(b.encode()); err != nil {
		return err
	}
	return zw.Close()
}

// memoryMapping is one executable region of this process, from /proc/self/maps.
type memoryMapping struct {
	start, limit, offset uint64
	file                 string
}

var (
	mappingsOnce sync.Once
	mappings     []memoryMapping
)

// executableMappings lists the process's executable file mappings (none where /proc is absent), so
// readers such as go tool pprof know the main binary as they do for Go's own profiles.
func executableMappings() []memoryMapping {
	mappingsOnce.Do(func() {
		text, err := os.ReadFile("/proc/self/maps")
		if err == nil {
			mappings = parseMappings(string(text))
		}
	})
	return mappings
}

// parseMappings reads lines such as "00400000-0067c000 r-xp 00000000 08:01 1234 /path/to/binary".
func parseMappings(text string) []memoryMapping {
	var out []memoryMapping
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 6 || !strings.Contains(fields[1], "x") || !strings.HasPrefix(fields[5], "/") {
			continue
		}
		bounds := strings.SplitN(fields[0], "-", 2)
		if len(bounds) != 2 {
			continue
		}
		start, err1 := strconv.ParseUint(bounds[0], 16, 64)
		limit, err2 := strconv.ParseUint(bounds[1], 16, 64)
		offset, err3 := strconv.ParseUint(fields[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, memoryMapping{start: start, limit: limit, offset: offset, file: strings.Join(fields[5:], " ")})
	}
	return out
}

// mappingFor is the 1-based id of the mapping holding address, 0 when none does.
func mappingFor(address uint64) uint64 {
	for i, m := range executableMappings() {
		if address >= m.start && address < m.limit {
			return uint64(i + 1)
		}
	}
	return 0
}
