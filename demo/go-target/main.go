// Command go-target is Kiln's demo profiling target: it serves the standard
// net/http/pprof endpoints and keeps itself busy with recognisable work so
// that tests and demos can check which functions show up in which profile.
//
// It uses the standard library only (Debian's Go 1.19, no network). Besides
// net/http/pprof it serves godeltaprof-compatible /debug/pprof/delta_heap,
// delta_block and delta_mutex (deltaprof.go), written here without the
// pyroscope-go module.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address; port 0 picks a free port")
	leakLimit := flag.Int("leak-limit-mb", 64, "stop growing the leaked slice at this many MiB")
	flag.Parse()

	// Record every mutex contention and blocking event so short test runs see them
	// (the plain and the delta endpoints alike).
	runtime.SetMutexProfileFraction(1)
	runtime.SetBlockProfileRate(1)
	registerDeltaProfiles(http.DefaultServeMux)
	http.HandleFunc("/debug/spans", serveSpans)
	http.HandleFunc("/debug/hot", serveHot)

	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "listen %s: %v\n", *addr, err)
		os.Exit(1)
	}
	// The first line on stdout is the contract with whoever started us.
	fmt.Printf("listening on %s\n", listener.Addr().String())

	go exitWithParent()
	hashLoopFactor.Store(1)
	go cpuWorker()
	go spanWorker()
	go allocationWorker(*leakLimit)
	go mutexWorkers()
	go blockingWorkers()

	if err := http.Serve(listener, nil); err != nil {
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		os.Exit(1)
	}
}

// exitWithParent ends the program once whoever started it is gone (it is then re-parented): a test
// process that crashed, or a kiln dev killed with SIGKILL, must not leave a target burning CPU.
func exitWithParent() {
	parent := os.Getppid()
	for range time.Tick(time.Second) {
		if os.Getppid() != parent {
			fmt.Fprintln(os.Stderr, "parent exited; stopping")
			os.Exit(0)
		}
	}
}

// hashLoopFactor multiplies hashLoop's work: a "release" that makes one named function slower, for
// regression reports to find (set through /debug/hot).
var hashLoopFactor atomic.Int32

// cpuWorker burns CPU in two named hot functions, paced to one round every 5 ms so that it uses part of
// a core: made hotter, hashLoop then gets the CPU its extra work needs instead of taking it from
// computePrimes.
func cpuWorker() {
	const period = 5 * time.Millisecond
	next := time.Now()
	for {
		computePrimes(20000)
		hashLoop(2000 * int(hashLoopFactor.Load()))
		next = next.Add(period)
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		} else {
			next = time.Now() // behind (a busy machine): start again from now rather than catch up
		}
	}
}

// serveHot sets hashLoop's work factor: POST /debug/hot?factor=3 makes it about three times hotter,
// factor=1 restores it. It answers with the factor in force.
func serveHot(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		factor, err := strconv.Atoi(r.URL.Query().Get("factor"))
		if err != nil || factor < 1 || factor > 100 {
			http.Error(w, "factor must be an integer from 1 to 100", http.StatusBadRequest)
			return
		}
		hashLoopFactor.Store(int32(factor))
	}
	fmt.Fprintf(w, "hashLoop factor %d\n", hashLoopFactor.Load())
}

//go:noinline
func computePrimes(limit int) int {
	count := 0
	for n := 2; n < limit; n++ {
		prime := true
		for d := 2; d*d <= n; d++ {
			if n%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			count++
		}
	}
	return count
}

var hashSink [32]byte

//go:noinline
func hashLoop(rounds int) {
	sum := sha256.Sum256([]byte("kiln"))
	for i := 0; i < rounds; i++ {
		sum = sha256.Sum256(sum[:])
	}
	hashSink = sum
}

// spanWorker handles made-up "checkout" requests, each one a root span whose work carries the span's
// ID as the goroutine labels span_id and span_name, the way grafana/otel-profiling-go labels a span's
// work: the CPU profile's samples then name the span they ran in. /debug/spans lists the recent spans.
func spanWorker() {
	for {
		id := newSpanID()
		labels := pprof.Labels("span_id", id, "span_name", "checkout")
		pprof.Do(context.Background(), labels, func(context.Context) {
			// About a tenth of a core: the demo's other workers stay what tests look for.
			end := time.Now().Add(5 * time.Millisecond)
			for time.Now().Before(end) {
				checkoutSpanWork(200)
			}
		})
		recordSpan(id)
		time.Sleep(45 * time.Millisecond)
	}
}

var spanSink [32]byte

//go:noinline
func checkoutSpanWork(rounds int) {
	sum := sha256.Sum256([]byte("checkout"))
	for i := 0; i < rounds; i++ {
		sum = sha256.Sum256(sum[:])
	}
	spanSink = sum
}

func newSpanID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

var (
	spansMu sync.Mutex
	spans   []spanRecord
)

type spanRecord struct {
	ID   string `json:"span_id"`
	Name string `json:"span_name"`
	End  int64  `json:"end_unix_ms"`
}

// recordSpan keeps the last 10,000 spans (a few minutes' worth).
func recordSpan(id string) {
	spansMu.Lock()
	defer spansMu.Unlock()
	spans = append(spans, spanRecord{ID: id, Name: "checkout", End: time.Now().UnixMilli()})
	if len(spans) > 10000 {
		spans = spans[len(spans)-10000:]
	}
}

func serveSpans(w http.ResponseWriter, _ *http.Request) {
	spansMu.Lock()
	out, err := json.Marshal(spans)
	spansMu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

var (
	leakMu sync.Mutex
	leaked [][]byte
)

// allocationWorker allocates short-lived buffers and slowly leaks some.
func allocationWorker(limitMB int) {
	for {
		allocateBuffers(64, 16<<10)
		leakMemory(limitMB)
		time.Sleep(5 * time.Millisecond)
	}
}

var bufferSink int

//go:noinline
func allocateBuffers(count, size int) {
	total := 0
	for i := 0; i < count; i++ {
		buf := make([]byte, size)
		buf[i%size] = byte(i)
		total += len(buf)
	}
	bufferSink = total
}

//go:noinline
func leakMemory(limitMB int) {
	leakMu.Lock()
	defer leakMu.Unlock()
	if len(leaked)*4 >= limitMB*1024 { // 4 KiB per leaked chunk
		return
	}
	leaked = append(leaked, make([]byte, 4<<10))
}

// mutexWorkers make several goroutines fight over one lock.
func mutexWorkers() {
	var mu sync.Mutex
	shared := 0
	for i := 0; i < 4; i++ {
		go func() {
			for {
				contendMutex(&mu, &shared)
			}
		}()
	}
}

//go:noinline
func contendMutex(mu *sync.Mutex, shared *int) {
	mu.Lock()
	for i := 0; i < 1000; i++ {
		*shared += i
	}
	time.Sleep(50 * time.Microsecond)
	mu.Unlock()
}

// blockingWorkers pass values over an unbuffered channel with a slow receiver.
func blockingWorkers() {
	ch := make(chan int)
	go func() {
		for v := range ch {
			_ = v
			time.Sleep(200 * time.Microsecond)
		}
	}()
	for i := 0; i < 2; i++ {
		go func() {
			for {
				blockOnChannel(ch)
			}
		}()
	}
}

//go:noinline
func blockOnChannel(ch chan int) {
	ch <- 1
}
