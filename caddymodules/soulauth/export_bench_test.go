package soulauth_test

import (
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/soultest"
)

// BenchmarkExport100k exports a journal of 100 000 moods through the
// server (in-process Caddy over loopback, identity encoding) and reports,
// beside ns/op: json-MB, the size of one export; alloc-MB/op, everything
// allocated per export (garbage included); heap-peak-MB, the highest
// HeapInuse sampled every 2ms during one more export run with the GC
// target at 10%; heap-growth-MB, that peak over the heap in use before it
// (the whole server's). A streamed export keeps heap-growth-MB far below
// json-MB.
func BenchmarkExport100k(b *testing.B) {
	const moods = 100_000
	for _, dbName := range soultest.Databases {
		b.Run(string(dbName), func(b *testing.B) {
			s := soultest.Start(b, soultest.Options{Database: dbName, Unchecked: "a benchmark: the figures are the server's alone", Env: map[string]string{
				"RATE_LIMIT_EXPORT_LIMIT":  "1000000",
				"RATE_LIMIT_DEFAULT_LIMIT": "1000000",
				"RATE_LIMIT_SHIELD_EVENTS": "1000000",
			}})
			phone := newPhone()
			resp := s.Do(http.MethodPost, soulauth.PathOTPRequest, map[string]string{"phone": phone})
			soultest.WantStatus(b, resp, http.StatusOK)
			var sent soulauth.OTPSent
			resp.JSON(b, &sent)
			resp = s.Do(http.MethodPost, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode})
			soultest.WantStatus(b, resp, http.StatusOK)
			var pair soulauth.TokenPair
			resp.JSON(b, &pair)
			insertMoods(b, s.OpenDB(b), pair.User.ID, moods, "bench")

			// The body is counted and dropped, so the client holds none of it.
			export := func() int64 {
				req, err := http.NewRequest(http.MethodGet, s.BaseURL+soulauth.PathExport, nil)
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
				req.Header.Set("Accept-Encoding", "identity")
				res, err := s.Client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				defer res.Body.Close()
				n, err := io.Copy(io.Discard, res.Body)
				if err != nil || res.StatusCode != http.StatusOK {
					b.Fatalf("export: status %d, %d bytes, %v", res.StatusCode, n, err)
				}
				return n
			}
			size := export() // warm up

			b.SetBytes(size)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			allocBefore := ms.TotalAlloc
			b.ResetTimer()
			for range b.N {
				// exported_at is the only part that changes, by a few bytes.
				if n := export(); n < size-16 || n > size+16 {
					b.Fatalf("export of %d bytes, then %d", size, n)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			allocPerOp := float64(ms.TotalAlloc-allocBefore) / float64(b.N)

			// Peak heap, out of the timing: with the GC target at 10% over
			// the live heap, garbage cannot hide what an export keeps
			// alive; a document held in memory would show whole.
			defer debug.SetGCPercent(debug.SetGCPercent(10))
			runtime.GC()
			runtime.ReadMemStats(&ms)
			base := ms.HeapInuse
			var peak atomic.Uint64
			peak.Store(base)
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				var m runtime.MemStats
				t := time.NewTicker(2 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						runtime.ReadMemStats(&m)
						if m.HeapInuse > peak.Load() {
							peak.Store(m.HeapInuse)
						}
					}
				}
			}()
			export()
			close(stop)
			<-done
			const mb = 1 << 20
			b.ReportMetric(float64(size)/mb, "json-MB")
			b.ReportMetric(float64(peak.Load())/mb, "heap-peak-MB")
			b.ReportMetric(float64(peak.Load()-base)/mb, "heap-growth-MB")
			b.ReportMetric(allocPerOp/mb, "alloc-MB/op")
		})
	}
}
