package testservices

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvPgBouncer is the pgbouncer executable (Debian's pgbouncer package),
// set by scripts/testenv.sh.
const EnvPgBouncer = "SOUL_TEST_PGBOUNCER"

// PgBouncerPoolSize is the most server connections the test PgBouncer
// opens per database: below the Postgres connections a test may open
// directly, above what the tests behind it hold at once (four replicas
// migrating together hold five).
const PgBouncerPoolSize = 10

// StartPgBouncer starts a private PgBouncer in transaction pooling mode in
// front of the Postgres server of postgresURL and returns it running. Its
// URL is postgresURL with the host and port of PgBouncer, which passes any
// database name through to the server of the same name (so one PgBouncer
// serves every database a test creates), and lets in the user of
// postgresURL without a password: it listens on loopback only, like the
// test Postgres, which trusts loopback too. PgBouncer refuses to run as
// root, so as root it runs as the postgres user.
func StartPgBouncer(t testing.TB, postgresURL string) *Server {
	t.Helper()
	bin := lookup(t, EnvPgBouncer, "PgBouncer")
	u, err := url.Parse(postgresURL)
	if err != nil || u.Host == "" || u.User == nil || u.User.Username() == "" {
		t.Fatalf("testservices: PgBouncer needs a postgres://user@host:port/db URL (parse error: %v)", err)
	}
	pgHost, pgPort := u.Hostname(), u.Port()
	if pgPort == "" {
		pgPort = "5432"
	}
	uid, gid := notRoot(t, "PgBouncer")
	p := &pgbouncerProcess{bin: bin, dir: serverDir(t, "soul-pgbouncer-", uid, gid), root: uid != -1}

	// trust still looks the user up in auth_file; the password there is
	// the one PgBouncer logs in to Postgres with, if Postgres asks.
	password, _ := u.User.Password()
	users := fmt.Sprintf("%q %q\n", u.User.Username(), password)
	if err := p.write("users.txt", users, uid, gid); err != nil {
		t.Fatalf("testservices: PgBouncer auth_file: %v", err)
	}
	p.conf = func(port int) string {
		return fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 1000
; A client left waiting for a server connection fails after this rather
; than hanging its test until the suite's timeout.
query_wait_timeout = 20
; Sent by some drivers; PgBouncer would refuse the connection otherwise.
ignore_startup_parameters = extra_float_digits
logfile = %s
pidfile = %s
`, pgHost, pgPort, port, filepath.Join(p.dir, "users.txt"), PgBouncerPoolSize, p.logFile(), filepath.Join(p.dir, "pgbouncer.pid"))
	}
	p.uid, p.gid = uid, gid

	return launch(t, "pgbouncer", p, func(port int) string {
		v := *u
		v.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		return v.String()
	})
}

type pgbouncerProcess struct {
	bin      string
	dir      string
	root     bool
	uid, gid int
	conf     func(port int) string
	child
}

func (p *pgbouncerProcess) logFile() string { return filepath.Join(p.dir, "pgbouncer.log") }

// write writes a file PgBouncer reads into its directory, owned by the
// user it runs as.
func (p *pgbouncerProcess) write(name, content string, uid, gid int) error {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if uid != -1 {
		return os.Chown(path, uid, gid)
	}
	return nil
}

func (p *pgbouncerProcess) start(port int) error {
	if err := p.write("pgbouncer.ini", p.conf(port), p.uid, p.gid); err != nil {
		return err
	}
	// A fresh log per start: the port check below reads it.
	if err := p.write("pgbouncer.log", "", p.uid, p.gid); err != nil {
		return err
	}
	args := []string{filepath.Join(p.dir, "pgbouncer.ini")}
	if p.root {
		args = append([]string{"-u", "postgres"}, args...)
	}
	// In the foreground, a child of the test: stopping it can wait for its
	// exit. Its log goes to logfile (launch reads it on failure).
	cmd := exec.Command(p.bin, args...)
	cmd.Dir = p.dir
	if err := p.run(cmd); err != nil {
		return err
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(startTimeout)
	for {
		// PgBouncer listens once its config is loaded; it connects to
		// Postgres only when a client asks.
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			if strings.Contains(tail(p.logFile(), 20), "already in use") {
				// Another process owns the port: what answered was not us.
				p.kill()
				return fmt.Errorf("port %d already in use", port)
			}
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("pgbouncer exited: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("pgbouncer not listening on %s after %v: %v", addr, startTimeout, err)
		}
	}
}

// stop ends PgBouncer at once (SIGTERM is its fast exit): at the end of a
// test nothing waits on it.
func (p *pgbouncerProcess) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.waitExit("pgbouncer", "SIGTERM")
}
