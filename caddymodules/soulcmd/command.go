// Package soulcmd adds the `caddy soul ...` subcommands, so the image needs
// no other tool: migrations, the container health check and smoke tests.
package soulcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/migrations"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "soul",
		Usage: "<migrate up|down|status | healthcheck | smoke --base-url URL>",
		Short: "SOUL API tools: database migrations, health check, smoke tests",
		Long: `
Tools for operating the SOUL API.

  caddy soul migrate up       apply pending migrations
  caddy soul migrate down     roll back the last applied group
  caddy soul migrate status   list migrations and whether each is applied
  caddy soul healthcheck      GET /healthz on this machine; exit 0 when it answers 200
  caddy soul smoke --base-url URL [--origin O] [--phone P --code C] [--skip-burst]
                              check a deployment from outside; exit 1 naming
                              each failed check (see caddy soul smoke --help)

Migrations use DATABASE_URL (Postgres) or, when it is unset, SQLITE_PATH
(default data/soul.db). healthcheck calls http://127.0.0.1:$PORT/healthz
(PORT defaults to 8080), or the URL given with --url.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(migrateCommand(), healthcheckCommand(), smokeCommand())
		},
	})
}

func migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate up|down|status",
		Short: "Apply, roll back or list database migrations",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			timeout, _ := cmd.Flags().GetDuration("timeout")
			return runMigrate(cmd.Context(), args[0], timeout, cmd.OutOrStdout())
		},
	}
	cmd.Flags().Duration("timeout", 5*time.Minute, "give up after this long")
	return cmd
}

func runMigrate(ctx context.Context, action string, timeout time.Duration, out io.Writer) error {
	if action != "up" && action != "down" && action != "status" {
		return fmt.Errorf("unknown migrate action %q: use up, down or status", action)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg := database.Config{URL: os.Getenv("DATABASE_URL"), SQLitePath: os.Getenv("SQLITE_PATH")}
	if cfg.SQLitePath == "" {
		cfg.SQLitePath = "data/soul.db"
	}
	db, _, err := database.Open(ctx, cfg, 30*time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := migrations.New(db)
	if err != nil {
		return err
	}
	switch action {
	case "up", "down":
		run := r.Up
		verb := "applied"
		if action == "down" {
			run, verb = r.Down, "rolled back"
		}
		names, err := run(ctx)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Fprintf(out, "%s: nothing to do\n", cfg.Describe())
		}
		for _, n := range names {
			fmt.Fprintf(out, "%s %s\n", verb, n)
		}
	case "status":
		list, err := r.Status(ctx)
		if err != nil {
			return err
		}
		for _, m := range list {
			state := "pending"
			if m.Applied {
				state = fmt.Sprintf("applied (group %d)", m.GroupID)
			}
			fmt.Fprintf(out, "%s\t%s\n", m.Name, state)
		}
	}
	return nil
}

func healthcheckCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when this instance's /healthz answers 200",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			target, _ := cmd.Flags().GetString("url")
			if target == "" {
				port := os.Getenv("PORT")
				if port == "" {
					port = "8080"
				}
				target = "http://127.0.0.1:" + port + "/healthz"
			}
			timeout, _ := cmd.Flags().GetDuration("timeout")
			return healthcheck(target, timeout)
		},
	}
	cmd.Flags().String("url", "", "health URL (default http://127.0.0.1:$PORT/healthz)")
	cmd.Flags().Duration("timeout", 3*time.Second, "give up after this long")
	return cmd
}

func healthcheck(target string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(target)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return errors.New("healthcheck: " + resp.Status + ": " + string(body))
	}
	fmt.Println(string(body))
	return nil
}
