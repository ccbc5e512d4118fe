package mood

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/database"
)

// The outcomes of the Store a caller tells apart.
var (
	// ErrNotFound: no such mood of this user (another user's mood is not
	// found either).
	ErrNotFound = errors.New("mood: not found")
	// ErrKeyReused: an Idempotency-Key already used for a different request.
	ErrKeyReused = errors.New("mood: idempotency key reused with a different request")
	// ErrPreconditionFailed: If-Match named another version than the
	// mood's; the error is a *PreconditionError holding the mood as it is.
	ErrPreconditionFailed = errors.New("mood: precondition failed")
)

// PreconditionError is ErrPreconditionFailed with the mood as it stands,
// which the client needs to merge its change into.
type PreconditionError struct{ Current Mood }

func (e *PreconditionError) Error() string { return ErrPreconditionFailed.Error() }

// Is makes errors.Is(err, ErrPreconditionFailed) true.
func (e *PreconditionError) Is(target error) bool { return target == ErrPreconditionFailed }

// nextSeq takes the next number of userID's change counter. The UPDATE
// (or the INSERT of the first) holds the counter row's lock until tx
// commits, so two writers of one user are numbered in the order they
// commit: a reader of the feed that has seen number n can never later
// find a smaller one appear. On Postgres a sequence could not promise
// that (a lower number may commit after a higher one is read); on SQLite
// the one writer serializes them anyway. Every writer of a user's moods
// takes this lock first, before any mood row, so they cannot deadlock.
func nextSeq(ctx context.Context, tx bun.IDB, userID uuid.UUID) (int64, error) {
	var seq int64
	err := tx.NewRaw(`INSERT INTO mood_sync (user_id, seq) VALUES (?, 1)
		ON CONFLICT (user_id) DO UPDATE SET seq = mood_sync.seq + 1 RETURNING seq`, userID).Scan(ctx, &seq)
	if err != nil {
		return 0, fmt.Errorf("mood: taking a change number: %w", err)
	}
	return seq, nil
}

// Paging bounds of List.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Store runs the mood queries. The SQL is the same on Postgres and SQLite.
type Store struct {
	db  *bun.DB
	now func() time.Time
}

// NewStore returns a Store on db that reads the time from now (time.Now
// when nil).
func NewStore(db *bun.DB, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, now: now}
}

// Created is the outcome of Create.
type Created struct {
	Mood Mood
	// Replayed: the Idempotency-Key had already created this mood.
	Replayed bool
}

// Create stores a new mood of userID. With a non-empty key, a first call
// records the key with the request's hash; a later call with the same key
// within IdempotencyTTL answers the mood the first one created, or
// ErrKeyReused when it asks for something else. Expired keys of the user
// are dropped on the way, so the table holds only live ones without a
// background sweeper.
func (s *Store) Create(ctx context.Context, userID uuid.UUID, n New, key string) (Created, error) {
	now := dbTime(s.now())
	m := Mood{
		ID:         uuid.New(),
		UserID:     userID,
		Score:      n.Score,
		Label:      n.Label,
		Note:       n.Note,
		Tags:       n.Tags,
		RecordedAt: now,
		CreatedAt:  now,
		UpdatedAt:  now,
		Version:    1,
	}
	if m.Tags == nil {
		m.Tags = []string{}
	}
	if n.RecordedAt != nil {
		m.RecordedAt = dbTime(*n.RecordedAt)
	}
	var out Created
	// SQLite has a single connection: inside the transaction only tx is used.
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		seq, err := nextSeq(ctx, tx, userID)
		if err != nil {
			return err
		}
		m.ChangeSeq = seq
		if key == "" {
			if _, err := tx.NewInsert().Model(&m).Exec(ctx); err != nil {
				return err
			}
			out = Created{Mood: m}
			return nil
		}
		if _, err := tx.NewDelete().Model((*IdempotencyKey)(nil)).
			Where("user_id = ?", userID).
			Where("created_at <= ?", now.Add(-IdempotencyTTL)).
			Exec(ctx); err != nil {
			return err
		}
		rec := IdempotencyKey{UserID: userID, Key: key, RequestHash: n.Hash(), MoodID: m.ID, CreatedAt: now}
		// Claiming the key first makes a concurrent retry wait for this
		// transaction (Postgres) or the write lock (SQLite) and then find
		// the key taken, so one mood is created.
		res, err := tx.NewInsert().Model(&rec).On("CONFLICT (user_id, key) DO NOTHING").Exec(ctx)
		if err != nil {
			return err
		}
		if claimed, err := res.RowsAffected(); err != nil {
			return err
		} else if claimed == 1 {
			if _, err := tx.NewInsert().Model(&m).Exec(ctx); err != nil {
				return err
			}
			out = Created{Mood: m}
			return nil
		}
		var prev IdempotencyKey
		if err := tx.NewSelect().Model(&prev).
			Where("user_id = ?", userID).Where(`"key" = ?`, key).
			Scan(ctx); err != nil {
			return err
		}
		if !bytes.Equal(prev.RequestHash, rec.RequestHash) {
			return ErrKeyReused
		}
		got, err := get(ctx, tx, userID, prev.MoodID)
		if err != nil {
			return err
		}
		out = Created{Mood: got, Replayed: true}
		return nil
	})
	if err != nil {
		return Created{}, err
	}
	return out, nil
}

