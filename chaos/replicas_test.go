//go:build chaos

package chaos_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/soulapp/soul/internal/soultest"
	"github.com/soulapp/soul/internal/testservices"
)

// Two replicas start together on one empty database and one Redis: one
// applies the migrations under the advisory lock, the other waits for it,
// and both serve.
func TestTwoReplicasMigrateOnce(t *testing.T) {
	dbURL := testservices.NewDatabase(t)
	env := append([]string{"SECRET_KEY=" + soultest.RandomHex(32), "DATABASE_URL=" + dbURL,
		"REDIS_URL=" + testservices.RedisURL(t), "MIGRATE_ON_START=true"}, noLimits...)
	replicas := []*replica{startReplica(t, "", env...), startReplica(t, "", env...)}
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
	notes := notesInDB(t, openSQL(t, dbURL))
	lost := sent - failures - int64(len(notes))
	figures(t, "two-replicas", sent, failures, lost, fmt.Sprintf("migrations_applied_by=%d", applied))
	if applied != 1 {
		t.Errorf("%d replicas logged \"migrations applied\", want exactly 1", applied)
	}
	if lost != 0 {
		t.Errorf("%d acknowledged writes are not in the database", lost)
	}
}
