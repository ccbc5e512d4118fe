package soulmoods

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/mood"
)

// PathSummary is the per-bucket summary of the user's moods (the chart
// of the app), a literal path beside PathMoods + "/{id}": no mood id is
// "summary".
const PathSummary = PathMoods + "/summary"

// serveSummary answers PathSummary: GET only, signed in.
func (h *Handler) serveSummary(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return httpapi.MethodNotAllowed(http.MethodGet)
	}
	return h.authenticated(w, r, h.summary)
}

// summary counts the user's moods per day, week or month of their time
// zone in the database: the answer has at most a few hundred buckets
// however many moods the range holds.
func (h *Handler) summary(w http.ResponseWriter, r *http.Request, userID uuid.UUID) error {
	q, err := mood.ParseSummaryQuery(r.URL.Query())
	if err != nil {
		return httpapi.Error(err)
	}
	s, err := h.store.Summary(r.Context(), userID, q)
	if err != nil {
		return h.storeError(err)
	}
	buf := mood.ListBuffer()
	*buf = s.AppendJSON(*buf)
	httpapi.WriteJSONBody(w, http.StatusOK, *buf)
	mood.PutListBuffer(buf)
	return nil
}
