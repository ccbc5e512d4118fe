package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Unavailable reports whether err means the database could not serve a call
// at all: unreachable, shutting down or restarting, out of connections or
// disk, locked, or too slow. A client may retry such a failure (503 with Retry-After), while
// any other error is a fault of ours (500). A caller that gave up
// (context.Canceled) is not the database failing.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		code := pe.Code
		switch {
		case strings.HasPrefix(code, "08"), // connection exception
			strings.HasPrefix(code, "53"), // insufficient resources: too many connections, disk full
			code == "57P01",               // admin_shutdown: the server is stopping (a restart, a failover)
			code == "57P02",               // crash_shutdown
			code == "57P03",               // cannot_connect_now: starting up or in recovery
			code == "57014":               // query_canceled: the statement timeout
			return true
		}
		// FATAL and PANIC end the session, whatever the code.
		v := pe.SeverityUnlocalized
		if v == "" {
			v = pe.Severity
		}
		return v == "FATAL" || v == "PANIC"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		// The primary code is the low byte; the rest says which variant.
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
			sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
			return true
		}
		return false
	}
	if pgconn.Timeout(err) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	switch {
	// pgconn.ErrConnClosed: a call on a connection pgx closed after an
	// earlier failure, such as the commit of a transaction whose session
	// the server ended.
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
