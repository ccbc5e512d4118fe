package mood

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/tracing"
)

// moodColumns are the columns of Mood in the order scanMood reads them. A
// test holds them to the model's bun fields, so a new field cannot be left
// out of the list.
var moodColumns = []string{"id", "score", "label", "note", "tags", "recorded_at", "created_at", "updated_at", "version", "change_seq"}

var selectMoods = "SELECT " + strings.Join(moodColumns, ", ") + " FROM moods WHERE user_id = $1"

// listNative is listQuery on Postgres without bun: the page is the most
// frequent request, and bun's reflection over every row and database/sql's
// conversion of every value were the largest part of its cost. The
// statement's text depends only on which bounds are set (eight forms), so
// each connection prepares it once (by default: database.StatementMode)
// and Postgres parses and plans it once.
func listNative(ctx context.Context, c *pgx.Conn, dst *[]Mood, userID uuid.UUID, q ListQuery, limit int) (err error) {
	ctx, end := tracing.Query(ctx, "postgresql", "SELECT", "moods")
	defer func() { end(err) }()

	args := make([]any, 2, 7)
	args[0] = database.StatementMode(c)
	args[1] = [16]byte(userID)
	form := 0
	if q.Before != nil {
		form |= formBefore
		args = append(args, dbTime(q.Before.RecordedAt), [16]byte(q.Before.ID))
	}
	if q.From != nil {
		form |= formFrom
		args = append(args, dbTime(*q.From))
	}
	if q.To != nil {
		form |= formTo
		args = append(args, dbTime(*q.To))
	}
	args = append(args, int64(limit+1))

	rows, err := c.Query(ctx, listStatements[form], args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var page pageSlabs
	first := len(*dst)
	for rows.Next() {
		// Scanned in place: a local Mood would escape (the fallback scan
		// takes its fields' addresses) and cost an allocation a row.
		*dst = append(*dst, Mood{})
		m := &(*dst)[len(*dst)-1]
		if err := scanMood(rows, m, &page); err != nil {
			*dst = (*dst)[:len(*dst)-1]
			return err
		}
		m.UserID = userID
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return page.finish((*dst)[first:])
}

// The bounds a list statement has, and its text for each set of them,
// built once: the placeholders are numbered in the order listNative
// appends the arguments.
const (
	formBefore = 1 << iota
	formFrom
	formTo
)

var listStatements = func() (forms [8]string) {
	for form := range forms {
		n := 1
		arg := func() string { n++; return "$" + strconv.Itoa(n) }
		st := selectMoods
		if form&formBefore != 0 {
			st += " AND (recorded_at, id) < (" + arg() + ", " + arg() + ")"
		}
		if form&formFrom != 0 {
			st += " AND recorded_at >= " + arg()
		}
		if form&formTo != 0 {
			st += " AND recorded_at < " + arg()
		}
		forms[form] = st + " ORDER BY recorded_at DESC, id DESC LIMIT " + arg()
	}
	return forms
}()

// pageSlabs hold, for a whole page, the text of every row (label, note
// and the tags' JSON, copied from the wire into one buffer that becomes
// one string at the end) and the strings the moods' Label, Note and Tags
// point into, so that a page costs a handful of allocations rather than
// several a row.
type pageSlabs struct {
	buf   []byte
	spans []textSpan
	texts []string
	tags  []string
}

// textSpan is where one row's text lies in pageSlabs.buf; a row scanned
// without the binary format (scanned true) has its values set already.
type textSpan struct {
	scanned                bool
	label, note, tags, end int
	hasLabel, hasNote      bool
}

func (p *pageSlabs) add(label, note, tags []byte) {
	if p.spans == nil {
		p.spans = make([]textSpan, 0, MaxLimit+1)
		p.buf = make([]byte, 0, 4096)
	}
	sp := textSpan{label: len(p.buf), hasLabel: label != nil, hasNote: note != nil}
	p.buf = append(p.buf, label...)
	sp.note = len(p.buf)
	p.buf = append(p.buf, note...)
	sp.tags = len(p.buf)
	p.buf = append(p.buf, tags...)
	sp.end = len(p.buf)
	p.spans = append(p.spans, sp)
}

func (p *pageSlabs) text(s string) *string {
	if len(p.texts) == cap(p.texts) {
		p.texts = make([]string, 0, 2*(MaxLimit+1))
	}
	p.texts = append(p.texts, s)
	return &p.texts[len(p.texts)-1]
}

// finish sets the text values of moods, one per span in order.
func (p *pageSlabs) finish(moods []Mood) error {
	if len(p.spans) != len(moods) {
		return fmt.Errorf("mood: %d rows of text for %d moods", len(p.spans), len(moods))
	}
	all := string(p.buf)
	for i, sp := range p.spans {
		if sp.scanned {
			continue
		}
		m := &moods[i]
		if sp.hasLabel {
			m.Label = p.text(all[sp.label:sp.note])
		}
		if sp.hasNote {
			m.Note = p.text(all[sp.note:sp.tags])
		}
		tagsJSON := all[sp.tags:sp.end]
		if tags, ok := splitPlainTags(tagsJSON, &p.tags); ok {
			m.Tags = tags
			continue
		}
		var err error
		if m.Tags, err = decodeTags([]byte(tagsJSON)); err != nil {
			return err
		}
	}
	return nil
}

// scanMood reads one row of moodColumns. In the binary format the
// prepared statement answers in, the values are decoded here from the
// wire; in any other (a mode without it) pgx scans them.
func scanMood(rows pgx.Rows, m *Mood, page *pageSlabs) error {
	fds := rows.FieldDescriptions()
	// Text columns read the same in both formats, and jsonb's binary form
	// is its text after a version byte; the rest must be binary.
	binary := len(fds) == len(moodColumns) && fds[4].DataTypeOID == pgtype.JSONBOID
	for i, fd := range fds {
		binary = binary && (fd.Format == pgx.BinaryFormatCode || i == 2 || i == 3 || i == 4)
	}
	if !binary {
		var tags []byte
		if err := rows.Scan((*[16]byte)(&m.ID), &m.Score, &m.Label, &m.Note, &tags, &m.RecordedAt, &m.CreatedAt, &m.UpdatedAt, &m.Version, &m.ChangeSeq); err != nil {
			return err
		}
		var err error
		m.Tags, err = decodeTags(tags)
		page.spans = append(page.spans, textSpan{scanned: true})
		return err
	}
	v := rows.RawValues()
	tagsRaw := v[4]
	if fds[4].Format == pgx.BinaryFormatCode {
		if len(tagsRaw) < 1 || tagsRaw[0] != 1 {
			return fmt.Errorf("mood: jsonb of version %v", tagsRaw[:min(1, len(tagsRaw))])
		}
		tagsRaw = tagsRaw[1:]
	}
	if len(v[0]) != 16 || v[4] == nil {
		return fmt.Errorf("mood: unexpected row (id of %d bytes)", len(v[0]))
	}
	copy(m.ID[:], v[0])
	switch len(v[1]) {
	case 2:
		m.Score = int(int16(binary16(v[1])))
	case 4:
		m.Score = int(int32(binary32(v[1])))
	default:
		return fmt.Errorf("mood: score of %d bytes", len(v[1]))
	}
	var err error
	for i, t := range []*time.Time{&m.RecordedAt, &m.CreatedAt, &m.UpdatedAt} {
		if *t, err = timestamptz(v[5+i]); err != nil {
			return err
		}
	}
	for i, n := range []*int64{&m.Version, &m.ChangeSeq} {
		if *n, err = int8Value(v[8+i]); err != nil {
			return err
		}
	}
	// The row's text is copied now (the raw values are only valid until
	// the next row) and becomes strings once the page is read.
	page.add(v[2], v[3], tagsRaw)
	return nil
}

func binary16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func binary32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// int8Value reads a bigint's binary form.
func int8Value(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("mood: bigint of %d bytes", len(b))
	}
	return int64(binary32(b[:4]))<<32 | int64(binary32(b[4:])), nil
}

// postgresEpoch is where timestamptz's binary form counts from, in
// microseconds.
var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func timestamptz(b []byte) (time.Time, error) {
	if len(b) != 8 {
		return time.Time{}, fmt.Errorf("mood: timestamptz of %d bytes", len(b))
	}
	us := int64(binary32(b[:4]))<<32 | int64(binary32(b[4:]))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return time.Time{}, errors.New("mood: infinite timestamptz")
	}
	return postgresEpoch.Add(time.Duration(us) * time.Microsecond), nil
}

