package soulauth

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/mood"
)

// PathExport answers the signed-in user's data as one JSON document.
const PathExport = "/api/me/export"

// exportBatch is how many moods one query of an export reads; memory stays
// bounded by it whatever the journal's size.
const exportBatch = 500

// Export is the document GET /api/me/export answers. It is written
// piecewise, moods last, so this type only names its parts for the
// OpenAPI document and for clients in Go.
type Export struct {
	ExportedAt time.Time          `json:"exported_at"`
	User       auth.User          `json:"user"`
	Sessions   []auth.SessionInfo `json:"sessions"`
	Moods      []mood.Mood        `json:"moods"`
	// DeletedMoods are the tombstones the change feed keeps, oldest first.
	DeletedMoods []mood.Tombstone `json:"deleted_moods"`
}

// export streams the account, its open sessions and every mood, all read
// from one snapshot of the database (auth's Export), so the document is
// consistent however long the download takes. The headers go out with the
// first batch of moods, so a failure before it is an ordinary problem
// answer; a failure after it aborts the connection, and the client sees a
// truncated download rather than a file that looks whole.
func (h *Handler) export(w http.ResponseWriter, r *http.Request) error {
	id, err := h.authn.Authenticate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	now := time.Now().UTC()

	var (
		u        auth.User
		sessions []auth.SessionInfo
		out      *bufio.Writer
		enc      *json.Encoder
		rc       = http.NewResponseController(w)
		started  bool
		n        int
		deleted  bool // the moods' array is closed, deleted_moods' open
		nd       int
	)
	begin := func() error {
		started = true
		hdr := w.Header()
		httpapi.SetJSONHeaders(hdr)
		hdr.Set("Content-Disposition", `attachment; filename="soul-export-`+now.Format(time.DateOnly)+`.json"`)
		w.WriteHeader(http.StatusOK)
		out = bufio.NewWriterSize(w, 32<<10)
		enc = json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		_, _ = out.WriteString(`{"exported_at":`)
		_ = enc.Encode(now)
		_, _ = out.WriteString(`,"user":`)
		_ = enc.Encode(u)
		_, _ = out.WriteString(`,"sessions":`)
		_ = enc.Encode(sessions)
		_, err := out.WriteString(`,"moods":[`)
		return err
	}
	// flush hands a batch to the client, so what the server holds is one
	// batch and a buffer, not the document.
	flush := func() error {
		if err := out.Flush(); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}

	err = h.service.Export(ctx, id, exportBatch, func(user auth.User, open []auth.SessionInfo) error {
		u, sessions = user, open
		return nil
	}, func(batch []mood.Mood) error {
		if !started {
			if err := begin(); err != nil {
				return err
			}
		}
		for i := range batch {
			if n > 0 {
				_ = out.WriteByte(',')
			}
			if err := enc.Encode(&batch[i]); err != nil {
				return err
			}
			n++
		}
		return flush()
	}, func(batch []mood.Tombstone) error {
		if !started {
			if err := begin(); err != nil {
				return err
			}
		}
		if !deleted {
			deleted = true
			_, _ = out.WriteString(`],"deleted_moods":[`)
		}
		for i := range batch {
			if nd > 0 {
				_ = out.WriteByte(',')
			}
			if err := enc.Encode(&batch[i]); err != nil {
				return err
			}
			nd++
		}
		return flush()
	})
	if err == nil && !started {
		err = begin() // no moods at all
	}
	if err == nil {
		if !deleted {
			_, _ = out.WriteString(`],"deleted_moods":[`)
		}
		_, _ = out.WriteString("]}\n")
		err = flush()
	}
	switch {
	case err == nil:
		if h.logger.Core().Enabled(zap.InfoLevel) {
			h.logger.Info("account exported", zap.String("user_id", id.String()), zap.Int("moods", n))
		}
		return nil
	case !started:
		return h.fail(err)
	default:
		if ctx.Err() == nil {
			h.logger.Error("account export failed after it began", zap.String("user_id", id.String()),
				zap.Int("moods_written", n), zap.Error(err))
		}
		panic(http.ErrAbortHandler)
	}
}
