// Package auth is phone sign-in: one-time codes through a Provider, the
// accounts and sessions they open, and rotating refresh tokens. It owns the
// users, sessions and otp_challenges tables. HTTP stays out of it.
package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/database"

	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/otp"
	"github.com/soulapp/soul/internal/phone"
	"github.com/soulapp/soul/internal/token"
	"github.com/soulapp/soul/internal/tracing"
)

// RefreshGrace is how long after a rotation the parent token still gets the
// current pair, for a phone retrying a refresh whose answer it lost.
const RefreshGrace = 10 * time.Second

// Limits are the sign-in rate limits, one field per rule. Each field's
// subject tag says what the rule's checks are keyed on (see Subject):
// Rules reads them, and NewService and DeleteUser act on what Rules says,
// so a rule added here is registered and forgotten with the account
// without being listed anywhere else.
type Limits struct {
	RequestPerIP    limiter.Rule `subject:"ip"`    // codes asked for, per client IP
	SendPerPhone    limiter.Rule `subject:"phone"` // cooldown between two sends to one phone
	SendPerDay      limiter.Rule `subject:"phone"` // sends to one phone per day
	VerifyPerIP     limiter.Rule `subject:"ip"`    // codes tried, per client IP
	AttemptsPerCode limiter.Rule `subject:"phone"` // tries per phone before its code is burned
	RefreshPerIP    limiter.Rule `subject:"ip"`    // refreshes per client IP
	// The SMS budget: codes sent by all replicas together, and to one
	// country. They stop SMS pumping (codes requested to premium-rate
	// numbers, paid per SMS) that spreads over many addresses and numbers.
	SendBudget           limiter.Rule `subject:"global"`
	SendBudgetPerCountry limiter.Rule `subject:"country"`
}

// The default SMS budget, per hour. See README "SMS pumping".
const (
	DefaultSendBudgetHourly           = 1000
	DefaultSendBudgetHourlyPerCountry = 200
)

// DefaultLimits are the sign-in limits a server applies where its
// configuration does not override them (soul_auth's limit).
func DefaultLimits() Limits {
	return Limits{
		RequestPerIP:    limiter.Rule{Name: "otp_request", Limit: 5, Window: 5 * time.Minute},
		SendPerPhone:    limiter.Rule{Name: "otp_send", Limit: 1, Window: otp.SendCooldown},
		SendPerDay:      limiter.Rule{Name: "otp_send_day", Limit: otp.SendsPerDay, Window: 24 * time.Hour},
		VerifyPerIP:     limiter.Rule{Name: "otp_verify", Limit: 10, Window: 5 * time.Minute},
		AttemptsPerCode: limiter.Rule{Name: "otp_attempts", Limit: otp.MaxAttempts, Window: otp.CodeTTL},
		RefreshPerIP:    limiter.Rule{Name: "refresh", Limit: 10, Window: time.Minute},
		SendBudget:      limiter.Rule{Name: "otp_budget", Limit: DefaultSendBudgetHourly, Window: time.Hour},
		SendBudgetPerCountry: limiter.Rule{Name: "otp_budget_country", Limit: DefaultSendBudgetHourlyPerCountry,
			Window: time.Hour},
	}
}

// Subject is what a rule's checks are keyed on.
type Subject string

// The subjects of the sign-in rules.
const (
	// SubjectIP is the client's address (an IPv6 one by its network). It
	// is not the account's: DeleteUser leaves these entries to expire.
	SubjectIP Subject = "ip"
	// SubjectPhone is the E.164 number a code goes to.
	SubjectPhone Subject = "phone"
	// SubjectUser is a signed-in user, named by UserSubject as in
	// soul_rate_limit's per-user policies.
	SubjectUser Subject = "user"
	// SubjectGlobal is every request alike (GlobalKey): the whole
	// service's budget. No account's, so kept by DeleteUser.
	SubjectGlobal Subject = "global"
	// SubjectCountry is the country a code goes to (CountryKey). No
	// account's, so kept by DeleteUser.
	SubjectCountry Subject = "country"
)

