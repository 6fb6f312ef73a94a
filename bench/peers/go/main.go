// Command go-peer is the Go side of spindle's side-by-side benchmarks (bench/compare).
//
// Usage: go-peer <workload> --workers N [--scale small|full]
//
// It runs one workload with runtime.GOMAXPROCS(N), checks its own result (a wrong program must not
// report a number: it prints the reason on stderr and exits 1), and prints exactly one JSON line on
// stdout:
//
//	{"impl":"go","workload":"skynet","workers":2,"metric":"ms","value":575.3,"extra":{...}}
//
// A workload Go has no counterpart for prints {"impl":"go","workload":W,"unsupported":true}.
// The sizes and the definition of each workload are in bench/peers/README.md; they must match the
// Boost.Fiber peer (bench/peers/boostfiber/main.cpp) and spindle's own program.
//
// Standard library only, so it builds offline in GOPATH mode (GO111MODULE=off) with Debian's Go 1.19.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Impl     string             `json:"impl"`
	Workload string             `json:"workload"`
	Workers  int                `json:"workers"`
	Metric   string             `json:"metric"`
	Value    float64            `json:"value"`
	Extra    map[string]float64 `json:"extra"`
}

var workers = 1
var small = false

// scaled returns n at full scale and n/100 (at least 1) with --scale small.
func scaled(n int) int {
	if small {
		n /= 100
		if n < 1 {
			n = 1
		}
	}
	return n
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go-peer: CHECK FAILED: "+format+"\n", args...)
	os.Exit(1)
}

func ms(d time.Duration) float64 { return round3(float64(d.Nanoseconds()) / 1e6) }

func nsPer(d time.Duration, n int) float64 { return round3(float64(d.Nanoseconds()) / float64(n)) }

func round3(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 3, 64), 64)
	return v
}

// rssKB reads the current resident set size (VmRSS) in KiB, so the driver can subtract the
// baseline from the peak (ru_maxrss) when it computes bytes per fiber.
func rssKB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				v, _ := strconv.ParseFloat(f[1], 64)
				return v
			}
		}
	}
	return 0
}

// splitmix64 gives the same pseudo-random sleep durations in every implementation.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// ---------------------------------------------------------------------------------------------
// skynet: the classic (github.com/atemerev/skynet) with unbuffered channels.

func skynetNode(c chan int, num, size, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	var sum int
	for i := 0; i < div; i++ {
		sub := num + i*(size/div)
		go skynetNode(rc, sub, size/div, div)
	}
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func skynet() result {
	n := scaled(1000000)
	want := n * (n - 1) / 2
	c := make(chan int)
	t0 := time.Now()
	go skynetNode(c, 0, n, 10)
	sum := <-c
	d := time.Since(t0)
	if sum != want {
		fail("skynet sum %d, want %d", sum, want)
	}
	fibers := 0
	for s := n; s >= 1; s /= 10 {
		fibers += s
	}
	return result{Metric: "ms", Value: ms(d), Extra: map[string]float64{"fibers": float64(fibers)}}
}

// ---------------------------------------------------------------------------------------------
// spawn_join: spawn n trivial fibers, then join them all.

func spawnJoin() result {
	n := scaled(1000000)
	var count int64
	var wg sync.WaitGroup
	wg.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&count, 1)
			wg.Done()
		}()
	}
	t1 := time.Now()
	wg.Wait()
	t2 := time.Now()
	if count != int64(n) {
		fail("spawn_join ran %d fibers, want %d", count, n)
	}
	return result{Metric: "ns/op", Value: nsPer(t2.Sub(t0), n),
		Extra: map[string]float64{"spawn_ms": ms(t1.Sub(t0)), "join_ms": ms(t2.Sub(t1)), "fibers": float64(n)}}
}

// ---------------------------------------------------------------------------------------------
// pingpong: two fibers bounce a counter over two unbuffered channels.

func pingpong() result {
	n := scaled(1000000)
	ping := make(chan int)
	pong := make(chan int)
	var wg sync.WaitGroup
	wg.Add(2)
	bad := int64(-1)
	t0 := time.Now()
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			ping <- i
			if v := <-pong; v != i+1 {
				atomic.StoreInt64(&bad, int64(i))
			}
		}
		close(ping)
	}()
	go func() {
		defer wg.Done()
		for v := range ping {
			pong <- v + 1
		}
	}()
	wg.Wait()
	d := time.Since(t0)
	if bad >= 0 {
		fail("pingpong: wrong reply at round %d", bad)
	}
	return result{Metric: "ns/op", Value: nsPer(d, n), Extra: map[string]float64{"round_trips": float64(n)}}
}

// ---------------------------------------------------------------------------------------------
// spsc: one producer, one consumer, buffered channel of capacity 1024; the consumer checks order.

