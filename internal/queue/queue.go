// Package queue connects the engine to Redis: asynq for tasks and a go-redis
// client for the shared rate limits. With no URL it runs an in-process
// Redis (miniredis), whose queued work does not survive a restart.
package queue

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Queue names. Alerts have strict priority and their own worker pool.
const (
	QueueAlerts    = "alerts"
	QueueDefault   = "default"
	QueueMarketing = "marketing"
)

// Conn is one Redis deployment seen by asynq and by go-redis.
type Conn struct {
	// Opt is what asynq clients and servers connect with.
	Opt asynq.RedisConnOpt
	// Redis is a go-redis client on the same deployment.
	Redis redis.UniversalClient
	// Embedded is true for the in-process Redis.
	Embedded bool
	mini     *miniredis.Miniredis
}

// Connect parses url (redis://, rediss://, redis-sentinel://,
// redis-cluster://host:port,host:port) or, when it is empty, starts an
// in-process Redis.
func Connect(rawURL string) (*Conn, error) {
	if rawURL == "" {
		m := miniredis.NewMiniRedis()
		// It listens on loopback, where any local user could reach it: a
		// password only this process knows keeps them out of its queue.
		pw := rand.Text()
		m.RequireAuth(pw)
		if err := m.Start(); err != nil {
			return nil, fmt.Errorf("start in-process redis: %w", err)
		}
		opt := asynq.RedisClientOpt{Addr: m.Addr(), Password: pw}
		return &Conn{Opt: opt, Redis: redis.NewClient(&redis.Options{Addr: m.Addr(), Password: pw}), Embedded: true, mini: m}, nil
	}
	if strings.HasPrefix(rawURL, "redis-cluster://") {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("OUTREACH_REDIS_URL: %w", err)
		}
		addrs := strings.Split(u.Host, ",")
		pw, _ := u.User.Password()
		opt := asynq.RedisClusterClientOpt{Addrs: addrs, Username: u.User.Username(), Password: pw}
		return &Conn{Opt: opt, Redis: redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Username: opt.Username, Password: pw})}, nil
	}
	opt, err := asynq.ParseRedisURI(rawURL)
	if err != nil {
		return nil, fmt.Errorf("OUTREACH_REDIS_URL: %w", err)
	}
	c := &Conn{Opt: opt}
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		c.Redis = redis.NewClient(&redis.Options{Network: o.Network, Addr: o.Addr, Username: o.Username,
			Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig})
	case asynq.RedisFailoverClientOpt:
		// asynq reads the user info as the sentinels' password only; the
		// master's credentials and database come from the query
		// (password, username) and the path, as go-redis reads them.
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("OUTREACH_REDIS_URL: %w", err)
		}
		q := u.Query()
		if q.Get("master") == "" {
			return nil, errors.New("OUTREACH_REDIS_URL: a redis-sentinel:// URL needs ?master=NAME")
		}
		o.Username, o.Password = q.Get("username"), q.Get("password")
		if db := strings.Trim(u.Path, "/"); db != "" {
			if o.DB, err = strconv.Atoi(db); err != nil || o.DB < 0 {
				return nil, fmt.Errorf("OUTREACH_REDIS_URL: database %q is not a number", db)
			}
		}
		c.Opt = o
		c.Redis = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: o.MasterName, SentinelAddrs: o.SentinelAddrs,
			SentinelPassword: o.SentinelPassword, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig})
	default:
		return nil, fmt.Errorf("OUTREACH_REDIS_URL: unsupported form %T", opt)
	}
	return c, nil
}

// Ping reports whether Redis answers.
func (c *Conn) Ping(ctx context.Context) error { return c.Redis.Ping(ctx).Err() }

// Addr is the in-process Redis address, or "".
func (c *Conn) Addr() string {
	if c.mini == nil {
		return ""
	}
	return c.mini.Addr()
}

// Close closes the client and stops the in-process Redis.
func (c *Conn) Close() error {
	err := c.Redis.Close()
	if c.mini != nil {
		c.mini.Close()
	}
	return err
}
