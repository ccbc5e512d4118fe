// Package soulmoods is the `soul_moods` handler: the signed-in user's mood
// journal at /api/moods. The rules and queries live in internal/mood; this
// package turns HTTP into calls of its Store and its outcomes into answers.
package soulmoods

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/soulapp/soul/caddymodules/soul"
	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/internal/problem"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// PathMoods is the collection; a mood is PathMoods + "/" + id.
const PathMoods = "/api/moods"

// PathChanges is the change feed of offline-first sync.
const PathChanges = PathMoods + "/changes"

// MaxIdempotencyKey bounds the Idempotency-Key header (characters).
const MaxIdempotencyKey = 255

// Handler answers /api/moods, /api/moods/changes and /api/moods/{id} for the user of the
// request's access token; any other path under it is 404.
type Handler struct {
	store *mood.Store
	// syncKeys sign and check change-feed cursors: the current key first,
	// then the one being rotated out.
	syncKeys [][]byte
	// tombstones is how long deletions are kept, so how old a cursor may be.
	tombstones time.Duration
	logger     *zap.Logger
	authn      *auth.Authenticator
	now        func() time.Time
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.soul_moods",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the shared database and the bearer authenticator.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := soul.FromContext(ctx)
	if err != nil {
		return err
	}
	h.authn = app.Authenticator()
	h.now = time.Now
	h.store = mood.NewStore(app.DB(), h.now)
	if h.syncKeys, err = app.DeriveKeys(mood.LabelSyncCursor); err != nil {
		return fmt.Errorf("soul_moods: deriving the sync cursor key: %w", err)
	}
	h.tombstones = app.Settings().SyncTombstoneRetention
	return nil
}

// ServeHTTP routes by path and method. The method is checked before the
// token, so a 405 tells a client its mistake whether or not it signed in;
// the id only after it, so nobody learns which ids exist.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.URL.Path == PathMoods {
		switch r.Method {
		case http.MethodGet:
			return h.authenticated(w, r, h.list)
		case http.MethodPost:
			return h.authenticated(w, r, h.create)
		}
		return httpapi.MethodNotAllowed(http.MethodGet, http.MethodPost)
	}
	if r.URL.Path == PathSummary {
		return h.serveSummary(w, r)
	}
	if r.URL.Path == PathChanges {
		if r.Method != http.MethodGet {
			return httpapi.MethodNotAllowed(http.MethodGet)
		}
		return h.authenticated(w, r, h.changes)
	}
	rawID, ok := strings.CutPrefix(r.URL.Path, PathMoods+"/")
	if !ok || rawID == "" || strings.Contains(rawID, "/") {
		return httpapi.NotFound()
	}
	var serve func(http.ResponseWriter, *http.Request, uuid.UUID, uuid.UUID) error
	switch r.Method {
	case http.MethodGet:
		serve = h.get
	case http.MethodPatch:
		serve = h.patch
	case http.MethodDelete:
		serve = h.delete
	default:
		return httpapi.MethodNotAllowed(http.MethodGet, http.MethodPatch, http.MethodDelete)
	}
	return h.authenticated(w, r, func(w http.ResponseWriter, r *http.Request, userID uuid.UUID) error {
		id, err := uuid.Parse(rawID)
		// Only the canonical lower-case form names a mood: the other
		// spellings uuid.Parse accepts (upper case, braces, urn:uuid:)
		// would make several URLs for one mood.
		if err != nil || id.String() != rawID {
			return httpapi.NotFound()
		}
		return serve(w, r, userID, id)
	})
}

func (h *Handler) authenticated(w http.ResponseWriter, r *http.Request, next func(http.ResponseWriter, *http.Request, uuid.UUID) error) error {
	userID, err := h.authn.Authenticate(r)
	if err != nil {
		return err
	}
	return next(w, r, userID)
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, userID uuid.UUID) error {
	key, err := idempotencyKey(r.Header)
	if err != nil {
		return err
	}
	body, err := httpapi.ReadJSONBytes(r)
	if err != nil {
		return err
	}
	n, err := mood.DecodeNew(body, h.now())
	if err != nil {
		return httpapi.Error(err)
	}
	c, err := h.store.Create(r.Context(), userID, n, key)
	if err != nil {
		return h.storeError(err)
	}
	w.Header().Set("Location", PathMoods+"/"+c.Mood.ID.String())
	w.Header().Set("ETag", c.Mood.ETag())
	return httpapi.WriteJSON(w, http.StatusCreated, c.Mood)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, userID uuid.UUID) error {
	q, err := mood.ParseListQuery(r.URL.Query())
	if err != nil {
		return httpapi.Error(err)
	}
	inm, err := conditions(r.Header, "If-None-Match")
	if err != nil {
		return err
	}
	moods, next, err := h.store.List(r.Context(), userID, q)
	if err != nil {
		return h.storeError(err)
	}
	if next != nil {
		w.Header().Set("Link", "<"+nextURL(r.URL.Query(), q.Limit, *next)+`>; rel="next"`)
	}
	buf := mood.ListBuffer()
	*buf = mood.AppendList(*buf, moods)
	// The page's tag is a digest of its body: any change to any mood on
	// it, or to which moods it holds, changes it.
	etag := bodyETag(*buf)
	w.Header().Set("ETag", etag)
	if inm.MatchWeak(etag) {
		mood.PutListBuffer(buf)
		notModified(w)
		return nil
	}
	httpapi.WriteJSONBody(w, http.StatusOK, *buf)
	mood.PutListBuffer(buf)
	return nil
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, userID, id uuid.UUID) error {
	inm, err := conditions(r.Header, "If-None-Match")
	if err != nil {
		return err
	}
	m, err := h.store.Get(r.Context(), userID, id)
	if err != nil {
		return h.storeError(err)
	}
	w.Header().Set("ETag", m.ETag())
	if inm.MatchWeak(m.ETag()) {
		notModified(w)
		return nil
	}
	return httpapi.WriteJSON(w, http.StatusOK, m)
}

