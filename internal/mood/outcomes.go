package mood

import (
	"errors"
	"net/http"

	"github.com/soulapp/soul/internal/problem"
)

// Outcome is how the API answers one of the Store's errors.
type Outcome struct {
	// Err is the error, matched with errors.Is.
	Err error
	// Status, Code and Detail are the problem the client gets.
	Status int
	Code   string
	Detail string
}

// Outcomes is every error of the Store that the API tells clients apart.
// Any other error is the database's: down (503) or a failure of ours (500).
var Outcomes = []Outcome{
	// Another user's mood is not found either, answered as any other 404.
	{ErrNotFound, http.StatusNotFound, "not_found", "No such resource."},
	{ErrKeyReused, http.StatusUnprocessableEntity, "idempotency_key_reused",
		"This Idempotency-Key was already used for a different request."},
	// If-Match named a version the mood no longer has; the answer holds
	// the mood as it is (see PreconditionError).
	{ErrPreconditionFailed, http.StatusPreconditionFailed, "precondition_failed",
		"The mood changed since the version If-Match names; current is the mood as it is now."},
	{ErrSyncCursorExpired, http.StatusGone, "sync_cursor_expired",
		"This sync cursor is older than deleted moods are remembered; download the moods again from an empty since."},
	{ErrBadSyncCursor, http.StatusBadRequest, "invalid_cursor",
		"since must be a cursor this API answered to this account."},
	{ErrBadETag, http.StatusBadRequest, "invalid_etag",
		"If-Match and If-None-Match must be * or a list of quoted entity tags."},
}

// OutcomeOf returns the first of Outcomes that err is; false for nil and
// for an error that is none of them.
func OutcomeOf(err error) (Outcome, bool) {
	if err == nil {
		return Outcome{}, false
	}
	for _, o := range Outcomes {
		if errors.Is(err, o.Err) {
			return o, true
		}
	}
	return Outcome{}, false
}

// Problem is the API answer of the outcome, a new one each call.
func (o Outcome) Problem() *problem.Error {
	return problem.New(o.Status, o.Code, o.Detail)
}

// ProblemOf is the answer to err when it is one of Outcomes: a 412 carries
// the mood as it is now, and its ETag.
func ProblemOf(err error) (*problem.Error, bool) {
	o, ok := OutcomeOf(err)
	if !ok {
		return nil, false
	}
	p := o.Problem()
	var pe *PreconditionError
	if errors.As(err, &pe) {
		p.Current = pe.Current.AppendJSON(nil)
		p.Header = http.Header{"Etag": {pe.Current.ETag()}}
	}
	return p, true
}
