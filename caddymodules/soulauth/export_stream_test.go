package soulauth_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/soultest"
)

// The export is streamed: while a client reads nothing, the server is
// still inside the export's snapshot transaction, part way through the
// journal, because what it wrote so far fills the connection. An export
// that built the document before writing would have read every mood and
// closed the transaction by then. Postgres only: SQLite reads without a
// snapshot transaction, so there is nothing to watch.
func TestExportStreams(t *testing.T) {
	// About 12 MB of JSON: more than a loopback connection's buffers hold
	// while the client's receive window stays small.
	const moods = 40_000
	s := soultest.Start(t, soultest.Options{Database: soultest.Postgres, Env: map[string]string{
		"RATE_LIMIT_EXPORT_LIMIT":  "1000",
		"RATE_LIMIT_DEFAULT_LIMIT": "1000000",
		"RATE_LIMIT_SHIELD_EVENTS": "1000000",
	}})
	c := newClient(t, s)
	pair := c.signIn(newPhone())
	db := s.OpenDB(t)
	insertMoods(t, db, pair.User.ID, moods, "stream")

	conn := stalledConn(t, s.BaseURL)
	req, err := http.NewRequest(http.MethodGet, s.BaseURL+soulauth.PathExport, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
	req.Header.Set("Accept-Encoding", "identity")
	if err := req.Write(conn); err != nil {
		t.Fatalf("sending the export request: %v", err)
	}

	// The client reads nothing. Once the export's transaction has begun, it
	// must stay open: the server waits for the client part-way through the
	// journal instead of reading it all.
	deadline := time.Now().Add(15 * time.Second)
	for openTransactions(t, db) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the export's snapshot transaction never showed as waiting, with the client reading nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if n := openTransactions(t, db); n != 1 {
		t.Fatalf("with the client reading nothing, %d export transactions are open 2 s later, want 1 "+
			"(the server read the whole journal before the client took any of it)", n)
	}

	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("reading the export: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export answered %d", resp.StatusCode)
	}
	var doc exportDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("decoding the export: %v", err)
	}
	if len(doc.Moods) != moods {
		t.Errorf("the export holds %d moods, want %d", len(doc.Moods), moods)
	}
	deadline = time.Now().Add(10 * time.Second)
	for openTransactions(t, db) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the export's transaction is still open after the download ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stalledConn connects to base with a receive buffer of a few KiB, so the
// server's writes stop soon when nobody reads.
func stalledConn(t *testing.T, base string) net.Conn {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// openTransactions counts the server's connections to the test database
// that sit inside a transaction between two statements: an export waiting
// for its client to take the last batch.
func openTransactions(t *testing.T, db *bun.DB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	if err := db.NewRaw(`SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'`).
		Scan(ctx, &n); err != nil {
		t.Fatalf("reading pg_stat_activity: %v", err)
	}
	return n
}
