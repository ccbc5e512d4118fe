package soulstorage

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/soulapp/soul/internal/redisurl"
	"github.com/soulapp/soul/internal/testservices"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testservices.StopSharedRedisCluster()
	os.Exit(code)
}

// newStorage connects a storage of its own (not shared through the pool),
// as a separate replica would.
func newStorage(t *testing.T, url, prefix string, validity time.Duration) *Storage {
	t.Helper()
	opt, cluster, err := redisurl.Options(url)
	if err != nil {
		t.Fatal(err)
	}
	res, err := connect(opt, cluster, prefix, validity, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Destruct() })
	return &Storage{Prefix: prefix, LockValidity: caddy.Duration(validity), res: res}
}

func testPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "soul:test:" + hex.EncodeToString(b) + ":"
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConformance(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testConformance(t, testservices.RedisURL(t)) })
	t.Run("cluster", func(t *testing.T) { testConformance(t, testservices.SharedRedisCluster(t).URL()) })
}

func testConformance(t *testing.T, url string) {
	prefix := testPrefix()
	s := newStorage(t, url, prefix, 2*time.Second)
	other := newStorage(t, url, prefix, 2*time.Second)
	ctx := ctxT(t)

	files := map[string]string{
		"certificates/acme/example.com/example.com.crt":  "crt",
		"certificates/acme/example.com/example.com.key":  "key",
		"certificates/acme/example.com/example.com.json": "{}",
		"certificates/acme/example.org/example.org.crt":  "crt2",
		"acme/accounts/admin.json":                       "account",
		"last_clean.json":                                "{}",
	}
	before := time.Now().Add(-time.Second)
	for k, v := range files {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatalf("Store %s: %v", k, err)
		}
	}

	t.Run("Load", func(t *testing.T) {
		for k, v := range files {
			// Another instance reads what this one wrote.
			got, err := other.Load(ctx, k)
			if err != nil || string(got) != v {
				t.Errorf("Load %s = %q, %v; want %q", k, got, err, v)
			}
		}
		if _, err := s.Load(ctx, "certificates/nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load of a missing key: %v, want fs.ErrNotExist", err)
		}
		if err := s.Store(ctx, "last_clean.json", []byte("newer")); err != nil {
			t.Fatal(err)
		}
		if got, _ := other.Load(ctx, "last_clean.json"); string(got) != "newer" {
			t.Errorf("overwritten value = %q", got)
		}
	})

	t.Run("Exists", func(t *testing.T) {
		for key, want := range map[string]bool{
			"certificates/acme/example.com/example.com.crt": true,
			"certificates/acme/example.com":                 true, // a directory
			"certificates":                                  true,
			"certificates/acme/example.net":                 false,
			"certificates/acme/example.co":                  false, // a prefix, not a directory
		} {
			if got := s.Exists(ctx, key); got != want {
				t.Errorf("Exists %s = %v, want %v", key, got, want)
			}
		}
	})

	t.Run("Stat", func(t *testing.T) {
		info, err := s.Stat(ctx, "certificates/acme/example.com/example.com.crt")
		if err != nil {
			t.Fatal(err)
		}
		if !info.IsTerminal || info.Size != 3 || info.Key != "certificates/acme/example.com/example.com.crt" ||
			info.Modified.Before(before) || info.Modified.After(time.Now().Add(time.Second)) {
			t.Errorf("Stat of a value = %+v", info)
		}
		info, err = s.Stat(ctx, "certificates/acme")
		if err != nil || info.IsTerminal || info.Key != "certificates/acme" {
			t.Errorf("Stat of a directory = %+v, %v", info, err)
		}
		if _, err := s.Stat(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat of a missing key: %v", err)
		}
	})

	t.Run("List", func(t *testing.T) {
		cases := []struct {
			dir       string
			recursive bool
			want      []string
		}{
			{"certificates/acme", false, []string{"certificates/acme/example.com", "certificates/acme/example.org"}},
			{"certificates/acme/example.com", false, []string{
				"certificates/acme/example.com/example.com.crt",
				"certificates/acme/example.com/example.com.json",
				"certificates/acme/example.com/example.com.key",
			}},
			{"certificates", true, []string{
				"certificates/acme",
				"certificates/acme/example.com",
				"certificates/acme/example.com/example.com.crt",
				"certificates/acme/example.com/example.com.json",
				"certificates/acme/example.com/example.com.key",
				"certificates/acme/example.org",
				"certificates/acme/example.org/example.org.crt",
			}},
			{"", false, []string{"acme", "certificates", "last_clean.json"}},
		}
		for _, tc := range cases {
			got, err := other.List(ctx, tc.dir, tc.recursive)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("List(%q, %v) = %q, %v\nwant %q", tc.dir, tc.recursive, got, err, tc.want)
			}
		}
		if _, err := s.List(ctx, "certificates/acme/example.net", true); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("List of a missing directory: %v", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		if err := s.Delete(ctx, "certificates/acme/example.org/example.org.crt"); err != nil {
			t.Fatal(err)
		}
		if other.Exists(ctx, "certificates/acme/example.org/example.org.crt") || other.Exists(ctx, "certificates/acme/example.org") {
			t.Error("deleted value (and its now empty directory) still exists")
		}
		if err := s.Delete(ctx, "certificates/acme/example.org"); err != nil {
			t.Errorf("deleting a missing key: %v", err)
		}
		// A directory goes with everything under it, and nothing else.
		if err := s.Delete(ctx, "certificates"); err != nil {
			t.Fatal(err)
		}
		if other.Exists(ctx, "certificates") || other.Exists(ctx, "certificates/acme/example.com/example.com.key") {
			t.Error("deleted directory still exists")
		}
		got, err := other.List(ctx, "", true)
		if want := []string{"acme", "acme/accounts", "acme/accounts/admin.json", "last_clean.json"}; err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("after deleting a directory: %q, %v; want %q", got, err, want)
		}
	})
}

