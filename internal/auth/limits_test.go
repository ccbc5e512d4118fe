package auth_test

import (
	"context"
	"crypto/rand"
	"reflect"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/testservices"
)

// TestLimitsRules checks that Rules hands out every rule of Limits, once,
// as a pointer into the value it was called on, with a subject.
func TestLimitsRules(t *testing.T) {
	l := auth.DefaultLimits()
	rules := l.Rules()
	if n := reflect.TypeFor[auth.Limits]().NumField(); len(rules) != n {
		t.Fatalf("Rules returns %d rules, Limits has %d fields", len(rules), n)
	}
	names := map[string]bool{}
	for _, r := range rules {
		if names[r.Name] {
			t.Errorf("two rules are named %s: they would share their hits", r.Name)
		}
		names[r.Name] = true
		if r.Subject == "" {
			t.Errorf("%s has no subject", r.Name)
		}
		r.Limit++
	}
	for i, r := range l.Rules() {
		if r.Limit != rules[i].Limit {
			t.Fatalf("changing %s through Rules did not change the Limits", r.Name)
		}
	}
}

// TestDeleteUserForgetsAccountLimits signs in, tries a wrong code and
// refreshes in one process, checks that every sign-in rule then holds an
// entry under the key its subject names and under no other, and leaves
// one under a per-user policy too. Then it deletes the account from
// another process sharing the Redis, whose limiter has checked nothing
// yet, as after a restart, and wants no entry of the account's phone or
// user left, and those of the client's address and of the SMS budget
// kept.
func TestDeleteUserForgetsAccountLimits(t *testing.T) {
	client := testservices.RedisClient(t, testservices.RedisURL(t))
	ctx := context.Background()
	prefix := "soul:test:" + rand.Text() + ":"
	newLimiter := func() *limiter.Limiter {
		l, err := limiter.New(limiter.Options{Client: client, HashKey: testSecret, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return l
	}
	exists := func(key string) bool {
		n, err := client.Do(ctx, client.B().Exists().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	db := openDB(t, database.SQLite)
	c := &clock{t: time.Now()}
	limits := auth.DefaultLimits()
	limits.SendPerPhone.Limit = 10 // two codes in a row
	// What soul_rate_limit registers for a policy keyed by user.
	policy := limiter.Rule{Name: "per_user_policy", Limit: 100, Window: time.Minute}

	before := newLimiter()
	svc := newServiceOn(t, db, c, limits, before)
	const phone = "+447400123999"
	sent, err := svc.RequestCode(ctx, ip, phone)
	if err != nil {
		t.Fatal(err)
	}
	g, err := svc.VerifyCode(ctx, ip, phone, sent.Preview)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Refresh(ctx, ip, g.RefreshToken); err != nil {
		t.Fatal(err)
	}
	// A pending code with a wrong try: the tries are counted until the
	// code is spent.
	sent, err = svc.RequestCode(ctx, ip, phone)
	if err != nil {
		t.Fatal(err)
	}
	wrong := "000000"
	if sent.Preview == wrong {
		wrong = "111111"
	}
	if _, err := svc.VerifyCode(ctx, ip, phone, wrong); err == nil {
		t.Fatal("a wrong code signed in")
	}
	user := auth.UserSubject(g.User.ID.String())
	if _, err := before.Allow(ctx, policy, user); err != nil {
		t.Fatal(err)
	}

	keyOf := map[auth.Subject]string{
		auth.SubjectIP: ip, auth.SubjectPhone: phone, auth.SubjectUser: user,
		auth.SubjectGlobal: auth.GlobalKey, auth.SubjectCountry: auth.CountryKey("GB"),
	}
	type entry struct{ rule, key string }
	forgotten := []entry{{policy.Name, before.StorageKey(policy.Name, user)}}
	var kept []entry
	for _, r := range limits.Rules() {
		key, ok := keyOf[r.Subject]
		if !ok {
			t.Fatalf("%s is keyed on %q: say here what its checks are keyed on", r.Name, r.Subject)
		}
		for s, k := range keyOf {
			if s != r.Subject && exists(before.StorageKey(r.Name, k)) {
				t.Errorf("%s says it is keyed on %s, but its checks are keyed on %s", r.Name, r.Subject, s)
			}
		}
		e := entry{r.Name, before.StorageKey(r.Name, key)}
		if !exists(e.key) {
			t.Errorf("%s holds no entry for the %s: use it in this test", r.Name, r.Subject)
		}
		switch r.Subject {
		case auth.SubjectIP, auth.SubjectGlobal, auth.SubjectCountry:
			// Not the account's: the SMS budget, above all, must not
			// get back what an account spent by deleting it.
			kept = append(kept, e)
		default:
			forgotten = append(forgotten, e)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	after := newLimiter()
	if err := after.Register(policy); err != nil {
		t.Fatal(err)
	}
	if err := newServiceOn(t, db, c, limits, after).DeleteUser(ctx, g.User.ID); err != nil {
		t.Fatal(err)
	}
	for _, e := range forgotten {
		if exists(e.key) {
			t.Errorf("the account's entry under %s is left after its deletion", e.rule)
		}
	}
	for _, e := range kept {
		if !exists(e.key) {
			t.Errorf("the entry of the client's address under %s went with the account", e.rule)
		}
	}
}
