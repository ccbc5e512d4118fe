package all_test

import (
	"testing"

	"github.com/soulapp/soul/soultest"
)

func TestAdaptSoulCORSErrors(t *testing.T) {
	cases := map[string]string{
		"inline origin":           ":80 {\n\tsoul_cors https://app.soulapp.app\n}\n",
		"unknown subdirective":    ":80 {\n\tsoul_cors {\n\t\tallow_methods GET\n\t}\n}\n",
		"allow_credentials value": ":80 {\n\tsoul_cors {\n\t\tallow_credentials yes\n\t}\n}\n",
		"max_age without value":   ":80 {\n\tsoul_cors {\n\t\tmax_age\n\t}\n}\n",
		"max_age not a duration":  ":80 {\n\tsoul_cors {\n\t\tmax_age often\n\t}\n}\n",
		"max_age negative":        ":80 {\n\tsoul_cors {\n\t\tmax_age -1m\n\t}\n}\n",
		"max_age two values":      ":80 {\n\tsoul_cors {\n\t\tmax_age 1m 2m\n\t}\n}\n",
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := soultest.Adapt(cfg); err == nil {
				t.Fatalf("adapted without error:\n%s", cfg)
			}
		})
	}
}
