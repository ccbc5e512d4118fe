package database

import (
	"net"
	"sync"
	"time"
)

// timeoutConn bounds every read and write of a connection: each waits at
// most its timeout, or less when the driver set an earlier deadline of its
// own (pgx sets one in the past to interrupt a call whose context ended).
// pgx has no read timeout of its own, and a request's context has no
// deadline, so without this a Postgres that stops answering mid-call would
// hold the call until the client went away.
type timeoutConn struct {
	net.Conn
	read, write time.Duration

	mu              sync.Mutex
	readDL, writeDL time.Time // the driver's deadlines; zero: none
}

func newTimeoutConn(c net.Conn, read, write time.Duration) *timeoutConn {
	return &timeoutConn{Conn: c, read: read, write: write}
}

func (c *timeoutConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	dl := earlier(c.readDL, time.Now().Add(c.read))
	err := c.Conn.SetReadDeadline(dl)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *timeoutConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	dl := earlier(c.writeDL, time.Now().Add(c.write))
	err := c.Conn.SetWriteDeadline(dl)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// The driver's own deadlines take effect at once (interrupting a blocked
// call) and are remembered for the next one.
func (c *timeoutConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDL, c.writeDL = t, t
	return c.Conn.SetDeadline(t)
}

func (c *timeoutConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDL = t
	return c.Conn.SetReadDeadline(t)
}

func (c *timeoutConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeDL = t
	return c.Conn.SetWriteDeadline(t)
}

// earlier is the sooner of a driver deadline (zero: none) and t.
func earlier(driver, t time.Time) time.Time {
	if !driver.IsZero() && driver.Before(t) {
		return driver
	}
	return t
}