// GlobalKey is the one limiter key of the rules keyed on SubjectGlobal.
const GlobalKey = "all"

// CountryKey is the limiter key of a country (phone.Country: an ISO
// 3166-1 alpha-2 code, or phone.NoCountry) under the rules keyed on
// SubjectCountry.
func CountryKey(country string) string { return "country:" + country }

// accountKey is, for each subject, the limiter key an account's entries
// have under the rules keyed on it, which DeleteUser forgets; nil for a
// subject that is not the account's. A subject missing here is refused by
// Rules.
var accountKey = map[Subject]func(User) string{
	SubjectIP:      nil,
	SubjectGlobal:  nil,
	SubjectCountry: nil,
	SubjectPhone:   func(u User) string { return u.Phone },
	SubjectUser:    func(u User) string { return UserSubject(u.ID.String()) },
}

// KeyedRule is one rule of Limits and what its checks are keyed on.
type KeyedRule struct {
	*limiter.Rule
	Subject Subject
}

// Rules returns every rule of l, in the order of the fields, with its
// subject; through the pointers a caller may change l's rules. It panics
// on a field without a known subject tag, which the package's tests make
// sure never ships.
func (l *Limits) Rules() []KeyedRule {
	v := reflect.ValueOf(l).Elem()
	rules := make([]KeyedRule, 0, v.NumField())
	for i := range v.NumField() {
		f := v.Type().Field(i)
		r, ok := v.Field(i).Addr().Interface().(*limiter.Rule)
		subject := Subject(f.Tag.Get("subject"))
		if _, known := accountKey[subject]; !ok || !known {
			panic(fmt.Sprintf("auth: Limits.%s: want a limiter.Rule with a subject tag of %v", f.Name, subjectNames()))
		}
		rules = append(rules, KeyedRule{Rule: r, Subject: subject})
	}
	return rules
}

// keyedOn returns the rules of l keyed on subject.
func (l Limits) keyedOn(subject Subject) []limiter.Rule {
	var out []limiter.Rule
	for _, r := range l.Rules() {
		if r.Subject == subject {
			out = append(out, *r.Rule)
		}
	}
	return out
}

func subjectNames() []string {
	names := make([]string, 0, len(accountKey))
	for s := range accountKey {
		names = append(names, string(s))
	}
	slices.Sort(names)
	return names
}

// UserSubject is the limiter key of a signed-in user in the per-user
// policies. It lives here so that the policies and DeleteUser, which
// forgets the user's entries, cannot disagree on it.
func UserSubject(userID string) string {
	return "user:" + userID
}

// Config assembles a Service.
type Config struct {
	DB       *bun.DB
	Issuer   *token.Issuer
	Provider Provider
	Limiter  *limiter.Limiter
	Limits   Limits
	// TestNumbers sign in with fixed codes and skip the provider, the
	// allowed countries and the SMS budget.
	TestNumbers otp.TestNumbers
	// AllowedCountries are the countries (ISO 3166-1 alpha-2, as
	// phone.ParseCountries gives them) codes may be sent to; empty is all.
	AllowedCountries []string
	// RefreshTTL is the lifetime of a refresh token; each rotation starts
	// it again.
	RefreshTTL time.Duration
	// SealKeys seal the current refresh token for the grace window:
	// derived from SECRET_KEY (then SECRET_KEY_PREVIOUS) with
	// LabelRefreshSeal.
	SealKeys [][]byte
	// Preview puts local codes in the answer (DEV_MODE).
	Preview bool
	Now     func() time.Time
}

// Service signs users in and out.
type Service struct {
	db       *bun.DB
	issuer   *token.Issuer
	provider Provider
	limiter  *limiter.Limiter
	limits   Limits
	tests    otp.TestNumbers
	allowed  map[string]bool
	ttl      time.Duration
	sealer   *sealer
	preview  bool
	now      func() time.Time
}

