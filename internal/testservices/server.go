package testservices

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds a server's start and stop; generous because CI machines
// run many test binaries at once.
const startTimeout = 60 * time.Second

// Server is a private Postgres or Redis owned by one test, for tests that stop
// and restart a server. It listens on a loopback port that stays the same
// across restarts, and is stopped and deleted when the test ends.
//
// Start and Stop fail the test on error, so call them from the test's own
// goroutine.
type Server struct {
	t    testing.TB
	name string
	url  string
	port int
	proc process

	mu      sync.Mutex
	running bool
}

// process is what differs between Postgres and Redis.
type process interface {
	start(port int) error
	stop() error
	// crash ends the server without a clean shutdown, as a lost machine
	// would: no final save, no goodbye to clients.
	crash() error
	logFile() string
}

// URL returns the server's URL; it does not change across restarts.
func (s *Server) URL() string { return s.url }

// Start starts the server again after Stop, on the same port and with the
// same data. It returns once the server accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return
	}
	if err := s.proc.start(s.port); err != nil {
		s.t.Fatalf("testservices: start %s: %v\n%s", s.name, err, tail(s.proc.logFile(), 20))
	}
	s.running = true
}

// Stop stops the server and waits until it has exited; connections to it
// fail until Start.
func (s *Server) Stop() {
	s.t.Helper()
	s.end("stop", s.proc.stop)
}

// Kill ends the server abruptly (SIGKILL for Redis, immediate mode for
// Postgres) and waits until it has exited; Start brings it back.
func (s *Server) Kill() {
	s.t.Helper()
	s.end("kill", s.proc.crash)
}

// end stops a running server with how, failing the test when it fails.
func (s *Server) end(what string, how func() error) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	s.running = false
	if err := how(); err != nil {
		s.t.Fatalf("testservices: %s %s: %v\n%s", what, s.name, err, tail(s.proc.logFile(), 20))
	}
}

// launch starts proc on a free port, picking another port if the first one was
// taken between choosing it and binding it, and registers the final stop.
func launch(t testing.TB, name string, proc process, urlFor func(port int) string) *Server {
	t.Helper()
	return launchOn(t, name, proc, urlFor, freePort)
}

// launchOn is launch with the port chosen by pick.
func launchOn(t testing.TB, name string, proc process, urlFor func(port int) string, pick func(testing.TB) int) *Server {
	t.Helper()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		port := pick(t)
		if err = proc.start(port); err == nil {
			s := &Server{t: t, name: name, url: urlFor(port), port: port, proc: proc, running: true}
			t.Cleanup(func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.running {
					s.running = false
					if err := proc.stop(); err != nil {
						t.Errorf("testservices: stop %s: %v", name, err)
					}
				}
			})
			return s
		}
		if !strings.Contains(tail(proc.logFile(), 20), "already in use") {
			break
		}
	}
	t.Fatalf("testservices: start %s: %v\n%s", name, err, tail(proc.logFile(), 20))
	return nil
}