// changes answers the change feed: ?since=<cursor>&limit=.
func (h *Handler) changes(w http.ResponseWriter, r *http.Request, userID uuid.UUID) error {
	v := r.URL.Query()
	limit := mood.DefaultLimit
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > mood.MaxLimit {
			return httpapi.Problem(problem.Validation(problem.FieldError{
				Field: "limit", Message: "must be an integer from 1 to " + strconv.Itoa(mood.MaxLimit),
			}))
		}
		limit = n
	}
	var since *mood.SyncCursor
	if s := v.Get("since"); s != "" {
		c, err := mood.ParseSyncCursor(s, h.syncKeys, userID, h.now(), h.tombstones)
		if err != nil {
			return h.storeError(err)
		}
		since = &c
	}
	page, err := h.store.Changes(r.Context(), userID, since, limit)
	if err != nil {
		return h.storeError(err)
	}
	page.Next.Issued = h.now()
	buf := mood.ListBuffer()
	*buf = mood.AppendChanges(*buf, page, page.Next.Encode(h.syncKeys[0], userID))
	httpapi.WriteJSONBody(w, http.StatusOK, *buf)
	mood.PutListBuffer(buf)
	return nil
}

func (h *Handler) patch(w http.ResponseWriter, r *http.Request, userID, id uuid.UUID) error {
	body, err := httpapi.ReadJSONBytes(r)
	if err != nil {
		return err
	}
	p, err := mood.DecodePatch(body, h.now())
	if err != nil {
		return httpapi.Error(err)
	}
	im, err := conditions(r.Header, "If-Match")
	if err != nil {
		return err
	}
	m, err := h.store.Update(r.Context(), userID, id, p, im)
	if err != nil {
		return h.storeError(err)
	}
	w.Header().Set("ETag", m.ETag())
	return httpapi.WriteJSON(w, http.StatusOK, m)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, userID, id uuid.UUID) error {
	im, err := conditions(r.Header, "If-Match")
	if err != nil {
		return err
	}
	if err := h.store.Delete(r.Context(), userID, id, im); err != nil {
		return h.storeError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// conditions reads an If-Match or If-None-Match header; a malformed one is
// 400 invalid_etag, not ignored: a client that meant a condition must not
// have its write go through unconditionally.
func conditions(hd http.Header, name string) (mood.Conditions, error) {
	c, err := mood.ParseConditions(hd.Values(name))
	if err != nil {
		p, _ := mood.ProblemOf(err)
		return c, httpapi.Problem(p)
	}
	return c, nil
}

// bodyETag is a strong tag of an answer's bytes: 128 bits of SHA-256.
func bodyETag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"l` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
}

// notModified answers 304 with the headers already set (ETag): no body,
// no Content-Type.
func notModified(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotModified)
}

// nextURL is the link to the page after c, keeping the client's bounds.
func nextURL(v url.Values, limit int, c mood.Cursor) string {
	next := url.Values{}
	for _, k := range []string{"from", "to"} {
		if s := v.Get(k); s != "" {
			next.Set(k, s)
		}
	}
	next.Set("limit", strconv.Itoa(limit))
	next.Set("before", c.String())
	return PathMoods + "?" + next.Encode()
}

// idempotencyKey reads the optional Idempotency-Key header: printable
// ASCII, at most MaxIdempotencyKey characters.
func idempotencyKey(h http.Header) (string, error) {
	vs := h.Values("Idempotency-Key")
	if len(vs) == 0 {
		return "", nil
	}
	key := strings.TrimSpace(vs[0])
	ok := len(vs) == 1 && key != "" && len(key) <= MaxIdempotencyKey
	for i := 0; ok && i < len(key); i++ {
		ok = key[i] >= 0x20 && key[i] < 0x7f
	}
	if !ok {
		return "", httpapi.Problem(problem.Validation(problem.FieldError{
			Field:   "Idempotency-Key",
			Message: "must be one header of 1 to 255 printable ASCII characters",
		}))
	}
	return key, nil
}

// storeError maps the Store's outcomes to problems (mood.Outcomes); the
// database down is a 503 a client may retry, any other failure a 500.
func (h *Handler) storeError(err error) error {
	if p, ok := mood.ProblemOf(err); ok {
		return httpapi.Problem(p)
	}
	if !database.Unavailable(err) {
		// A statement the database refused is a fault of ours, not
		// something a retry would fix.
		h.logger.Error("moods: database error", zap.Error(err))
		return httpapi.Internal(err)
	}
	h.logger.Error("moods: database unavailable", zap.Error(err))
	return httpapi.Unavailable(err)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