// NewService checks cfg and returns a Service.
func NewService(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Issuer == nil || cfg.Provider == nil || cfg.Limiter == nil {
		return nil, errors.New("auth: DB, Issuer, Provider and Limiter are required")
	}
	s, err := newSealer(cfg.SealKeys...)
	if err != nil {
		return nil, err
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	// Known to Forget from the start, not only once a code has been sent.
	for subject, keyOf := range accountKey {
		if keyOf == nil {
			continue
		}
		if err := cfg.Limiter.Register(cfg.Limits.keyedOn(subject)...); err != nil {
			return nil, err
		}
	}
	var allowed map[string]bool
	if len(cfg.AllowedCountries) > 0 {
		list, err := phone.ParseCountries(strings.Join(cfg.AllowedCountries, ","))
		if err != nil {
			return nil, fmt.Errorf("auth: allowed countries: %w", err)
		}
		allowed = make(map[string]bool, len(list))
		for _, c := range list {
			allowed[c] = true
		}
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 30 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{
		db: cfg.DB, issuer: cfg.Issuer, provider: cfg.Provider, limiter: cfg.Limiter,
		limits: cfg.Limits, tests: cfg.TestNumbers, allowed: allowed, ttl: cfg.RefreshTTL, sealer: s,
		preview: cfg.Preview, now: cfg.Now,
	}, nil
}

// Provider returns the code provider in use.
func (s *Service) Provider() Provider { return s.provider }

// NormalizePhone returns the E.164 key of raw: a valid number, or one of
// the listed test numbers while they are honoured.
func (s *Service) NormalizePhone(raw string) (string, error) {
	if e164, err := phone.Normalize(raw); err == nil {
		return e164, nil
	}
	if s.tests.Len() > 0 {
		if e164, err := phone.NormalizeLoose(raw); err == nil {
			if _, ok := s.tests.Lookup(e164, s.now()); ok {
				return e164, nil
			}
		}
	}
	return "", ErrInvalidPhone
}

// CodeSent is the answer to a code request.
type CodeSent struct {
	ExpiresIn time.Duration
	// Preview is the code itself, only from the local provider in DEV_MODE.
	Preview string
}

// RequestCode sends a code to phoneE164 (see NormalizePhone) for a client
// at clientIP. The answer does not depend on whether the phone has an
// account. A number outside the allowed countries is ErrCountryNotAllowed
// before any check; past the SMS budget, ErrBudgetExhausted. A test number
// sends nothing, so neither applies to it. Its limit checks are recorded
// in the LimitChecks of ctx.
func (s *Service) RequestCode(ctx context.Context, clientIP, phoneE164 string) (CodeSent, error) {
	_, test := s.tests.Lookup(phoneE164, s.now())
	checks := []limiter.Check{
		{Rule: s.limits.RequestPerIP, Key: clientIP},
		{Rule: s.limits.SendPerPhone, Key: phoneE164},
		{Rule: s.limits.SendPerDay, Key: phoneE164},
	}
	if !test {
		country := phone.Country(phoneE164)
		if s.allowed != nil && !s.allowed[country] {
			return CodeSent{}, ErrCountryNotAllowed
		}
		checks = append(checks,
			limiter.Check{Rule: s.limits.SendBudget, Key: GlobalKey},
			limiter.Check{Rule: s.limits.SendBudgetPerCountry, Key: CountryKey(country)})
	}
	// Counted before the send, and kept when the send fails: the provider
	// may have sent the SMS before its answer was lost, and a provider in
	// trouble, or a number it refuses, must not be retried at the client's
	// pace and at the provider's price. All checks count together or not
	// at all, so a request refused by the budget keeps the phone's
	// cooldown, and one refused by the cooldown spends no budget.
	if err := s.allowSend(ctx, checks); err != nil {
		return CodeSent{}, err
	}
	sent := CodeSent{ExpiresIn: otp.CodeTTL}
	if !test {
		preview, err := s.provider.Send(ctx, phoneE164)
		if err != nil {
			return CodeSent{}, err
		}
		if s.preview {
			sent.Preview = preview
		}
	}
	// A new code comes with a fresh set of tries.
	if err := s.limiter.Reset(ctx, s.limits.AttemptsPerCode, phoneE164); err != nil {
		return CodeSent{}, err
	}
	return sent, nil
}

// allowSend is allow for a code request, whose first three checks are the
// client's and the phone's and any others the SMS budget. A refusal by the
// client's or the phone's rules is ErrRateLimited, as before the budget
// existed, whatever the budget says; one by the budget alone is
// ErrBudgetExhausted, counted in soul_otp_budget_refusals_total under the
// scope of the budget rule reported.
func (s *Service) allowSend(ctx context.Context, checks []limiter.Check) error {
	res, err := s.limiter.AllowAll(ctx, checks...)
	if err != nil {
		return err
	}
	record(ctx, res.Decisions...)
	if res.Allowed {
		return nil
	}
	own := limiter.Result{Decisions: res.Decisions[:3]}
	for _, d := range own.Decisions {
		if !d.Allowed {
			own.RetryAfter = max(own.RetryAfter, d.RetryAfter)
		}
	}
	if !allAllowed(own.Decisions) {
		return limited(ErrRateLimited, own)
	}
	d := limiter.Result{Decisions: res.Decisions[3:]}.Tightest()
	scope := metrics.ScopeCountry
	if d.Rule.Name == s.limits.SendBudget.Name {
		scope = metrics.ScopeGlobal
	}
	metrics.OTPBudgetRefusals.WithLabelValues(scope).Inc()
	return &RetryError{Err: ErrBudgetExhausted, RetryAfter: res.RetryAfter, Decision: &d}
}

func allAllowed(ds []limiter.Decision) bool {
	for _, d := range ds {
		if !d.Allowed {
			return false
		}
	}
	return true
}

// Grant is what a successful sign-in or refresh hands the client.
type Grant struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    time.Duration
	User         User
	SessionID    uuid.UUID
	// NewUser is true when this sign-in created the account.
	NewUser bool
}

// VerifyCode checks code for phoneE164 and, when right, signs the user in,
// creating the account on first sign-in. Its limit checks are recorded in
// the LimitChecks of ctx, less the code's tries once the code is spent.
func (s *Service) VerifyCode(ctx context.Context, clientIP, phoneE164, code string) (Grant, error) {
	res, err := s.limiter.AllowAll(ctx,
		limiter.Check{Rule: s.limits.VerifyPerIP, Key: clientIP},
		limiter.Check{Rule: s.limits.AttemptsPerCode, Key: phoneE164},
	)
	if err != nil {
		return Grant{}, err
	}
	record(ctx, res.Decisions...)
	if !res.Allowed {
		if !res.Decisions[1].Allowed {
			// The phone's tries run out: report that rule even when the
			// IP's waits longer, as the code says too_many_attempts.
			d := res.Decisions[1]
			return Grant{}, &RetryError{Err: ErrTooManyAttempts, RetryAfter: d.RetryAfter, Decision: &d}
		}
		return Grant{}, limited(ErrRateLimited, res)
	}
	if !otp.WellFormedCode(code) {
		return Grant{}, ErrInvalidCode
	}

	var txCheck TxChecker
	if _, ok := s.tests.Lookup(phoneE164, s.now()); ok {
		if !s.tests.Match(phoneE164, code, s.now()) {
			return Grant{}, ErrInvalidCode
		}
	} else if tc, ok := s.provider.(TxChecker); ok {
		txCheck = tc
	} else if err := s.provider.Check(ctx, phoneE164, code); err != nil {
		// Outside any transaction: a provider on the network must not hold
		// a database connection while it answers.
		return Grant{}, err
	}

	var (
		g        Grant
		checkErr error
	)
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if txCheck != nil {
			checkErr = txCheck.CheckTx(ctx, tx, phoneE164, code)
			if checkErr != nil {
				if isCheckOutcome(checkErr) {
					return nil // commit the counted try or the burn
				}
				return checkErr
			}
		}
		var err error
		g, err = s.signIn(ctx, tx, phoneE164)
		return err
	})
	if err != nil {
		return Grant{}, err
	}
	if checkErr != nil {
		return Grant{}, checkErr
	}
	// The code is spent; its tries need not be remembered. Once they are
	// forgotten that rule says nothing about this client any more (the
	// next code starts with fresh tries), so the answer reports the others.
	if err := s.limiter.Reset(ctx, s.limits.AttemptsPerCode, phoneE164); err == nil {
		forget(ctx, s.limits.AttemptsPerCode)
	}
	return s.finish(g)
}

