// Package sentrytest is a local stand-in for Sentry's envelope endpoint,
// for tests of error reports: point SENTRY_DSN at Server.URL.
package sentrytest

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a local stand-in for Sentry's envelope endpoint: it keeps the
// bodies it receives.
type Server struct {
	URL string // the DSN pointing at it

	mu        sync.Mutex
	envelopes [][]byte
	arrived   chan struct{}
}

// New starts the stand-in for the test.
func New(t testing.TB) *Server {
	s := &Server{arrived: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/1/envelope/" {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.envelopes = append(s.envelopes, b)
		s.mu.Unlock()
		s.arrived <- struct{}{}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"00000000000000000000000000000000"}`))
	}))
	t.Cleanup(srv.Close)
	s.URL = "http://publickey@" + strings.TrimPrefix(srv.URL, "http://") + "/1"
	return s
}

// Count returns how many envelopes arrived so far.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.envelopes)
}

// Wait returns the first envelope, failing the test if none arrives.
func (s *Server) Wait(t testing.TB) []byte {
	t.Helper()
	select {
	case <-s.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no envelope reached the Sentry stand-in")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.envelopes[0]
}
