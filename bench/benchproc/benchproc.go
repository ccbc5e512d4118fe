// Package benchproc runs the SOUL binary for the benchmarks under bench/:
// a fresh process on loopback ports of its own, in a throwaway directory,
// with its memory read from /proc, and the odds and ends every benchmark
// prints (the machine, the load generator).
package benchproc

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Options say what to run.
type Options struct {
	// Binary and Caddyfile are paths, relative to the working directory or
	// absolute.
	Binary, Caddyfile string
	// Env is added to the defaults (SITE_ADDRESS, ADMIN_ADDRESS, a random
	// SECRET_KEY, DEV_MODE=true, SQLite in the throwaway directory, HOME and
	// Caddy's XDG directories there too) and wins over them.
	Env []string
	// ExtraSites names variables that each get a loopback site address of
	// their own (http://127.0.0.1:port), for a Caddyfile with more sites.
	ExtraSites []string
	// StopTimeout is how long Stop waits after SIGINT before SIGKILL;
	// 20s when zero.
	StopTimeout time.Duration
}

// Server is a running binary.
type Server struct {
	// Base is the site's URL, Admin the admin endpoint's host:port.
	Base, Admin string
	// Sites holds the URL of each of Options.ExtraSites.
	Sites map[string]string
	// Log keeps the last 64 KiB the binary wrote.
	Log *TailBuffer

	cmd         *exec.Cmd
	dir         string
	stopTimeout time.Duration
	done        chan struct{}
	waitErr     error
	stopOnce    sync.Once
}

// Start runs the binary and returns once /healthz answers 200 (60 s at
// most).
func Start(o Options) (*Server, error) {
	bin, err := filepath.Abs(o.Binary)
	if err != nil {
		return nil, err
	}
	caddyfile, err := filepath.Abs(o.Caddyfile)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "soulbench-")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(2 + len(o.ExtraSites))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{
		Base:        "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		Admin:       "127.0.0.1:" + strconv.Itoa(ports[1]),
		Sites:       map[string]string{},
		Log:         &TailBuffer{max: 64 << 10},
		dir:         dir,
		stopTimeout: o.StopTimeout,
		done:        make(chan struct{}),
	}
	if s.stopTimeout <= 0 {
		s.stopTimeout = 20 * time.Second
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"ADMIN_ADDRESS=" + s.Admin,
		"SITE_ADDRESS=" + s.Base,
		"SQLITE_PATH=" + filepath.Join(dir, "soul.db"),
		"SECRET_KEY=" + RandomHex(32),
		"DEV_MODE=true",
	}
	for i, name := range o.ExtraSites {
		s.Sites[name] = "http://127.0.0.1:" + strconv.Itoa(ports[2+i])
		env = append(env, name+"="+s.Sites[name])
	}
	s.cmd = exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	s.cmd.Dir = dir
	s.cmd.Env = append(env, o.Env...)
	s.cmd.Stdout, s.cmd.Stderr = s.Log, s.Log
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.done) }()
	health := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("the binary exited: %v\n%s", s.waitErr, s.Log.String())
		default:
		}
		if resp, err := health.Get(s.Base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Stop()
	return nil, fmt.Errorf("the binary did not answer /healthz with 200 in 60s:\n%s", s.Log.String())
}

// Stop interrupts the binary, kills it if it has not exited after
// StopTimeout, and removes its directory. Calling it again does nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(s.stopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		_ = os.RemoveAll(s.dir)
	})
}

// Pid is the binary's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Exited is closed when the binary has exited; ExitErr then says how.
func (s *Server) Exited() <-chan struct{} { return s.done }

// ExitErr is what waiting for the binary returned; read it after Exited.
func (s *Server) ExitErr() error { return s.waitErr }

// Memory reads the binary's VmRSS and VmHWM (its peak), in MiB.
func (s *Server) Memory() (rss, hwm float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Pid()))
	if err != nil {
		return 0, 0, err
	}
	f := ProcFields(b)
	return f["VmRSS"] / 1024, f["VmHWM"] / 1024, nil
}

// ProcFields reads the "Name:  123 kB" lines of a /proc file, in kB.
func ProcFields(b []byte) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fs[0], 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// TailBuffer keeps the last bytes written to it, and counts them all.
type TailBuffer struct {
	mu  sync.Mutex
	max int
	n   int64
	b   []byte
}

func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n += int64(len(p))
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// String is everything kept.
func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// Tail is the last n bytes written, or fewer.
func (t *TailBuffer) Tail(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b[max(0, len(t.b)-n):])
}

// Total counts every byte written.
func (t *TailBuffer) Total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// FreePorts returns n TCP ports that nothing listened on at 127.0.0.1.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RandomHex is n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Capped stops a pacer after Max hits.
type Capped struct {
	vegeta.Pacer
	Max uint64
}

// Pace implements vegeta.Pacer.
func (c Capped) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= c.Max {
		return 0, true
	}
	return c.Pacer.Pace(elapsed, hits)
}

// LoadGenerator names the vegeta module the running program was built
// with.
func LoadGenerator() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/tsenart/vegeta/v12" {
				return "vegeta " + m.Version
			}
		}
	}
	return "vegeta"
}

// Machine describes where the run happened: processors, memory and the
// load average at the end.
func Machine() string {
	cpu, n := "", 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok && cpu == "" {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			}
			if strings.HasPrefix(line, "processor") {
				n++
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = fmt.Sprintf(", %.1f GiB of memory", ProcFields(b)["MemTotal"]/(1<<20))
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = ", load average " + strings.Join(strings.Fields(string(b))[:3], " ") + " at the end"
	}
	return fmt.Sprintf("%d CPUs (%s)%s, load generator and server on the same machine%s", n, cpu, mem, load)
}