// signIn finds or creates the user of phoneE164 and opens a session.
func (s *Service) signIn(ctx context.Context, tx bun.Tx, phoneE164 string) (Grant, error) {
	now := dbTime(s.now())
	user := User{ID: uuid.New(), Phone: phoneE164, CreatedAt: now}
	// ON CONFLICT DO NOTHING: two first sign-ins racing end with one account.
	res, err := tx.NewInsert().Model(&user).On("CONFLICT (phone) DO NOTHING").Exec(ctx)
	if err != nil {
		return Grant{}, fmt.Errorf("auth: creating user: %w", err)
	}
	created, _ := res.RowsAffected()
	if created == 0 {
		if err := tx.NewSelect().Model(&user).Where("phone = ?", phoneE164).Scan(ctx); err != nil {
			return Grant{}, fmt.Errorf("auth: reading user: %w", err)
		}
	}
	plain, hash := token.NewRefreshToken()
	d := deviceOf(ctx)
	sess := Session{
		ID:         uuid.New(),
		UserID:     user.ID,
		TokenHash:  hash,
		CreatedAt:  now,
		LastUsedAt: now,
		ExpiresAt:  now.Add(s.ttl),
		Platform:   nullable(d.Platform),
		AppVersion: nullable(d.AppVersion),
	}
	if _, err := tx.NewInsert().Model(&sess).Exec(ctx); err != nil {
		return Grant{}, fmt.Errorf("auth: creating session: %w", err)
	}
	return Grant{RefreshToken: plain, User: user, SessionID: sess.ID, NewUser: created == 1}, nil
}