// ListQuery selects a page of a user's moods, newest recorded_at first.
type ListQuery struct {
	// Limit is 1..MaxLimit.
	Limit int
	// Before continues after the last mood of the previous page.
	Before *Cursor
	// From and To bound recorded_at: From <= recorded_at < To.
	From, To *time.Time
}

// List returns a page and, when there are more, the cursor of the next.
// It reads the (user_id, recorded_at DESC, id DESC) index as one range.
func (s *Store) List(ctx context.Context, userID uuid.UUID, q ListQuery) ([]Mood, *Cursor, error) {
	limit := q.Limit
	if limit < 1 || limit > MaxLimit {
		limit = DefaultLimit
	}
	moods := make([]Mood, 0, limit+1)
	err := database.Native(ctx, s.db, func(c *pgx.Conn) error {
		return listNative(ctx, c, &moods, userID, q, limit)
	})
	if errors.Is(err, database.ErrNotNative) {
		err = s.listQuery(&moods, userID, q, limit).Scan(ctx)
	}
	if err != nil {
		return nil, nil, err
	}
	var next *Cursor
	if len(moods) > limit {
		moods = moods[:limit]
		c := CursorOf(moods[limit-1])
		next = &c
	}
	for i := range moods {
		moods[i].normalize()
	}
	return moods, next, nil
}

// listQuery selects one more mood than limit, which tells whether a next
// page exists.
func (s *Store) listQuery(dst *[]Mood, userID uuid.UUID, q ListQuery, limit int) *bun.SelectQuery {
	sel := s.db.NewSelect().Model(dst).Where("user_id = ?", userID)
	if q.Before != nil {
		sel = sel.Where("(recorded_at, id) < (?, ?)", dbTime(q.Before.RecordedAt), q.Before.ID)
	}
	if q.From != nil {
		sel = sel.Where("recorded_at >= ?", dbTime(*q.From))
	}
	if q.To != nil {
		sel = sel.Where("recorded_at < ?", dbTime(*q.To))
	}
	return sel.OrderExpr("recorded_at DESC, id DESC").Limit(int64(limit + 1))
}

// Get returns one mood of userID.
func (s *Store) Get(ctx context.Context, userID, id uuid.UUID) (Mood, error) {
	return get(ctx, s.db, userID, id)
}

func get(ctx context.Context, db bun.IDB, userID, id uuid.UUID) (Mood, error) {
	var m Mood
	err := db.NewSelect().Model(&m).Where("id = ?", id).Where("user_id = ?", userID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Mood{}, ErrNotFound
	}
	if err != nil {
		return Mood{}, err
	}
	m.normalize()
	return m, nil
}

