package mood

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"
	"time"
)

// hashBases are the values TestHashCoversEveryField changes one field of:
// one with every optional field absent, one with every field set.
func hashBases(t *testing.T) []New {
	t.Helper()
	var bases []New
	for _, body := range []string{
		`{"score":5}`,
		`{"score":7,"label":"calm","note":"a walk","tags":["sleep","work"],"recorded_at":"2026-02-28T09:30:00.123456Z"}`,
	} {
		n, err := DecodeNew([]byte(body), testNow)
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, n)
	}
	return bases
}

// TestHashCoversEveryField changes each field of New in turn, found by
// reflection, and wants a different hash each time: a field Hash did not
// see would let an Idempotency-Key be reused with that field changed and
// replay the first mood.
func TestHashCoversEveryField(t *testing.T) {
	typ := reflect.TypeFor[New]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			t.Errorf("New.%s is unexported: Hash does not see it", f.Name)
			continue
		}
		for _, base := range hashBases(t) {
			changed := base
			vary(t, f.Name, reflect.ValueOf(&changed).Elem().Field(i))
			if reflect.DeepEqual(changed, base) {
				t.Fatalf("New.%s: vary left the value as it was", f.Name)
			}
			if bytes.Equal(changed.Hash(), base.Hash()) {
				t.Errorf("New.%s: %+v and %+v hash alike", f.Name, base, changed)
			}
		}
	}
}

// vary sets v to a different value of its type, one that DecodeNew could
// give. Pointers and slices are replaced, never written through, so the
// value v was copied from keeps its own.
func vary(t *testing.T, field string, v reflect.Value) {
	t.Helper()
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(-time.Microsecond)))
		return
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if v.IsNil() {
			if p.Elem().Type() == reflect.TypeFor[time.Time]() {
				p.Elem().Set(reflect.ValueOf(testNow))
			}
		} else {
			p.Elem().Set(v.Elem())
			vary(t, field, p.Elem())
		}
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), v.Len(), v.Len()+1)
		reflect.Copy(s, v)
		elem := reflect.New(v.Type().Elem()).Elem()
		vary(t, field, elem)
		v.Set(reflect.Append(s, elem))
	default:
		t.Fatalf("New.%s: say in vary how to change a %s", field, v.Type())
	}
}

// TestHashUnchanged pins the hash of two requests to the values stored by
// earlier releases, so a deploy does not turn a client's retry within
// IdempotencyTTL into 422 idempotency_key_reused. A change that must alter
// them (see New) updates them here.
func TestHashUnchanged(t *testing.T) {
	want := []string{
		"105bf59c72b0d8920717327f4937fef42cb4c5f09028559f3df0ca7ec91e753a",
		"3b07e993b667e953023d845068d2466ce8b1108b5aa8b5a15d5392e889487ddd",
	}
	for i, n := range hashBases(t) {
		if got := hex.EncodeToString(n.Hash()); got != want[i] {
			t.Errorf("%+v hashes to %s, want %s", n, got, want[i])
		}
	}
}

// TestPatchEmptySeesEveryField sets each member of Patch in turn, found by
// reflection: a member Empty missed would make a PATCH of only that member
// change nothing.
func TestPatchEmptySeesEveryField(t *testing.T) {
	typ := reflect.TypeFor[Patch]()
	for i := range typ.NumField() {
		if _, ok := reflect.Zero(typ.Field(i).Type).Interface().(optional); !ok {
			t.Fatalf("Patch.%s is not an Optional", typ.Field(i).Name)
		}
	}
	if !(Patch{}).Empty() {
		t.Fatal("the zero Patch is not empty")
	}
	for i := range typ.NumField() {
		var p Patch
		reflect.ValueOf(&p).Elem().Field(i).FieldByName("Set").SetBool(true)
		if p.Empty() {
			t.Errorf("a Patch with only %s set is empty", typ.Field(i).Name)
		}
	}
}