// finish mints the access token of a grant.
func (s *Service) finish(g Grant) (Grant, error) {
	access, _, err := s.issuer.IssueSession(g.User.ID.String(), g.SessionID.String())
	if err != nil {
		return Grant{}, err
	}
	g.AccessToken = access
	g.ExpiresIn = s.issuer.AccessTTL()
	return g, nil
}

// errRotationRaced means another request rotated the token between our
// read and our write; the retry then sees it as the parent.
var errRotationRaced = errors.New("auth: rotation raced")

// Refresh rotates a refresh token. The current token gets a new pair. The
// parent of the current token, within RefreshGrace of the rotation, gets
// the current pair again (a retry whose answer was lost). Any other use of
// a rotated token revokes the whole session: one of the two holders is not
// the user. Older ancestors are not remembered and only answer
// ErrInvalidRefreshToken, and a revoked session is marked EndedTokenReuse.
// The device of ctx (WithDevice), where it names a platform or app
// version, replaces what the session had. Its limit check is recorded in
// the LimitChecks of ctx.
func (s *Service) Refresh(ctx context.Context, clientIP, refresh string) (Grant, error) {
	if err := s.allow(ctx, ErrRateLimited, limiter.Check{Rule: s.limits.RefreshPerIP, Key: clientIP}); err != nil {
		return Grant{}, err
	}
	if !token.WellFormedRefreshToken(refresh) {
		return Grant{}, ErrInvalidRefreshToken
	}
	hash := token.HashRefreshToken(refresh)
	for range 2 {
		g, err := s.refresh(ctx, hash)
		if errors.Is(err, errRotationRaced) {
			continue
		}
		if err != nil {
			return Grant{}, err
		}
		return s.finish(g)
	}
	return Grant{}, ErrInvalidRefreshToken
}

