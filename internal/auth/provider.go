package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/soulapp/soul/internal/otp"
	"github.com/soulapp/soul/internal/twilio"
)

// Provider sends one-time codes and checks them.
type Provider interface {
	// Name is "local" or "twilio", for logs.
	Name() string
	// Send sends a new code to phone, replacing any earlier one. preview is
	// the code itself when the provider may show it (local, DEV_MODE).
	Send(ctx context.Context, phone string) (preview string, err error)
	// Check reports nil when code is the live code of phone.
	Check(ctx context.Context, phone, code string) error
}

// TxChecker is a Provider whose codes live in our database: the service
// checks them inside the transaction that signs the user in, so a consumed
// code, a counted wrong try and a new session commit or fail together.
type TxChecker interface {
	CheckTx(ctx context.Context, tx bun.Tx, phone, code string) error
}

// LocalProvider keeps codes in otp_challenges and "sends" them by handing
// them back for the answer's preview_code: DEV_MODE only.
type LocalProvider struct {
	db     *bun.DB
	hasher *otp.Hasher
	now    func() time.Time
}

// NewLocalProvider returns the development provider; key is derived from
// SECRET_KEY with LabelOTP.
func NewLocalProvider(db *bun.DB, key []byte, now func() time.Time) (*LocalProvider, error) {
	h, err := otp.NewHasher(key)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &LocalProvider{db: db, hasher: h, now: now}, nil
}

// Name implements Provider.
func (p *LocalProvider) Name() string { return "local" }

// Send stores the HMAC of a new code, replacing the phone's earlier one.
func (p *LocalProvider) Send(ctx context.Context, phone string) (string, error) {
	code, err := otp.NewCode()
	if err != nil {
		return "", err
	}
	now := dbTime(p.now())
	ch := &Challenge{
		Phone:     phone,
		CodeHash:  p.hasher.Hash(phone, code),
		ExpiresAt: now.Add(otp.CodeTTL),
		CreatedAt: now,
	}
	_, err = p.db.NewInsert().Model(ch).
		On("CONFLICT (phone) DO UPDATE").
		Set("code_hash = EXCLUDED.code_hash").
		Set("attempts = 0").
		Set("expires_at = EXCLUDED.expires_at").
		Set("created_at = EXCLUDED.created_at").
		Exec(ctx)
	if err != nil {
		return "", fmt.Errorf("auth: storing challenge: %w", err)
	}
	return code, nil
}

// Check runs CheckTx in a transaction of its own.
func (p *LocalProvider) Check(ctx context.Context, phone, code string) error {
	var result error
	err := p.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		result = p.CheckTx(ctx, tx, phone, code)
		if isCheckOutcome(result) {
			return nil
		}
		return result
	})
	if err != nil {
		return err
	}
	return result
}

// CheckTx compares code with the phone's challenge in constant time. A
// right code consumes the challenge; a wrong one counts a try, and the
// otp.MaxAttempts-th wrong try burns it.
func (p *LocalProvider) CheckTx(ctx context.Context, tx bun.Tx, phone, code string) error {
	var ch Challenge
	q := tx.NewSelect().Model(&ch).Where("phone = ?", phone)
	if tx.Dialect().Name() == dialect.PG {
		// Two concurrent checks of one code must not both pass or both
		// count from the same number of attempts. SQLite runs one
		// transaction at a time anyway.
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrCodeExpired
		}
		return fmt.Errorf("auth: reading challenge: %w", err)
	}
	del := func() error {
		_, err := tx.NewDelete().Model((*Challenge)(nil)).Where("phone = ?", phone).Exec(ctx)
		return err
	}
	switch {
	case !p.now().Before(ch.ExpiresAt):
		if err := del(); err != nil {
			return err
		}
		return ErrCodeExpired
	case ch.Attempts >= otp.MaxAttempts:
		if err := del(); err != nil {
			return err
		}
		return &RetryError{Err: ErrTooManyAttempts, RetryAfter: ch.ExpiresAt.Sub(p.now())}
	case !p.hasher.Verify(phone, code, ch.CodeHash):
		if ch.Attempts+1 >= otp.MaxAttempts {
			if err := del(); err != nil {
				return err
			}
		} else if _, err := tx.NewUpdate().Model((*Challenge)(nil)).
			Set("attempts = attempts + 1").Where("phone = ?", phone).Exec(ctx); err != nil {
			return err
		}
		return ErrInvalidCode
	}
	return del()
}

// isCheckOutcome reports whether err is an answer about the code (to be
// committed) rather than a failure (to be rolled back).
func isCheckOutcome(err error) bool {
	return err == nil || errors.Is(err, ErrInvalidCode) || errors.Is(err, ErrCodeExpired) ||
		errors.Is(err, ErrTooManyAttempts)
}

// TwilioProvider sends and checks codes through Twilio Verify.
type TwilioProvider struct {
	Client *twilio.Client
}

// Name implements Provider.
func (p *TwilioProvider) Name() string { return "twilio" }

// twilioRetry is how long Twilio keeps a verification, hence when its
// attempt limits (60202, 60203) let go.
const twilioRetry = 10 * time.Minute

// Send starts a Twilio verification.
func (p *TwilioProvider) Send(ctx context.Context, phone string) (string, error) {
	return "", twilioError(p.Client.StartVerification(ctx, phone))
}

// Check asks Twilio whether code approves the phone's verification.
func (p *TwilioProvider) Check(ctx context.Context, phone, code string) error {
	approved, err := p.Client.CheckVerification(ctx, phone, code)
	if err != nil {
		return twilioError(err)
	}
	if !approved {
		return ErrInvalidCode
	}
	return nil
}

// twilioError maps Twilio's answers to the service's outcomes.
func twilioError(err error) error {
	if err == nil {
		return nil
	}
	switch twilio.KindOf(err) {
	case twilio.KindInvalidPhone:
		return ErrInvalidPhone
	case twilio.KindTooManyAttempts:
		return &RetryError{Err: ErrTooManyAttempts, RetryAfter: twilioRetry}
	case twilio.KindExpired:
		return ErrCodeExpired
	case twilio.KindNotSupported:
		return ErrPhoneNotSupported
	case twilio.KindConcurrent:
		// Another request for the phone is in flight at Twilio. A code
		// request has already started the phone's cooldown, so a retry
		// comes no sooner; a check may retry sooner, and loses nothing.
		return &RetryError{Err: ErrRateLimited, RetryAfter: otp.SendCooldown}
	case twilio.KindUnavailable:
		return fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
	}
	return err
}