// decodeTags reads the stored JSON array of tags. Tags are short words, so
// most arrays hold no escape and are split without encoding/json.
func decodeTags(b []byte) ([]string, error) {
	if tags, ok := splitPlainTags(string(b), nil); ok {
		return tags, nil
	}
	var tags []string
	if err := json.Unmarshal(b, &tags); err != nil {
		return nil, err
	}
	return tags, nil
}

// splitPlainTags parses `["a","b"]` (whitespace allowed between items) when
// no string holds a backslash, a control character or invalid UTF-8; ok
// is false for anything else, which then takes encoding/json's path. The
// tags are slices of s, appended to *slab when slab is not nil (a page's
// moods share one), and the result is capped so that appending to it
// cannot reach a neighbour's tags.
func splitPlainTags(s string, slab *[]string) (tags []string, ok bool) {
	var own []string
	if slab == nil {
		slab = &own
	}
	start := len(*slab)
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '[' {
		return nil, false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == ']' {
		return []string{}, skipSpace(s, i+1) == len(s)
	}
	for {
		if i >= len(s) || s[i] != '"' {
			*slab = (*slab)[:start]
			return nil, false
		}
		j := i + 1
		for j < len(s) && s[j] != '"' {
			if s[j] == '\\' || s[j] < 0x20 {
				*slab = (*slab)[:start]
				return nil, false
			}
			j++
		}
		if j >= len(s) || !utf8.ValidString(s[i+1:j]) {
			// encoding/json turns invalid UTF-8 into U+FFFD.
			*slab = (*slab)[:start]
			return nil, false
		}
		if len(*slab) == cap(*slab) && slab != &own {
			// A new slab: the tags so far move with them.
			n := append(make([]string, 0, max(64, 2*(len(*slab)-start+1))), (*slab)[start:]...)
			*slab, start = n, 0
		}
		*slab = append(*slab, s[i+1:j])
		i = skipSpace(s, j+1)
		if i >= len(s) {
			*slab = (*slab)[:start]
			return nil, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case ']':
			if skipSpace(s, i+1) != len(s) {
				*slab = (*slab)[:start]
				return nil, false
			}
			return (*slab)[start:len(*slab):len(*slab)], true
		default:
			*slab = (*slab)[:start]
			return nil, false
		}
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}
