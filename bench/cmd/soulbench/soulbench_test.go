package main

import (
	"os"
	"testing"
)

func TestReadStatOfItself(t *testing.T) {
	st, err := readStat(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if st.ppid != os.Getppid() {
		t.Errorf("ppid %d, want %d", st.ppid, os.Getppid())
	}
	if st.utime < 0 || st.stime < 0 {
		t.Errorf("negative times: %+v", st)
	}
}

func TestListItems(t *testing.T) {
	soul := `[{"id":"a","score":1,"tags":["id"]},{"id":"b","score":2}]`
	pb := `{"items":[{"collectionId":"pbc_1","id":"x","user":"u"},{"collectionId":"pbc_1","id":"y","user":"u"}],"page":1}`
	for _, body := range []string{soul, pb} {
		if n := listItems([]byte(body)); n != 2 {
			t.Errorf("%s: %d items, want 2", body, n)
		}
	}
}

// The version results.json names is the one bench/pocketbase pins.
func TestPocketBasePinned(t *testing.T) {
	if v := moduleVersion("../../pocketbase", "github.com/pocketbase/pocketbase"); v != "v0.39.11" {
		t.Errorf("bench/pocketbase requires PocketBase %q, want v0.39.11", v)
	}
}
