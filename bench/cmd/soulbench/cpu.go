package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// snap is the CPU time, in µs, that the binary, every Postgres process and
// Redis have used so far, and the binary's allocations so far.
type snap struct{ bin, pg, redis, mallocs float64 }

// threadsCPU sums the run time of a process's threads from
// /proc/<pid>/task/*/schedstat (nanoseconds, unlike the 10 ms ticks of
// /proc/<pid>/stat).
func threadsCPU(pid int) float64 {
	ts, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum float64
	for _, t := range ts {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		v, _ := strconv.ParseFloat(f[0], 64)
		sum += v / 1000
	}
	return sum
}

// byName sums threadsCPU over every process whose name starts with name:
// Postgres runs a process per connection. Only the throwaway servers of
// scripts/testenv.sh run here, so every such process is the bench's.
func byName(name string) float64 {
	ds, _ := filepath.Glob("/proc/[0-9]*/comm")
	var sum float64
	for _, d := range ds {
		b, err := os.ReadFile(d)
		if err != nil || !strings.HasPrefix(strings.TrimSpace(string(b)), name) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		sum += threadsCPU(pid)
	}
	return sum
}

// cpuSnap reads the counters; mallocs comes from the binary's admin
// /metrics (go_memstats_mallocs_total).
func cpuSnap(pid int, admin string) snap {
	s := snap{bin: threadsCPU(pid), pg: byName("postgres"), redis: byName("redis-server")}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err == nil {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "go_memstats_mallocs_total ") {
				s.mallocs, _ = strconv.ParseFloat(strings.Fields(sc.Text())[1], 64)
			}
		}
		resp.Body.Close()
	}
	return s
}

// perRequest is what each request of a scenario cost between two snaps.
func (a snap) perRequest(b snap, requests int) (cpu map[string]float64, allocs float64) {
	if requests == 0 {
		return nil, 0
	}
	n := float64(requests)
	return map[string]float64{"binary": (b.bin - a.bin) / n, "postgres": (b.pg - a.pg) / n, "redis": (b.redis - a.redis) / n}, (b.mallocs - a.mallocs) / n
}
