package limiter

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/testservices"
)

// envRedisServer names the redis-server binary for tests that stop and
// restart their own server; redis-server on PATH otherwise.
const envRedisServer = "SOUL_TEST_REDIS_SERVER"

// privateRedis is a redis-server owned by one test, so the test can stop
// and restart it without disturbing the shared one.
type privateRedis struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	logs bytes.Buffer
}

func startPrivateRedis(t testing.TB) *privateRedis {
	t.Helper()
	bin := os.Getenv(envRedisServer)
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			if os.Getenv(testservices.EnvRequire) == "1" {
				t.Fatalf("redis-server is required: not on PATH and %s unset", envRedisServer)
			}
			t.Skipf("redis-server not available: not on PATH and %s unset", envRedisServer)
		}
	}
	s := &privateRedis{t: t, bin: bin, dir: t.TempDir(), port: freePort(t)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *privateRedis) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

func (s *privateRedis) url() string {
	return "redis://" + s.addr() + "/0"
}

func (s *privateRedis) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir)
	s.cmd.Stdout = &s.logs
	s.cmd.Stderr = &s.logs
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ping(s.addr()) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	s.t.Fatalf("redis-server on %s did not answer PING:\n%s", s.addr(), s.logs.String())
}

// stop kills the server outright, as a crash or network loss would look.
func (s *privateRedis) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}