func (s *Service) refresh(ctx context.Context, hash []byte) (Grant, error) {
	var (
		g      Grant
		reused uuid.UUID
	)
	d := deviceOf(ctx)
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		now := dbTime(s.now())
		var sess Session
		err := tx.NewSelect().Model(&sess).Where("token_hash = ?", hash).Scan(ctx)
		switch {
		case err == nil:
			if !sess.live(now) {
				return ErrInvalidRefreshToken
			}
			plain, next := token.NewRefreshToken()
			// The WHERE on the old hash makes the rotation a compare-and-swap:
			// of two requests racing with one token, exactly one rotates.
			res, err := tx.NewUpdate().Model((*Session)(nil)).
				Set("token_hash = ?", next).
				Set("parent_hash = ?", hash).
				Set("rotated_at = ?", now).
				Set("last_used_at = ?", now).
				Set("expires_at = ?", now.Add(s.ttl)).
				Set("grace_token = ?", s.sealer.seal(sess.ID, next, plain)).
				Set("platform = COALESCE(?, platform)", nullable(d.Platform)).
				Set("app_version = COALESCE(?, app_version)", nullable(d.AppVersion)).
				Where("id = ?", sess.ID).
				Where("token_hash = ?", hash).
				Exec(ctx)
			if err != nil {
				return fmt.Errorf("auth: rotating session: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return errRotationRaced
			}
			g = Grant{RefreshToken: plain, SessionID: sess.ID}
		case errors.Is(err, sql.ErrNoRows):
			if err := tx.NewSelect().Model(&sess).Where("parent_hash = ?", hash).Scan(ctx); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return ErrInvalidRefreshToken
				}
				return fmt.Errorf("auth: reading session: %w", err)
			}
			if !sess.live(now) {
				return ErrInvalidRefreshToken
			}
			if sess.RotatedAt != nil && now.Sub(*sess.RotatedAt) <= RefreshGrace && sess.GraceToken != nil {
				plain, err := s.sealer.open(sess.ID, sess.TokenHash, sess.GraceToken)
				if err == nil && token.EqualRefreshHash(token.HashRefreshToken(plain), sess.TokenHash) {
					g = Grant{RefreshToken: plain, SessionID: sess.ID}
					break
				}
			}
			if err := revoke(ctx, tx, sess.ID, now, EndedTokenReuse); err != nil {
				return err
			}
			reused = sess.ID
			return nil
		default:
			return fmt.Errorf("auth: reading session: %w", err)
		}
		if err := tx.NewSelect().Model(&g.User).Where("id = ?", sess.UserID).Scan(ctx); err != nil {
			return fmt.Errorf("auth: reading user: %w", err)
		}
		return nil
	})
	if err != nil {
		return Grant{}, err
	}
	if reused != uuid.Nil {
		markRevoked(ctx, s.limiter, s.issuer.AccessTTL(), reused)
		return Grant{}, reusedError{}
	}
	return g, nil
}

// revoke ends session id at now for reason (an Ended constant).
func revoke(ctx context.Context, db bun.IDB, id uuid.UUID, now time.Time, reason string) error {
	_, err := db.NewUpdate().Model((*Session)(nil)).
		Set("revoked_at = ?", now).
		Set("ended_reason = ?", reason).
		Set("grace_token = NULL").
		Where("id = ?", id).
		Where("revoked_at IS NULL").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("auth: revoking session: %w", err)
	}
	return nil
}

// Logout revokes the session of a refresh token, current or parent. It
// reports whether a live session was revoked; an unknown or already revoked
// token is not an error, so logging out twice is harmless.
func (s *Service) Logout(ctx context.Context, refresh string) (bool, error) {
	if !token.WellFormedRefreshToken(refresh) {
		return false, nil
	}
	hash := token.HashRefreshToken(refresh)
	now := dbTime(s.now())
	var ids []uuid.UUID
	_, err := s.db.NewUpdate().Model((*Session)(nil)).
		Set("revoked_at = ?", now).
		Set("ended_reason = ?", EndedSignedOut).
		Set("grace_token = NULL").
		Where("token_hash = ? OR parent_hash = ?", hash, hash).
		Where("revoked_at IS NULL").
		Returning("id").
		Exec(ctx, &ids)
	if err != nil {
		return false, fmt.Errorf("auth: revoking session: %w", err)
	}
	markRevoked(ctx, s.limiter, s.issuer.AccessTTL(), ids...)
	return len(ids) > 0, nil
}

