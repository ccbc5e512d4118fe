package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// CPU per request is read from /proc around each scenario: utime+stime of
// /proc/<pid>/stat, which count every thread of a process, the exited ones
// too, in clock ticks (getconf CLK_TCK, 100 on Linux, so 10 ms each). A
// scenario of 6 s at a few thousand requests per second makes that well
// under a microsecond per request. (/proc/<pid>/schedstat has nanoseconds
// but only for the one thread it names, and forgets threads that exited.)
// Postgres is the postmaster and all of its processes: each live child's
// utime+stime plus the postmaster's cutime+cstime, what the children that
// exited and were reaped used.

// CPUPerRequest is one scenario's CPU time, in microseconds, over its
// requests (its units, for the sign-in scenario), of each process; -1 when
// that process could not be read.
type CPUPerRequest struct {
	Binary   float64 `json:"binary"`
	Postgres float64 `json:"postgres"`
	Redis    float64 `json:"redis"`
	// PocketBase is set in PocketBase's own scenario only: its process,
	// which includes SQLite.
	PocketBase *float64 `json:"pocketbase,omitempty"`
}

// cpuMeter knows the processes whose CPU a scenario uses. A pid of 0 is
// one not found; its figures are -1.
type cpuMeter struct {
	usPerTick                     float64
	binary, postmaster, redis, pb int
}

// cpuSample is each process's CPU time so far, in microseconds, -1 when
// unknown.
type cpuSample struct{ binary, postgres, redis, pb float64 }

func newCPUMeter(binaryPid int, adminURL string, rdb rueidis.Client) *cpuMeter {
	m := &cpuMeter{usPerTick: 1e6 / clockTicks(), binary: binaryPid}
	var err error
	if m.postmaster, err = postmasterPid(adminURL); err != nil {
		fmt.Fprintf(os.Stderr, "soulbench: Postgres CPU not measured: %v\n", err)
	}
	if m.redis, err = redisPid(rdb); err != nil {
		fmt.Fprintf(os.Stderr, "soulbench: Redis CPU not measured: %v\n", err)
	}
	return m
}

// clockTicks is getconf CLK_TCK, or Linux's 100.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}

func (m *cpuMeter) sample() cpuSample {
	one := func(pid int) float64 {
		if pid == 0 {
			return -1
		}
		st, err := readStat(pid)
		if err != nil {
			return -1
		}
		return float64(st.utime+st.stime+st.cutime+st.cstime) * m.usPerTick
	}
	return cpuSample{binary: one(m.binary), postgres: m.postgres(), redis: one(m.redis), pb: one(m.pb)}
}

// postgres is the postmaster's own time and its reaped children's, plus
// every live child's.
func (m *cpuMeter) postgres() float64 {
	if m.postmaster == 0 {
		return -1
	}
	pm, err := readStat(m.postmaster)
	if err != nil {
		return -1
	}
	ticks := pm.utime + pm.stime + pm.cutime + pm.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == m.postmaster {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.ppid != m.postmaster {
			continue
		}
		ticks += st.utime + st.stime + st.cutime + st.cstime
	}
	return float64(ticks) * m.usPerTick
}

// perRequest is after minus before over requests, per process.
func (a cpuSample) perRequest(b cpuSample, requests int, withPB bool) *CPUPerRequest {
	if requests <= 0 {
		return nil
	}
	d := func(before, after float64) float64 {
		if before < 0 || after < 0 {
			return -1
		}
		return (after - before) / float64(requests)
	}
	c := &CPUPerRequest{Binary: d(a.binary, b.binary), Postgres: d(a.postgres, b.postgres), Redis: d(a.redis, b.redis)}
	if withPB {
		v := d(a.pb, b.pb)
		c.PocketBase = &v
	}
	return c
}

type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// readStat reads /proc/<pid>/stat. The command name, in parentheses, may
// hold spaces, so the fields are counted from its closing parenthesis:
// state, ppid, ..., utime (14th field of the line), stime, cutime, cstime.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	return procStat{ppid: int(n(1)), utime: n(11), stime: n(12), cutime: n(13), cstime: n(14)}, nil
}

// postmasterPid asks the server for its data directory and reads the
// postmaster's pid from postmaster.pid there; failing that, it takes the
// parent of the backend serving this connection, which is the postmaster.
func postmasterPid(adminURL string) (int, error) {
	db, err := sql.Open("pg", adminURL)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var dataDir string
	var backend int
	if err := db.QueryRowContext(ctx, `SELECT current_setting('data_directory'), pg_backend_pid()`).Scan(&dataDir, &backend); err != nil {
		return 0, err
	}
	if f, err := os.Open(filepath.Join(dataDir, "postmaster.pid")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		if sc.Scan() {
			if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && pid > 0 {
				return pid, nil
			}
		}
	}
	st, err := readStat(backend)
	if err != nil {
		return 0, fmt.Errorf("no postmaster.pid in %s and the backend's parent unknown: %w", dataDir, err)
	}
	return st.ppid, nil
}

// redisPid is process_id from INFO server.
func redisPid(rdb rueidis.Client) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := rdb.Do(ctx, rdb.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no process_id in INFO server")
}

// mallocs reads go_memstats_mallocs_total, the heap objects the binary has
// allocated so far, from its admin endpoint's /metrics; -1 on failure.
func mallocs(c *http.Client, admin string) float64 {
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_mallocs_total "); ok {
			if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return n
			}
		}
	}
	return -1
}