// StartPostgres starts a private Postgres from the binaries in
// SOUL_TEST_PG_BINDIR and returns it running. Its URL is a superuser
// connection to the maintenance database. When the test runs as root, the
// server runs as the postgres user, since Postgres refuses to run as root.
func StartPostgres(t testing.TB) *Server {
	t.Helper()
	bindir := lookup(t, EnvPGBinDir, "Postgres")

	var runAs []string
	uid, gid := notRoot(t, "Postgres")
	if uid != -1 {
		runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	dir := serverDir(t, "soul-pg-", uid, gid)

	pg := &postgresProcess{bindir: bindir, dir: dir, runAs: runAs}
	if out, err := pg.run("initdb", "-D", pg.data(), "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("testservices: initdb: %v\n%s", err, out)
	}
	// No Unix socket: nothing needs it, and a long temporary path would not fit.
	conf := `
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
`
	f, err := os.OpenFile(filepath.Join(pg.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("testservices: configure postgres: %v", err)
	}

	return launch(t, "postgres", pg, func(port int) string {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	})
}

// notRoot returns the uid and gid of the postgres user when the test runs
// as root, for servers that refuse to run as root (Postgres, PgBouncer),
// and -1, -1 otherwise.
func notRoot(t testing.TB, what string) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return -1, -1
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("testservices: %s cannot run as root and there is no postgres user: %v", what, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

type postgresProcess struct {
	bindir string
	dir    string
	runAs  []string
}

func (p *postgresProcess) data() string    { return filepath.Join(p.dir, "data") }
func (p *postgresProcess) logFile() string { return filepath.Join(p.dir, "postgres.log") }

func (p *postgresProcess) run(tool string, args ...string) ([]byte, error) {
	argv := append(append(append([]string(nil), p.runAs...), filepath.Join(p.bindir, tool)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// The test's working directory may be closed to the postgres user.
	cmd.Dir = p.dir
	return cmd.CombinedOutput()
}

func (p *postgresProcess) start(port int) error {
	timeout := strconv.Itoa(int(startTimeout / time.Second))
	out, err := p.run("pg_ctl", "-D", p.data(), "-l", p.logFile(), "-o", "-p "+strconv.Itoa(port),
		"-w", "-t", timeout, "start")
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func (p *postgresProcess) stop() error {
	timeout := strconv.Itoa(int(startTimeout / time.Second))
	// Fast mode closes client connections at once, as a crash or a failover would.
	out, err := p.run("pg_ctl", "-D", p.data(), "-m", "fast", "-w", "-t", timeout, "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func (p *postgresProcess) crash() error {
	timeout := strconv.Itoa(int(startTimeout / time.Second))
	// Immediate mode aborts every backend without a checkpoint; the next start
	// recovers from the WAL, as after a power cut.
	out, err := p.run("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "-t", timeout, "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m immediate: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// StartRedis starts a private Redis from SOUL_TEST_REDIS_SERVER and returns
// it running. Stop saves its data and Start loads it back.
func StartRedis(t testing.TB) *Server {
	t.Helper()
	bin := lookup(t, EnvRedisServer, "Redis")
	r := &redisProcess{bin: bin, dir: serverDir(t, "soul-redis-", -1, -1)}
	return launch(t, "redis", r, func(port int) string {
		return fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	})
}

type redisProcess struct {
	bin  string
	dir  string
	addr string
	// extra are more server arguments, e.g. a cluster node's.
	extra []string
	child
}

func (r *redisProcess) logFile() string { return filepath.Join(r.dir, "redis.log") }

func (r *redisProcess) start(port int) error {
	r.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// No automatic saves; Stop saves explicitly so that Start finds the data.
	cmd := exec.Command(r.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", r.dir, "--logfile", r.logFile(),
		// Lets scripts/testenv.sh stop a server left behind by a crash.
		"--pidfile", filepath.Join(r.dir, "redis.pid"))
	cmd.Args = append(cmd.Args, r.extra...)
	if err := r.run(cmd); err != nil {
		return err
	}

	deadline := time.Now().Add(startTimeout)
	for {
		reply, err := redisCommand(r.addr, "PING")
		if err == nil && reply == "+PONG" {
			return nil
		}
		select {
		case <-r.done:
			return fmt.Errorf("redis-server exited: %v", cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.kill()
			return fmt.Errorf("no answer to PING on %s after %v (last: %q, %v)", r.addr, startTimeout, reply, err)
		}
	}
}

func (r *redisProcess) stop() error {
	// SHUTDOWN answers only when it fails; on success the server closes the
	// connection.
	reply, err := redisCommand(r.addr, "SHUTDOWN", "SAVE")
	if err == nil || !errors.Is(err, errNoReply) {
		r.kill()
		return fmt.Errorf("SHUTDOWN SAVE: %q, %v", reply, err)
	}
	return r.waitExit("redis-server", "SHUTDOWN")
}

// child is a server process a test runs in the foreground, with done
// closed once it has exited, so stopping it can wait for its exit.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// run starts cmd and watches for its exit.
func (c *child) run(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	c.cmd, c.done = cmd, done
	return nil
}

// waitExit waits for the process, asked to end by how, to exit, and
// kills it when it is still running after startTimeout.
func (c *child) waitExit(name, how string) error {
	select {
	case <-c.done:
		return nil
	case <-time.After(startTimeout):
		c.kill()
		return fmt.Errorf("%s still running %v after %s", name, startTimeout, how)
	}
}

func (c *child) crash() error {
	c.kill()
	return nil
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// errNoReply is returned by redisCommand when the server closed the
// connection without answering.
var errNoReply = errors.New("connection closed without a reply")

// redisCommand sends one command on a fresh connection and returns the first
// line of the reply.
func redisCommand(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		if line == "" && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return "", errNoReply
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// serverDir makes a private directory for one server, owned by uid:gid when
// those are not -1, and removes it when the test ends. It lives outside
// t.TempDir because that one is closed to every user but the test's.
func serverDir(t testing.TB, prefix string, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp(os.Getenv(EnvTmpDir), prefix)
	if err != nil {
		t.Fatalf("testservices: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testservices: %v", err)
		}
	})
	if uid != -1 {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("testservices: %v", err)
		}
	}
	return dir
}

// freePort returns a loopback port that nothing listened on a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	return FreePort(t)
}

// FreePort returns a loopback port that was free a moment ago, for a server
// a test starts. It is drawn from 10000–19999, below the kernel's
// ephemeral range (where a port asked for with :0, an httptest server's
// or a client's, is taken) and below the cluster nodes' (clusterPort):
// released and bound again later, it cannot meanwhile become another
// server's.
func FreePort(t testing.TB) int {
	t.Helper()
	for attempt := 0; attempt < 200; attempt++ {
		port := 10000 + rand.IntN(10000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("testservices: no free port in 10000-19999")
	return 0
}

// tail returns the last n lines of a log file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Pause freezes a Redis server with SIGSTOP: it keeps its port, its
// connections and its data but answers nothing, so calls to it time out
// instead of being refused, as with a Redis stalled by its host. Resume
// lets it go on; the commands sent meanwhile run then, in order. A server
// still paused when the test ends is resumed first, so that it can be
// stopped. Only Redis can be paused.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal("pause", syscall.SIGSTOP)
	s.t.Cleanup(func() { _ = s.signalRedis(syscall.SIGCONT) })
}

// Resume continues a server that Pause froze (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	s.signal("resume", syscall.SIGCONT)
}

// signal sends sig to the running Redis server, failing the test when it
// is not running or is not Redis.
func (s *Server) signal(what string, sig syscall.Signal) {
	s.t.Helper()
	if err := s.signalRedis(sig); err != nil {
		s.t.Fatalf("testservices: %s %s: %v", what, s.name, err)
	}
}

func (s *Server) signalRedis(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.proc.(*redisProcess)
	if !ok {
		return errors.New("only Redis can be paused")
	}
	if !s.running || r.cmd == nil || r.cmd.Process == nil {
		return errors.New("not running")
	}
	select {
	case <-r.done:
		return errors.New("exited")
	default:
	}
	return r.cmd.Process.Signal(sig)
}
