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

	"github.com/soulapp/soul/internal/soultest"
	"github.com/soulapp/soul/internal/testservices"
)

// SIGTERM, as Railway sends on a deploy, under load: requests already in
// flight (bodies still arriving) finish with 201 and are stored, no
// answer is a 5xx, and the process exits once they are done.
//
// A fast request sent just as the listener closes can meet a reset
// before any handler reads it: a connection still in the kernel's accept
// queue when the listening socket closes is reset, and so is a request
// written on an idle keep-alive connection the server is closing. Neither
// reached the API (Railway stops routing to an instance before it sends
// SIGTERM, so in production none arrive then). They are counted apart;
// the test fails if such a request was stored, since then the API did
// handle it and its answer was lost.
func TestSIGTERMDrains(t *testing.T) {
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
			fmt.Fprintf(conn, "POST /api/moods HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nIdempotency-Key: %s\r\nContent-Length: %d\r\n\r\n",
				host, token, note, len(body))
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
			slowResults <- slowResult{status: resp.StatusCode, id: moodID(b)}
		}(i)
	}

	// Steady fast load beside them until the listener is gone.
	var (
		sent, ok, refused, bad atomic.Int64
		mu                     sync.Mutex
		ids                    []string
		resetNotes             []string
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
				resp, err := client.Do(moodRequest(r.base, token, note))
				if err != nil {
					// Refused: the listener closed, nothing was accepted.
					var op *net.OpError
					if errors.As(err, &op) && op.Op == "dial" {
						refused.Add(1)
					} else {
						// Reset: whether a handler saw it is told by the
						// database below.
						mu.Lock()
						resetNotes = append(resetNotes, note)
						mu.Unlock()
						t.Logf("POST /api/moods during shutdown: %v", err)
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
	case <-time.After(60 * time.Second):
		t.Fatalf("still running 60s after SIGTERM:\n%s", tail(r.log.String(), 20))
	}
	wg.Wait()

	var slowOK int64
	for i := 0; i < slow; i++ {
		res := <-slowResults
		switch {
		case res.err != nil:
			t.Errorf("request in flight at SIGTERM: %v", res.err)
		case res.status != http.StatusCreated:
			t.Errorf("request in flight at SIGTERM: status %d, want 201", res.status)
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
	// A reset request that was stored was handled, and its answer lost.
	notes := notesInDB(t, db)
	var dropped, resetUnread int64
	for _, note := range resetNotes {
		if notes[note] > 0 {
			dropped++
		} else {
			resetUnread++
		}
	}
	figures(t, "sigterm", sent.Load()+slow, bad.Load()+dropped+slow-slowOK, lost,
		fmt.Sprintf("in_flight=%d in_flight_ok=%d fast_ok=%d refused_after_close=%d reset_before_a_handler=%d dropped=%d exit_after=%s",
			slow, slowOK, ok.Load(), refused.Load(), resetUnread, dropped, exitAfter.Round(100*time.Millisecond)))
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes are not in the database", lost, len(ids))
	}
	if dropped > 0 {
		t.Errorf("%d requests were handled (their mood is stored) but their connection was cut before the answer", dropped)
	}
}