func spsc() result {
	n := scaled(2000000)
	ch := make(chan int, 1024)
	var wg sync.WaitGroup
	wg.Add(2)
	got, bad := 0, -1
	t0 := time.Now()
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	go func() {
		defer wg.Done()
		for v := range ch {
			if v != got && bad < 0 {
				bad = got
			}
			got++
		}
	}()
	wg.Wait()
	d := time.Since(t0)
	if bad >= 0 || got != n {
		fail("spsc received %d messages (first out of order at %d), want %d in order", got, bad, n)
	}
	return result{Metric: "ns/op", Value: nsPer(d, n), Extra: map[string]float64{"messages": float64(n), "capacity": 1024}}
}

// ---------------------------------------------------------------------------------------------
// mpmc: 4 producers and 4 consumers over one buffered channel of capacity 128. Every value is
// received exactly once: the count and the sum are checked.

func mpmc() result {
	const producers, consumers = 4, 4
	n := scaled(2000000) / producers * producers
	per := n / producers
	ch := make(chan int, 128)
	var pwg, cwg sync.WaitGroup
	pwg.Add(producers)
	cwg.Add(consumers)
	counts := make([]int, consumers)
	sums := make([]int, consumers)
	t0 := time.Now()
	for p := 0; p < producers; p++ {
		go func(p int) {
			defer pwg.Done()
			for i := p * per; i < (p+1)*per; i++ {
				ch <- i
			}
		}(p)
	}
	for c := 0; c < consumers; c++ {
		go func(c int) {
			defer cwg.Done()
			cnt, sum := 0, 0
			for v := range ch {
				cnt++
				sum += v
			}
			counts[c], sums[c] = cnt, sum
		}(c)
	}
	pwg.Wait()
	close(ch)
	cwg.Wait()
	d := time.Since(t0)
	cnt, sum := 0, 0
	for c := 0; c < consumers; c++ {
		cnt += counts[c]
		sum += sums[c]
	}
	if cnt != n || sum != n*(n-1)/2 {
		fail("mpmc received %d messages summing to %d, want %d summing to %d", cnt, sum, n, n*(n-1)/2)
	}
	return result{Metric: "ns/op", Value: nsPer(d, n), Extra: map[string]float64{"messages": float64(n), "capacity": 128}}
}

// ---------------------------------------------------------------------------------------------
// select_unbuffered / select_buffered: two producers each feed their own channel with n/2 values;
// one consumer selects over both until both are closed.

func selectWorkload(capacity int) result {
	n := scaled(2000000) / 2 * 2
	half := n / 2
	a := make(chan int, capacity)
	b := make(chan int, capacity)
	produce := func(ch chan int, from int) {
		for i := from; i < from+half; i++ {
			ch <- i
		}
		close(ch)
	}
	t0 := time.Now()
	go produce(a, 0)
	go produce(b, half)
	cnt, sum, fromA := 0, 0, 0
	ra, rb := a, b
	for ra != nil || rb != nil {
		select {
		case v, ok := <-ra:
			if !ok {
				ra = nil
				continue
			}
			cnt++
			fromA++
			sum += v
		case v, ok := <-rb:
			if !ok {
				rb = nil
				continue
			}
			cnt++
			sum += v
		}
	}
	d := time.Since(t0)
	if cnt != n || sum != n*(n-1)/2 || fromA != half {
		fail("select received %d messages (%d from a) summing to %d, want %d (%d) summing to %d",
			cnt, fromA, sum, n, half, n*(n-1)/2)
	}
	return result{Metric: "ns/op", Value: nsPer(d, n), Extra: map[string]float64{"messages": float64(n), "capacity": float64(capacity)}}
}

// ---------------------------------------------------------------------------------------------
// mutex: 1,000 fibers each take a fiber mutex 1,000 times to increment one counter.

func mutexWorkload() result {
	fibers, iters := 1000, 1000
	if small {
		fibers, iters = 100, 100
	}
	var mu sync.Mutex
	counter := 0
	var wg sync.WaitGroup
	wg.Add(fibers)
	t0 := time.Now()
	for f := 0; f < fibers; f++ {
		go func() {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	if counter != fibers*iters {
		fail("mutex counter %d, want %d", counter, fibers*iters)
	}
	return result{Metric: "ns/op", Value: nsPer(d, fibers*iters), Extra: map[string]float64{"fibers": float64(fibers), "locks": float64(fibers * iters)}}
}

// ---------------------------------------------------------------------------------------------
// parked_1m: spawn n fibers that each block on one shared channel; once all of them have started,
// close the channel and join them. spawn_ms runs until every fiber has reached its wait.

func parked() result {
	n := scaled(1000000)
	base := rssKB()
	done := make(chan struct{})
	var started, woke int64
	var wg sync.WaitGroup
	wg.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&started, 1)
			<-done
			atomic.AddInt64(&woke, 1)
			wg.Done()
		}()
	}
	for atomic.LoadInt64(&started) < int64(n) {
		runtime.Gosched()
	}
	t1 := time.Now()
	close(done)
	wg.Wait()
	t2 := time.Now()
	if woke != int64(n) {
		fail("parked: %d fibers woke, want %d", woke, n)
	}
	spawn, wake := ms(t1.Sub(t0)), ms(t2.Sub(t1))
	return result{Metric: "ms", Value: round3(spawn + wake),
		Extra: map[string]float64{"spawn_ms": spawn, "wake_ms": wake, "fibers": float64(n), "base_rss_kb": base}}
}

