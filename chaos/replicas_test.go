//go:build chaos

package chaos_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// migrationLock is the Postgres advisory lock key the migrations are
// applied under (migrations.advisoryLockKey, "soul" in ASCII).
const migrationLock = 0x736f756c

// Two replicas start together on one empty database and one Redis: one
// applies the migrations under the advisory lock, the other waits for it,
// and both serve.
//
// Left alone, the two may not overlap at all (one can be done before the
// other reaches the lock), and the migrator logs nothing while it waits.
// So the test holds the lock itself until Postgres shows both replicas
// queued on it, then lets go: Postgres grants an advisory lock to one
// session at a time, so the second queued replica can take it only once
// the first has migrated and let go. That one then finds nothing to apply:
// exactly one replica logs "migrations applied", every migration is
// recorded once, in one group, and both answer.
//
// It runs with the replicas on Postgres itself and behind PgBouncer in
// transaction pooling mode (the test's own lock and checks stay direct),
// where the replicas' lock must be one a transaction holds: a session
// lock taken through PgBouncer stays on a server connection that the
// other replica may be handed next.
func TestTwoReplicasMigrateOnce(t *testing.T) {
	for _, via := range []soultest.Database{soultest.Postgres, soultest.PgBouncer} {
		t.Run(string(via), func(t *testing.T) { twoReplicasMigrateOnce(t, via) })
	}
}

func twoReplicasMigrateOnce(t *testing.T, via soultest.Database) {
	dbURL := testservices.NewDatabase(t)
	db := openSQL(t, dbURL)
	replicaEnv := []string{"DATABASE_URL=" + dbURL}
	if via == soultest.PgBouncer {
		replicaEnv = []string{"DATABASE_URL=" + testservices.StartPgBouncer(t, dbURL).URL(), "DATABASE_PREPARED_STATEMENTS=false"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	holder, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, fmt.Sprintf("SELECT pg_advisory_lock(%d)", migrationLock)); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			if _, err := holder.ExecContext(ctx, fmt.Sprintf("SELECT pg_advisory_unlock(%d)", migrationLock)); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer release()

	env := append(append([]string{"SECRET_KEY=" + soultest.RandomHex(32),
		"REDIS_URL=" + testservices.RedisURL(t), "MIGRATE_ON_START=true"}, replicaEnv...), noLimits...)
	replicas := []*replica{startReplica(t, "", env...), startReplica(t, "", env...)}

	// waiting counts the replicas' sessions queued on the migration lock.
	waiting := func() int {
		var n int
		err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = %d AND NOT l.granted
			AND a.application_name = 'soul' AND a.datname = current_database()`, migrationLock)).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	queued := 0
	for i := 0; i < 600 && queued < 2; i++ {
		queued = waiting()
		time.Sleep(100 * time.Millisecond)
	}
	if queued < 2 {
		for _, r := range replicas {
			t.Logf("replica %s:\n%s", r.base, tail(r.log.String(), 10))
		}
		t.Fatalf("%d replicas queued on the migration lock within 60s, want 2", queued)
	}
	release()

	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Add(1)
		go func(r *replica) { defer wg.Done(); r.waitServing(t) }(r)
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	applied := 0
	for _, r := range replicas {
		if strings.Contains(r.log.String(), `"migrations applied"`) {
			applied++
		}
	}
	var recorded, distinct, groups int
	if err := db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT name), count(DISTINCT group_id) FROM soul_migrations").
		Scan(&recorded, &distinct, &groups); err != nil {
		t.Fatal(err)
	}

	var sent, failures int64
	for i, r := range replicas {
		token := r.signIn(t)
		for j := 0; j < 20; j++ {
			sent++
			resp, err := r.client.Do(moodRequest(r.base, token, fmt.Sprintf("replica-%d-%d", i, j)))
			if err != nil {
				failures++
				t.Errorf("replica %d: %v", i, err)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				failures++
				t.Errorf("replica %d: POST /api/moods: %d", i, resp.StatusCode)
			}
		}
	}
	notes := notesInDB(t, db)
	lost := sent - failures - int64(len(notes))
	scenario := "two-replicas"
	if via == soultest.PgBouncer {
		scenario += "-pgbouncer"
	}
	figures(t, scenario, sent, failures, lost,
		fmt.Sprintf("queued_on_lock=%d migrations_applied_by=%d migrations_recorded=%d distinct=%d groups=%d", queued, applied, recorded, distinct, groups))
	if applied != 1 {
		t.Errorf("%d replicas logged \"migrations applied\", want exactly 1", applied)
	}
	if recorded == 0 || recorded != distinct || groups != 1 {
		t.Errorf("soul_migrations: %d rows, %d names, %d groups; want each migration once, in one group", recorded, distinct, groups)
	}
	if lost != 0 {
		t.Errorf("%d acknowledged writes are not in the database", lost)
	}
}