// Two instances contend for one lock: the second waits until the first
// unlocks, gives up when its context ends, and TryLock does not wait.
func TestLockContention(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testLockContention(t, testservices.RedisURL(t)) })
	t.Run("cluster", func(t *testing.T) { testLockContention(t, testservices.SharedRedisCluster(t).URL()) })
}

func testLockContention(t *testing.T, url string) {
	prefix := testPrefix()
	a, b := newStorage(t, url, prefix, 2*time.Second), newStorage(t, url, prefix, 2*time.Second)
	ctx := ctxT(t)

	if err := a.Lock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_example.com"); ok || err != nil {
		t.Fatalf("TryLock of a held lock = %v, %v", ok, err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := b.Lock(short, "issue_cert_example.com")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held lock with a short context: %v, want DeadlineExceeded", err)
	}

	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "issue_cert_example.com") }()
	// Outlive a renewal or two: the holder keeps its lock.
	select {
	case err := <-got:
		t.Fatalf("second Lock returned while the first held the lock: %v", err)
	case <-time.After(2500 * time.Millisecond):
	}
	if err := a.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("second Lock after Unlock: %v", err)
	}
	if ok, _ := a.TryLock(ctx, "issue_cert_example.com"); ok {
		t.Fatal("TryLock succeeded while the other instance holds the lock")
	}
	if err := b.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.TryLock(ctx, "issue_cert_example.com"); !ok || err != nil {
		t.Fatalf("TryLock of a free lock = %v, %v", ok, err)
	}
	if err := a.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx, "issue_cert_example.com"); err == nil {
		t.Error("Unlock of a lock not held succeeded")
	}
}

// The lock holder for TestLockHolderDies, run as a separate process.
const envHolder = "SOUL_STORAGE_TEST_LOCK_HOLDER"

func TestLockHolderProcess(t *testing.T) {
	spec := os.Getenv(envHolder)
	if spec == "" {
		t.Skip("run by TestLockHolderDies")
	}
	url, prefix, _ := strings.Cut(spec, " ")
	s := newStorage(t, url, prefix, 2*time.Second)
	if err := s.Lock(context.Background(), "holder"); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	select {} // until killed
}

// A holder that dies without unlocking loses its lock once it stops
// renewing it.
func TestLockHolderDies(t *testing.T) {
	url := testservices.RedisURL(t)
	prefix := testPrefix()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHolder+"="+url+" "+prefix)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("holder: %q, %v", line, err)
	}

	s := newStorage(t, url, prefix, 2*time.Second)
	ctx := ctxT(t)
	if ok, err := s.TryLock(ctx, "holder"); ok || err != nil {
		t.Fatalf("TryLock while the holder lives = %v, %v", ok, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "holder"); err != nil {
		t.Fatalf("Lock after the holder died: %v", err)
	}
	if err := s.Unlock(ctx, "holder"); err != nil {
		t.Fatal(err)
	}
}

// Without a URL the module hands Caddy its file storage.
func TestNoURLIsFileStorage(t *testing.T) {
	s := &Storage{URL: "{env.SOUL_TEST_UNSET_REDIS_URL}"}
	if err := s.Provision(caddy.Context{Context: context.Background()}); err != nil {
		t.Fatal(err)
	}
	cs, err := s.CertMagicStorage()
	if err != nil || cs != caddy.DefaultStorage {
		t.Fatalf("CertMagicStorage = %T, %v; want Caddy's default storage", cs, err)
	}
}