// User returns the account with id.
func (s *Service) User(ctx context.Context, id uuid.UUID) (User, error) {
	var u User
	err := s.db.NewSelect().Model(&u).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, err
}

// DeleteUser deletes the account with all it owns: moods, sessions and
// idempotency records go by cascade, the phone's pending code here, and the
// rate-limit entries of its phone and its user last. Those are forgotten
// under the sign-in rules keyed on either (see Limits and accountKey) and
// under every other rule the limiter knows, checked since start or
// registered by the handlers that apply them (soul_rate_limit's per-user
// policies, keyed by UserSubject). It reports ErrNotFound when there is no
// such account, and ErrLimitsKept when the account is deleted but the
// limiter could not forget everything.
func (s *Service) DeleteUser(ctx context.Context, id uuid.UUID) error {
	var (
		u        User
		sessions []uuid.UUID
	)
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(&u).Where("id = ?", id).Scan(ctx); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		// The sessions go by cascade; their markers must say so.
		if err := tx.NewSelect().Model((*Session)(nil)).Column("id").Where("user_id = ?", id).Scan(ctx, &sessions); err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model((*Challenge)(nil)).Where("phone = ?", u.Phone).Exec(ctx); err != nil {
			return err
		}
		_, err := tx.NewDelete().Model((*User)(nil)).Where("id = ?", id).Exec(ctx)
		return err
	})
	if err != nil {
		return err
	}
	markRevoked(ctx, s.limiter, s.issuer.AccessTTL(), sessions...)
	var errs []error
	for subject, keyOf := range accountKey {
		if keyOf != nil {
			errs = append(errs, s.limiter.Forget(ctx, keyOf(u), s.limits.keyedOn(subject)...))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrLimitsKept, err)
	}
	return nil
}

// SessionLive reports whether the session of an access token is still open
// for its user at now: one primary-key lookup. A deleted user's sessions
// are gone with it, so their tokens fail here too.
func SessionLive(ctx context.Context, db *bun.DB, userID, sessionID uuid.UUID, now time.Time) (bool, error) {
	live, _, err := sessionState(ctx, db, userID, sessionID, now)
	return live, err
}

// sessionState is SessionLive that also returns when a live session
// expires. On Postgres it is a prepared statement (database.Native).
func sessionState(ctx context.Context, db *bun.DB, userID, sessionID uuid.UUID, now time.Time) (bool, time.Time, error) {
	var sess Session
	err := database.Native(ctx, db, func(c *pgx.Conn) (err error) {
		ctx, end := tracing.Query(ctx, "postgresql", "SELECT", "sessions")
		defer func() { end(err) }()
		err = c.QueryRow(ctx, "SELECT user_id, expires_at, revoked_at FROM sessions WHERE id = $1", database.StatementMode(c), [16]byte(sessionID)).
			Scan((*[16]byte)(&sess.UserID), &sess.ExpiresAt, &sess.RevokedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return sql.ErrNoRows
		}
		return err
	})
	if errors.Is(err, database.ErrNotNative) {
		err = db.NewSelect().Model(&sess).
			Column("user_id", "expires_at", "revoked_at").
			Where("id = ?", sessionID).Scan(ctx)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, err
	}
	return sess.UserID == userID && sess.live(now), sess.ExpiresAt, nil
}

// allow counts one hit against every check, or answers a RetryError
// wrapping refused. The decisions go to the LimitChecks of ctx either way.
func (s *Service) allow(ctx context.Context, refused error, checks ...limiter.Check) error {
	res, err := s.limiter.AllowAll(ctx, checks...)
	if err != nil {
		return err
	}
	record(ctx, res.Decisions...)
	if !res.Allowed {
		return limited(refused, res)
	}
	return nil
}
