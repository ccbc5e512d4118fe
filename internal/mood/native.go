package mood

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/tracing"
)

// moodColumns are the columns of Mood in the order scanMood reads them. A
// test holds them to the model's bun fields, so a new field cannot be left
// out of the list.
var moodColumns = []string{"id", "score", "label", "note", "tags", "recorded_at", "created_at", "updated_at"}

var selectMoods = "SELECT " + strings.Join(moodColumns, ", ") + " FROM moods WHERE user_id = $1"

// listNative is listQuery on Postgres without bun: the page is the most
// frequent request, and bun's reflection over every row and database/sql's
// conversion of every value were the largest part of its cost. The
// statement's text depends only on which bounds are set (eight forms), so
// each connection prepares it once (database.StatementMode) and Postgres
// parses and plans it once.
func listNative(ctx context.Context, c *pgx.Conn, dst *[]Mood, userID uuid.UUID, q ListQuery, limit int) (err error) {
	ctx, end := tracing.Query(ctx, "postgresql", "SELECT", "moods")
	defer func() { end(err) }()

	args := make([]any, 1, 6)
	args[0] = database.StatementMode
	var b strings.Builder
	b.Grow(len(selectMoods) + 120)
	b.WriteString(selectMoods)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args)-1)
	}
	args = append(args, [16]byte(userID))
	if q.Before != nil {
		b.WriteString(" AND (recorded_at, id) < (" + arg(dbTime(q.Before.RecordedAt)) + ", " + arg([16]byte(q.Before.ID)) + ")")
	}
	if q.From != nil {
		b.WriteString(" AND recorded_at >= " + arg(dbTime(*q.From)))
	}
	if q.To != nil {
		b.WriteString(" AND recorded_at < " + arg(dbTime(*q.To)))
	}
	b.WriteString(" ORDER BY recorded_at DESC, id DESC LIMIT " + arg(int64(limit+1)))

	rows, err := c.Query(ctx, b.String(), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var tags []byte
	for rows.Next() {
		var m Mood
		if err := rows.Scan((*[16]byte)(&m.ID), &m.Score, &m.Label, &m.Note, &tags, &m.RecordedAt, &m.CreatedAt, &m.UpdatedAt); err != nil {
			return err
		}
		m.UserID = userID
		if m.Tags, err = decodeTags(tags); err != nil {
			return err
		}
		*dst = append(*dst, m)
	}
	return rows.Err()
}

// decodeTags reads the stored JSON array of tags. Tags are short words, so
// most arrays hold no escape and are split here; any other form goes to
// encoding/json.
func decodeTags(b []byte) ([]string, error) {
	if tags, ok := splitPlainTags(b); ok {
		return tags, nil
	}
	var tags []string
	if err := json.Unmarshal(b, &tags); err != nil {
		return nil, err
	}
	return tags, nil
}

// splitPlainTags parses `["a","b"]` (whitespace allowed between items) when
// no string holds a backslash, a control character or invalid UTF-8; ok is false for
// anything else, which then takes the general path.
func splitPlainTags(b []byte) (tags []string, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	tags = []string{}
	if i < len(b) && b[i] == ']' {
		return tags, skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		j := i + 1
		for j < len(b) && b[j] != '"' {
			if b[j] == '\\' || b[j] < 0x20 {
				return nil, false
			}
			j++
		}
		if j >= len(b) || !utf8.Valid(b[i+1:j]) {
			// encoding/json turns invalid UTF-8 into U+FFFD.
			return nil, false
		}
		tags = append(tags, string(b[i+1:j]))
		i = skipSpace(b, j+1)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return tags, skipSpace(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
