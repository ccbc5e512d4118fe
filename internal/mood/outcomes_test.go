package mood

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/soulapp/soul/internal/problem"
)

func TestOutcomeOf(t *testing.T) {
	o, ok := OutcomeOf(fmt.Errorf("getting: %w", ErrNotFound))
	if want := problem.From(nil, http.StatusNotFound); !ok || o.Status != want.Status || o.Code != want.Code || o.Detail != want.Detail {
		t.Errorf("not found answers %+v, other 404s %+v", o, want)
	}
	if o, ok := OutcomeOf(ErrKeyReused); !ok || o.Status != http.StatusUnprocessableEntity || o.Code != "idempotency_key_reused" {
		t.Errorf("key reused answers %+v", o)
	}
	for _, err := range []error{nil, errors.New("connection reset")} {
		if o, ok := OutcomeOf(err); ok {
			t.Errorf("OutcomeOf(%v) = %+v", err, o)
		}
	}
}
