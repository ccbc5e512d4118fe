package soulhealth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulhealth"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

func health(t *testing.T, s *soultest.Server) (*soultest.Response, soulhealth.Report) {
	t.Helper()
	resp := s.Do(http.MethodGet, "/healthz", nil)
	var rep soulhealth.Report
	resp.JSON(t, &rep)
	return resp, rep
}

func TestHealthOnEachDatabase(t *testing.T) {
	for _, db := range soultest.Databases {
		t.Run(string(db), func(t *testing.T) {
			s := soultest.Start(t, soultest.Options{Database: db})

			resp, rep := health(t, s)
			if resp.StatusCode != http.StatusOK || rep.Status != "ok" || !rep.DB || rep.Redis || rep.Version == "" {
				t.Fatalf("GET /healthz = %d %s", resp.StatusCode, resp.Body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}

			head := s.Do(http.MethodHead, "/healthz", nil)
			if head.StatusCode != http.StatusOK || len(head.Body) != 0 {
				t.Errorf("HEAD /healthz = %d with %d body bytes", head.StatusCode, len(head.Body))
			}

			post := s.Do(http.MethodPost, "/healthz", "{}")
			if post.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("POST /healthz = %d", post.StatusCode)
			}
			if p := post.Problem(t); p.Code != "method_not_allowed" {
				t.Errorf("code = %q", p.Code)
			}
			if allow := post.Header.Get("Allow"); allow != "GET, HEAD" {
				t.Errorf("Allow = %q", allow)
			}
		})
	}
}

func TestHealthWithRedis(t *testing.T) {
	redis := testservices.StartRedis(t)
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, RedisURL: redis.URL()})

	resp, rep := health(t, s)
	if resp.StatusCode != http.StatusOK || rep.Status != "ok" || !rep.Redis {
		t.Fatalf("Redis up: %d %s", resp.StatusCode, resp.Body)
	}

	redis.Stop()
	resp, rep = health(t, s)
	if resp.StatusCode != http.StatusOK || rep.Status != "degraded" || rep.Redis || !rep.DB {
		t.Fatalf("Redis down: %d %s, want 200 degraded", resp.StatusCode, resp.Body)
	}

	// The client reconnects by itself: no restart of the server.
	redis.Start()
	waitFor(t, 10*time.Second, func() bool {
		resp, rep = health(t, s)
		return resp.StatusCode == http.StatusOK && rep.Status == "ok" && rep.Redis
	})
}

func TestHealthWithPostgresDown(t *testing.T) {
	pg := testservices.StartPostgres(t)
	s := soultest.Start(t, soultest.Options{DatabaseURL: pg.URL()})

	if resp, rep := health(t, s); resp.StatusCode != http.StatusOK || !rep.DB {
		t.Fatalf("Postgres up: %d %s", resp.StatusCode, resp.Body)
	}

	pg.Stop()
	resp, rep := health(t, s)
	if resp.StatusCode != http.StatusServiceUnavailable || rep.Status != "unavailable" || rep.DB {
		t.Fatalf("Postgres down: %d %s, want 503 unavailable", resp.StatusCode, resp.Body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}

	pg.Start()
	waitFor(t, 15*time.Second, func() bool {
		resp, rep = health(t, s)
		return resp.StatusCode == http.StatusOK && rep.DB
	})
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
