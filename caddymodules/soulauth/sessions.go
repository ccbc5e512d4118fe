package soulauth

import (
	"errors"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/problem"
)

// PathSessions lists the signed-in user's devices; PathSessions/{id} is
// one of them.
const PathSessions = "/api/me/sessions"

// ScopeOthers is the one scope DELETE PathSessions takes: every session
// but the caller's.
const ScopeOthers = "others"

// SessionList answers GET /api/me/sessions.
type SessionList struct {
	Sessions []auth.DeviceSession `json:"sessions"`
}

// serveSessions routes PathSessions and PathSessions/{id}; it reports
// false for any other path.
func (h *Handler) serveSessions(w http.ResponseWriter, r *http.Request) (bool, error) {
	if r.URL.Path == PathSessions {
		switch r.Method {
		case http.MethodGet:
			return true, h.listSessions(w, r)
		case http.MethodDelete:
			return true, h.endOtherSessions(w, r)
		}
		return true, httpapi.MethodNotAllowed(http.MethodGet, http.MethodDelete)
	}
	rest, ok := strings.CutPrefix(r.URL.Path, PathSessions+"/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return false, nil
	}
	if r.Method != http.MethodDelete {
		return true, httpapi.MethodNotAllowed(http.MethodDelete)
	}
	return true, h.endSession(w, r, rest)
}

func (h *Handler) listSessions(w http.ResponseWriter, r *http.Request) error {
	userID, sessionID, err := h.authn.AuthenticateSession(r)
	if err != nil {
		return err
	}
	list, err := h.service.Sessions(r.Context(), userID, sessionID)
	if err != nil {
		return h.fail(err)
	}
	return httpapi.WriteJSON(w, http.StatusOK, SessionList{Sessions: list})
}

func (h *Handler) endSession(w http.ResponseWriter, r *http.Request, rawID string) error {
	userID, _, err := h.authn.AuthenticateSession(r)
	if err != nil {
		return err
	}
	// Only the canonical form, as the API writes ids: no braces, no urn:.
	id, err := uuid.Parse(rawID)
	if err != nil || id.String() != strings.ToLower(rawID) {
		return httpapi.NotFound()
	}
	if err := h.service.EndSession(r.Context(), userID, id); err != nil {
		if errors.Is(err, auth.ErrNotFound) {
			return httpapi.NotFound()
		}
		return h.fail(err)
	}
	h.logger.Info("session ended by its user", zap.String("user_id", userID.String()), zap.String("session_id", id.String()))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) endOtherSessions(w http.ResponseWriter, r *http.Request) error {
	userID, sessionID, err := h.authn.AuthenticateSession(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if scope := q["scope"]; len(scope) != 1 || scope[0] != ScopeOthers {
		return httpapi.Problem(problem.Validation(problem.FieldError{Field: "scope", Message: "must be " + ScopeOthers}))
	}
	n, err := h.service.EndOtherSessions(r.Context(), userID, sessionID)
	if err != nil {
		return h.fail(err)
	}
	h.logger.Info("other sessions ended by their user", zap.String("user_id", userID.String()),
		zap.String("session_id", sessionID.String()), zap.Int("ended", n))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