// ---------------------------------------------------------------------------------------------
// timers_100k: n fibers each sleep d_i = 1000 + splitmix64(i) % 9001 microseconds; lateness is how
// long after its deadline each one ran again.

func timers() result {
	n := scaled(100000)
	late := make([]int64, n)
	var wg sync.WaitGroup
	wg.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func(i int) {
			defer wg.Done()
			d := time.Duration(1000+splitmix64(uint64(i))%9001) * time.Microsecond
			s := time.Now()
			time.Sleep(d)
			late[i] = int64(time.Since(s) - d)
		}(i)
	}
	wg.Wait()
	wall := time.Since(t0)
	return timerResult(wall, late)
}

func timerResult(wall time.Duration, late []int64) result {
	n := len(late)
	sort.Slice(late, func(a, b int) bool { return late[a] < late[b] })
	var sum float64
	for _, l := range late {
		if l < 0 {
			fail("timers: a fiber woke %d ns before its deadline", -l)
		}
		sum += float64(l)
	}
	p99 := late[(n*99+99)/100-1]
	return result{Metric: "ms", Value: ms(wall), Extra: map[string]float64{
		"mean_late_us": round3(sum / float64(n) / 1e3), "p99_late_us": round3(float64(p99) / 1e3),
		"max_late_us": round3(float64(late[n-1]) / 1e3), "fibers": float64(n)}}
}

// ---------------------------------------------------------------------------------------------
// ctx_cancel: n contexts derived from one root, each watched by a fiber blocked on ctx.Done();
// cancel the root and time until every watcher has observed it.

func ctxCancel() result {
	n := scaled(100000)
	root, cancel := context.WithCancel(context.Background())
	var started int64
	var wg sync.WaitGroup
	wg.Add(n)
	t0 := time.Now()
	cancels := make([]context.CancelFunc, n)
	for i := 0; i < n; i++ {
		ctx, c := context.WithCancel(root)
		cancels[i] = c
		go func() {
			atomic.AddInt64(&started, 1)
			<-ctx.Done()
			if ctx.Err() != context.Canceled {
				fail("ctx_cancel: Err() = %v", ctx.Err())
			}
			wg.Done()
		}()
	}
	for atomic.LoadInt64(&started) < int64(n) {
		runtime.Gosched()
	}
	t1 := time.Now()
	cancel()
	wg.Wait()
	t2 := time.Now()
	for _, c := range cancels {
		c()
	}
	return result{Metric: "ms", Value: ms(t2.Sub(t1)), Extra: map[string]float64{"setup_ms": ms(t1.Sub(t0)), "fibers": float64(n)}}
}

// ---------------------------------------------------------------------------------------------

var workloads = map[string]func() result{
	"skynet":            skynet,
	"spawn_join":        spawnJoin,
	"pingpong":          pingpong,
	"spsc":              spsc,
	"mpmc":              mpmc,
	"select_unbuffered": func() result { return selectWorkload(0) },
	"select_buffered":   func() result { return selectWorkload(1024) },
	"mutex":             mutexWorkload,
	"parked_1m":         parked,
	"timers_100k":       timers,
	"ctx_cancel":        ctxCancel,
}

// All workloads of the protocol, including those Go has no counterpart for.
var unsupported = map[string]bool{"switch_floor": true}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go-peer <workload> --workers N [--scale small|full]")
	os.Exit(2)
}

func main() {
	args := os.Args[1:]
	if len(args) < 1 {
		usage()
	}
	name := args[0]
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "--workers":
			if i+1 >= len(args) {
				usage()
			}
			v, err := strconv.Atoi(args[i+1])
			if err != nil || v < 1 {
				usage()
			}
			workers = v
			i++
		case "--scale":
			if i+1 >= len(args) {
				usage()
			}
			switch args[i+1] {
			case "small":
				small = true
			case "full":
				small = false
			default:
				usage()
			}
			i++
		default:
			usage()
		}
	}
	out := json.NewEncoder(os.Stdout)
	if unsupported[name] {
		out.Encode(struct {
			Impl        string `json:"impl"`
			Workload    string `json:"workload"`
			Unsupported bool   `json:"unsupported"`
		}{"go", name, true})
		return
	}
	run, ok := workloads[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "go-peer: unknown workload %q\n", name)
		os.Exit(2)
	}
	runtime.GOMAXPROCS(workers)
	r := run()
	r.Impl, r.Workload, r.Workers = "go", name, workers
	out.Encode(r)
}
