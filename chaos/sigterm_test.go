//go:build chaos

package chaos_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// SIGTERM, as Railway sends on a deploy, under load: the process exits
// cleanly within railway.json's drainingSeconds, every request in flight
// (bodies still arriving) gets its 201 and is stored, every answered fast
// request is a 201, and no request a handler saw loses its answer.
//
// Fast requests sent while the server shuts down can fail without an
// answer; each is a failure unless it provably never reached a handler.
// They fail in three ways: a dial refused once the listener is closed; a
// new connection still in the kernel's accept queue when the listening
// socket closes, which Linux resets; and a request Go's server reads after
// its shutdown began, which it drops by closing the connection without
// calling a handler (golang.org/issue/75591), as it does to an idle
// kept-alive connection (net/http then resends on a new connection, which
// is refused). None of them reached the API, and Railway stops routing to
// an instance before it sends SIGTERM, so in production none arrive then.
// The proof is the access log: Caddy writes a line, with the request's
// X-Request-Id, for every request a handler served, and the process has
// exited (so finished writing) before the log is read; a failed request
// whose id is there, or whose mood is stored, was handled and its answer
// lost, which fails the test.
func TestSIGTERMDrains(t *testing.T) {
	drain := drainingSeconds(t)
	dbURL := testservices.NewDatabase(t)
	r := startReplica(t, "", append([]string{"SECRET_KEY=" + soultest.RandomHex(32), "DATABASE_URL=" + dbURL}, noLimits...)...)
	r.waitServing(t)
	token := r.signIn(t)
	host := strings.TrimPrefix(r.base, "http://")

	// In flight: each sends its body a byte at a time over about 3s, so
	// the SIGTERM lands in the middle of every one of them.
	const slow = 6
	type slowResult struct {
		status int
		id     string
		at     time.Time
		err    error
	}
	slowResults := make(chan slowResult, slow)
	for i := 0; i < slow; i++ {
		go func(i int) {
			note := fmt.Sprintf("term-slow-%d", i)
			body := `{"score":4,"note":"` + note + `"}`
			conn, err := net.DialTimeout("tcp", host, 5*time.Second)
			if err != nil {
				slowResults <- slowResult{err: err}
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
			fmt.Fprintf(conn, "POST /api/moods HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nIdempotency-Key: %s\r\n%s: %s\r\nContent-Length: %d\r\n\r\n",
				host, token, note, requestIDHeader, note, len(body))
			step := 3 * time.Second / time.Duration(len(body))
			for j := 0; j < len(body); j++ {
				if _, err := conn.Write([]byte{body[j]}); err != nil {
					slowResults <- slowResult{err: err}
					return
				}
				time.Sleep(step)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				slowResults <- slowResult{err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			slowResults <- slowResult{status: resp.StatusCode, id: moodID(b), at: time.Now()}
		}(i)
	}

	// Steady fast load beside them until the listener is gone.
	var (
		sent, ok, bad, refused atomic.Int64
		mu                     sync.Mutex
		ids                    []string
		unanswered             []string
		answered               string
		wg                     sync.WaitGroup
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Second)
			for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
				sent.Add(1)
				note := fmt.Sprintf("term-%d-%d", w, i)
				req, wire := traced(moodRequest(r.base, token, note))
				req.Header.Set(requestIDHeader, note)
				resp, err := client.Do(req)
				if err != nil {
					var op *net.OpError
					var ne net.Error
					switch {
					case errors.As(err, &ne) && ne.Timeout():
						bad.Add(1)
						t.Errorf("POST /api/moods during shutdown: %v: no answer in %v", err, client.Timeout)
					case errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED):
						refused.Add(1)
					default:
						// Reset or closed: the access log tells below
						// whether a handler saw it.
						mu.Lock()
						unanswered = append(unanswered, note)
						mu.Unlock()
						t.Logf("POST /api/moods during shutdown: %v (%s)", err, wire)
					}
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					if bad.Add(1) <= 3 {
						t.Errorf("POST /api/moods during shutdown: %d %s", resp.StatusCode, b)
					}
					continue
				}
				ok.Add(1)
				mu.Lock()
				ids = append(ids, moodID(b))
				if answered == "" {
					answered = note
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}(w)
	}

	time.Sleep(1500 * time.Millisecond)
	termAt := time.Now()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var exitAfter time.Duration
	select {
	case <-r.done:
		exitAfter = time.Since(termAt)
	case <-time.After(drain + 15*time.Second):
		t.Fatalf("still running %v after SIGTERM, past drainingSeconds (%v), when Railway kills it:\n%s",
			drain+15*time.Second, drain, tail(r.log.String(), 20))
	}
	wg.Wait()
	if exitAfter > drain {
		t.Errorf("exited %v after SIGTERM, past railway.json's drainingSeconds (%v): Railway would have killed it", exitAfter, drain)
	}
	if r.exitErr != nil {
		t.Errorf("exit after SIGTERM: %v, want a clean exit:\n%s", r.exitErr, tail(r.log.String(), 20))
	}

	var slowOK int64
	for i := 0; i < slow; i++ {
		res := <-slowResults
		switch {
		case res.err != nil:
			t.Errorf("request in flight at SIGTERM: %v", res.err)
		case res.status != http.StatusCreated:
			t.Errorf("request in flight at SIGTERM: status %d, want 201", res.status)
		case !res.at.After(termAt):
			// Answered before the signal: it was not in flight, and the
			// test did not test draining.
			t.Errorf("request meant to be in flight at SIGTERM was answered %v before it", termAt.Sub(res.at))
		default:
			slowOK++
			ids = append(ids, res.id)
		}
	}

	db := openSQL(t, dbURL)
	stored := idsInDB(t, db)
	lost := int64(0)
	for _, id := range ids {
		if !stored[id] {
			lost++
		}
	}
	// The access log can tell which requests a handler saw only if an
	// answered one is in it.
	if answered == "" || !r.handled(answered) {
		t.Fatalf("answered request %q is not in the access log: it cannot tell which requests a handler saw", answered)
	}
	notes := notesInDB(t, db)
	var dropped, unhandled int64
	for _, note := range unanswered {
		if r.handled(note) || notes[note] > 0 {
			dropped++
		} else {
			unhandled++
		}
	}
	figures(t, "sigterm", sent.Load()+slow, bad.Load()+dropped+slow-slowOK, lost,
		fmt.Sprintf("in_flight=%d in_flight_ok=%d fast_ok=%d refused_after_close=%d unanswered_never_handled=%d dropped=%d exit_after=%s draining_seconds=%s",
			slow, slowOK, ok.Load(), refused.Load(), unhandled, dropped, exitAfter.Round(100*time.Millisecond), drain))
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes are not in the database", lost, len(ids))
	}
	if dropped > 0 {
		t.Errorf("%d requests were handled (in the access log or stored) but their connection was cut before the answer", dropped)
	}
}