// Update applies p to a mood of userID in one statement, so concurrent
// patches of different fields do not undo each other. ifMatch is the
// request's If-Match: when it does not match the mood's ETag, nothing
// changes and the error is a *PreconditionError. A change bumps the
// mood's version and moves it to the end of the change feed.
func (s *Store) Update(ctx context.Context, userID, id uuid.UUID, p Patch, ifMatch Conditions) (Mood, error) {
	if p.Empty() {
		m, err := s.Get(ctx, userID, id)
		if err == nil && !ifMatch.MatchStrong(m.ETag()) {
			return Mood{}, &PreconditionError{Current: m}
		}
		return m, err
	}
	var m Mood
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		seq, err := nextSeq(ctx, tx, userID)
		if err != nil {
			return err
		}
		if ifMatch.Present && !ifMatch.Any {
			// The counter's lock keeps every other writer of this user's
			// moods out until commit, so the version read here is the
			// one the UPDATE below changes.
			cur, err := get(ctx, tx, userID, id)
			if err != nil {
				return err
			}
			if !ifMatch.MatchStrong(cur.ETag()) {
				return &PreconditionError{Current: cur}
			}
		}
		q := tx.NewUpdate().Model(&m).
			Where("id = ?", id).Where("user_id = ?", userID).
			Set("updated_at = ?", dbTime(s.now())).
			Set("version = version + 1").
			Set("change_seq = ?", seq)
		if p.Score.Set {
			q = q.Set("score = ?", p.Score.Value)
		}
		if p.Label.Set {
			q = q.Set("label = ?", nullable(p.Label))
		}
		if p.Note.Set {
			q = q.Set("note = ?", nullable(p.Note))
		}
		if p.Tags.Set {
			tags := p.Tags.Value
			if tags == nil {
				tags = []string{}
			}
			// Encoded here so both dialects receive the same JSON text.
			b, err := json.Marshal(tags)
			if err != nil {
				return err
			}
			q = q.Set("tags = ?", string(b))
		}
		if p.RecordedAt.Set {
			q = q.Set("recorded_at = ?", dbTime(p.RecordedAt.Value))
		}
		res, err := q.Returning("*").Exec(ctx)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Mood{}, err
	}
	m.normalize()
	return m, nil
}

// Delete removes a mood of userID, leaves its tombstone for the change
// feed, and drops the idempotency keys that name it, so a later retry of
// its create does not point at nothing. ifMatch is as Update's.
func (s *Store) Delete(ctx context.Context, userID, id uuid.UUID, ifMatch Conditions) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		seq, err := nextSeq(ctx, tx, userID)
		if err != nil {
			return err
		}
		if ifMatch.Present && !ifMatch.Any {
			cur, err := get(ctx, tx, userID, id)
			if err != nil {
				return err
			}
			if !ifMatch.MatchStrong(cur.ETag()) {
				return &PreconditionError{Current: cur}
			}
		}
		res, err := tx.NewDelete().Model((*Mood)(nil)).
			Where("id = ?", id).Where("user_id = ?", userID).Exec(ctx)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		t := Tombstone{UserID: userID, ID: id, ChangeSeq: seq, DeletedAt: dbTime(s.now())}
		if _, err := tx.NewInsert().Model(&t).Exec(ctx); err != nil {
			return fmt.Errorf("mood: writing a tombstone: %w", err)
		}
		_, err = tx.NewDelete().Model((*IdempotencyKey)(nil)).
			Where("user_id = ?", userID).Where("mood_id = ?", id).Exec(ctx)
		return err
	})
}

func nullable(o Optional[string]) *string {
	if o.Null {
		return nil
	}
	v := o.Value
	return &v
}

// normalize gives times read back from either driver the same zone.
func (m *Mood) normalize() {
	m.RecordedAt = m.RecordedAt.UTC()
	m.CreatedAt = m.CreatedAt.UTC()
	m.UpdatedAt = m.UpdatedAt.UTC()
	if m.Tags == nil {
		m.Tags = []string{}
	}
}
