package sqlite

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"strings"
)

// database/sql prepares nothing by itself, and the driver compiles every
// query it is handed anew: parsing and planning were 40% of the CPU of the
// install-callback acceptance test. Each connection here keeps its most
// recently used statements compiled, keyed by their text, and runs a query
// or an exec through the compiled statement (the driver resets it after
// each use). Scripts of several statements, and a statement whose rows are
// still open on the connection, go the driver's uncached way.

// stmtCacheSize is how many compiled statements a connection keeps.
const stmtCacheSize = 128

// connector opens the driver's connections wrapped in a cachingConn.
type connector struct {
	drv driver.Driver
	dsn string
}

func (c connector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn)
}

func (c connector) Driver() driver.Driver { return c.drv }

// driverConn is what the driver's connections implement.
type driverConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type cachingConn struct {
	c     driverConn
	bySQL map[string]*list.Element // of *cachedStmt
	lru   *list.List               // most recently used first
}

type cachedStmt struct {
	query string
	st    driver.Stmt
	busy  bool // its rows are open
}

// The interfaces database/sql looks for, beside driver.Conn.
var (
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.ExecerContext      = (*cachingConn)(nil)
	_ driver.QueryerContext     = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
)

func newCachingConn(conn driver.Conn) (driver.Conn, error) {
	c, ok := conn.(driverConn)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlite: the driver's connection lacks a method the statement cache needs")
	}
	return &cachingConn{c: c, bySQL: map[string]*list.Element{}, lru: list.New()}, nil
}

// cacheable: one statement, of a reasonable size.
func cacheable(query string) bool {
	q := strings.TrimRight(strings.TrimSpace(query), "; \t\n")
	return len(q) <= 16<<10 && !strings.Contains(q, ";")
}

// stmt returns the compiled statement of query, compiling it if needed;
// nil when it is in use (or could not be cached).
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if !cacheable(query) {
		return nil, nil
	}
	if el, ok := c.bySQL[query]; ok {
		cs := el.Value.(*cachedStmt)
		if cs.busy {
			return nil, nil
		}
		c.lru.MoveToFront(el)
		return cs, nil
	}
	st, err := c.c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if _, ok := st.(driver.StmtExecContext); !ok {
		st.Close()
		return nil, nil
	}
	if _, ok := st.(driver.StmtQueryContext); !ok {
		st.Close()
		return nil, nil
	}
	cs := &cachedStmt{query: query, st: st}
	c.bySQL[query] = c.lru.PushFront(cs)
	for c.lru.Len() > stmtCacheSize {
		c.evict(c.lru.Back())
	}
	return cs, nil
}

// evict drops a statement from the cache; one whose rows are open is
// closed when they are.
func (c *cachingConn) evict(el *list.Element) {
	cs := c.lru.Remove(el).(*cachedStmt)
	delete(c.bySQL, cs.query)
	if !cs.busy {
		cs.st.Close()
	}
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.c.ExecContext(ctx, query, args)
	}
	return cs.st.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.c.QueryContext(ctx, query, args)
	}
	rows, err := cs.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, conn: c, cs: cs}, nil
}

// cachedRows frees its statement for the next use when closed.
type cachedRows struct {
	driver.Rows
	conn *cachingConn
	cs   *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.cs != nil {
		r.cs.busy = false
		if el, ok := r.conn.bySQL[r.cs.query]; !ok || el.Value != r.cs {
			r.cs.st.Close() // evicted while its rows were open
		}
		r.cs = nil
	}
	return err
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.c.Prepare(query) }

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.c.PrepareContext(ctx, query)
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.c.BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.c.Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error { return c.c.ResetSession(ctx) }

func (c *cachingConn) IsValid() bool { return c.c.IsValid() }

func (c *cachingConn) Close() error {
	for el := c.lru.Front(); el != nil; el = el.Next() {
		if cs := el.Value.(*cachedStmt); !cs.busy {
			cs.st.Close()
		}
	}
	c.bySQL, c.lru = nil, list.New()
	return c.c.Close()
}
