package testservices_test

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	_ "github.com/uptrace/bun/driver/pgdriver"

	"github.com/soulapp/soul/internal/testservices"
)

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pg", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	db := openDB(t, testservices.PostgresURL(t))
	var n int
	err := db.QueryRowContext(ctxTimeout(t), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestSharedPostgres(t *testing.T) {
	db := openDB(t, testservices.PostgresURL(t))
	var one int
	if err := db.QueryRowContext(ctxTimeout(t), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
}

func TestNewDatabase(t *testing.T) {
	testservices.PostgresURL(t) // skip here rather than only in the subtest
	var names []string
	t.Run("create", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			dsn := testservices.NewDatabase(t)
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Query().Get("sslmode"); got != "disable" {
				t.Errorf("sslmode = %q, want disable", got)
			}
			db := openDB(t, dsn)
			ctx := ctxTimeout(t)
			var name string
			if err := db.QueryRowContext(ctx, "SELECT current_database()").Scan(&name); err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimPrefix(u.Path, "/"); name != want || !strings.HasPrefix(name, "soul_t_") {
				t.Fatalf("connected to %q, URL names %q", name, want)
			}
			// An empty database: a table created here is not seen elsewhere.
			var tables int
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Fatalf("new database has %d tables", tables)
			}
			if _, err := db.ExecContext(ctx, "CREATE TABLE moods (id int PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		if names[0] == names[1] {
			t.Fatalf("two databases share the name %q", names[0])
		}
		// Left open on purpose: the drop must not wait for it.
		for _, name := range names {
			if !databaseExists(t, name) {
				t.Fatalf("database %s missing while the test runs", name)
			}
		}
	})
	for _, name := range names {
		if databaseExists(t, name) {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

func TestSharedRedis(t *testing.T) {
	client := newRedisClient(t, testservices.RedisURL(t))
	if err := client.Do(ctxTimeout(t), client.B().Ping().Build()).Error(); err != nil {
		t.Fatalf("PING: %v", err)
	}
}

func newRedisClient(t *testing.T, redisURL string) rueidis.Client {
	t.Helper()
	opt, err := rueidis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableCache = true
	opt.DisableRetry = true
	client, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return client
}

func TestStartPostgres(t *testing.T) {
	srv := testservices.StartPostgres(t)
	dsn := srv.URL()
	db := openDB(t, dsn)
	ctx := ctxTimeout(t)
	if _, err := db.ExecContext(ctx, "CREATE TABLE moods (score int); INSERT INTO moods VALUES (7)"); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("ping succeeded with the server stopped")
	}
	// A new connection fails too, not only the one the server closed.
	if err := openDB(t, dsn).PingContext(ctx); err == nil {
		t.Fatal("new connection succeeded with the server stopped")
	}

	srv.Start()
	if srv.URL() != dsn {
		t.Fatalf("URL changed across restart: %s, then %s", dsn, srv.URL())
	}
	var score int
	if err := openDB(t, dsn).QueryRowContext(ctx, "SELECT score FROM moods").Scan(&score); err != nil || score != 7 {
		t.Fatalf("after restart: score = %d, %v; want 7", score, err)
	}
}

func TestStartRedis(t *testing.T) {
	srv := testservices.StartRedis(t)
	redisURL := srv.URL()
	client := newRedisClient(t, redisURL)
	ctx := ctxTimeout(t)
	if err := client.Do(ctx, client.B().Set().Key("mood").Value("7").Build()).Error(); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	if err := client.Do(ctx, client.B().Ping().Build()).Error(); err == nil {
		t.Fatal("PING succeeded with the server stopped")
	}
	opt, err := rueidis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableCache = true
	if c, err := rueidis.NewClient(opt); err == nil {
		c.Close()
		t.Fatal("new client connected with the server stopped")
	}

	srv.Start()
	if srv.URL() != redisURL {
		t.Fatalf("URL changed across restart: %s, then %s", redisURL, srv.URL())
	}
	got, err := newRedisClient(t, redisURL).Do(ctx, client.B().Get().Key("mood").Build()).ToString()
	if err != nil || got != "7" {
		t.Fatalf("after restart: GET mood = %q, %v; want 7", got, err)
	}
}

func TestRedisClusterFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := testservices.StartRedisCluster(t, 3, 1)
	t.Logf("3 masters + 3 replicas healthy in %v", time.Since(start).Round(time.Millisecond))
	opt, err := rueidis.ParseURL(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableCache = true
	client, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if client.Mode() != rueidis.ClientModeCluster {
		t.Fatalf("client mode %s, want cluster", client.Mode())
	}
	ctx := ctxTimeout(t)
	// Keys spread over every shard.
	for i := 0; i < 30; i++ {
		k := "k" + string(rune('a'+i))
		if err := client.Do(ctx, client.B().Set().Key(k).Value("v").Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	before := c.Masters()
	start = time.Now()
	c.Failover(0)
	t.Logf("failover in %v", time.Since(start).Round(time.Millisecond))
	after := c.Masters()
	if before[0] == after[0] {
		t.Fatalf("shard 0 still served by %s", after[0])
	}
	for i := 0; i < 30; i++ {
		k := "k" + string(rune('a'+i))
		if v, err := client.Do(ctx, client.B().Get().Key(k).Build()).ToString(); err != nil || v != "v" {
			t.Fatalf("GET %s after failover: %q, %v", k, v, err)
		}
	}
}
