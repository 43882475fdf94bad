package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lib/pq"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/internal/config"
)

// exitConfig is the exit code of a permanent start-up error (sysexits' EX_CONFIG):
// the unit file's RestartPreventExitStatus keeps systemd from restarting a worker
// that would fail the same way again.
const exitConfig = 78

// permanentError is a start-up error retrying will not cure; its message says what
// to fix.
type permanentError struct {
	// fix says what the operator must change.
	fix string
	err error
}

func (e *permanentError) Error() string { return e.fix + ": " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// dbPermanent classifies a database error by SQLSTATE: a refused login, a missing
// role or a missing database is permanent.
func dbPermanent(err error, dbURL string) error {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return nil
	}
	u, _ := url.Parse(dbURL)
	user, db := "", ""
	if u != nil {
		user, db = u.User.Username(), strings.TrimPrefix(u.Path, "/")
	}
	var fix string
	switch pe.Code {
	case "28P01", "28000": // invalid_password, invalid_authorization_specification
		fix = fmt.Sprintf("PostgreSQL refused the login of role %q: set the right user and password in --database-url (%s), or create the role (createuser %s) and allow it in pg_hba.conf",
			user, config.EnvName("database-url"), user)
	case "3D000": // invalid_catalog_name
		fix = fmt.Sprintf("PostgreSQL has no database %q: create it (createdb -O %s %s) or name another in --database-url (%s)",
			db, user, db, config.EnvName("database-url"))
	case "42501": // insufficient_privilege
		fix = fmt.Sprintf("role %q may not use database %q: grant it (GRANT CONNECT, CREATE ON DATABASE %s TO %s)", user, db, db, user)
	default:
		return nil
	}
	return &permanentError{fix: fix, err: err}
}

// waitDB waits for the database to answer: connection errors are retried with a
// logged delay, refusals that no retry cures end the wait with a *permanentError.
func waitDB(ctx context.Context, db *sql.DB, dbURL string, log zerolog.Logger) error {
	b := broker.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	for i := 0; ; i++ {
		err := db.PingContext(ctx)
		if err == nil {
			return nil
		}
		if perr := dbPermanent(err, dbURL); perr != nil {
			return perr
		}
		if ctx.Err() != nil {
			return fmt.Errorf("database: %w", err)
		}
		d := b.Delay(i)
		log.Warn().Err(err).Str("database", config.RedactURL(dbURL)).Stringer("retry_in", d).Msg("database not answering")
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}

// brokerPermanent classifies a broker dial error by AMQP reply code: refused
// credentials, a vhost the user may not use and a missing vhost are permanent.
func brokerPermanent(err error, amqpURL string) error {
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return nil
	}
	u, _ := url.Parse(amqpURL)
	user, vhost := "", "/"
	if u != nil {
		user = u.User.Username()
		if p := strings.TrimPrefix(u.Path, "/"); p != "" {
			vhost, _ = url.PathUnescape(p)
		}
	}
	var fix string
	switch {
	case ae.Code == amqp.NotAllowed, errors.Is(err, amqp.ErrVhost):
		// RabbitMQ answers 530 both for a vhost that does not exist and for one the
		// user has no permissions on.
		fix = fmt.Sprintf("RabbitMQ refuses vhost %q to user %q (no such vhost, or no permissions on it): set --transport-url (%s) to nova's vhost, or create and grant it (rabbitmqctl add_vhost %s; rabbitmqctl set_permissions -p %s %s '.*' '.*' '.*')",
			vhost, user, config.EnvName("transport-url"), vhost, vhost, user)
	case ae.Code == amqp.AccessRefused:
		fix = fmt.Sprintf("RabbitMQ refused user %q: set the user and password of --transport-url (%s) to those of nova's [DEFAULT] transport_url",
			user, config.EnvName("transport-url"))
	default:
		return nil
	}
	return &permanentError{fix: fix, err: err}
}

// waitBroker dials the broker until one of urls lets the worker in, so a wrong
// password or vhost stops the start-up here, before xcatd is tried. Unreachable
// brokers are retried with a logged delay.
func waitBroker(ctx context.Context, urls []string, log zerolog.Logger) error {
	b := broker.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	for i := 0; ; i++ {
		var last error
		for _, u := range urls {
			conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second), Properties: amqp.Table{"connection_name": "xcatbm-worker start-up check"}})
			if err == nil {
				_ = conn.Close()
				return nil
			}
			if perr := brokerPermanent(err, u); perr != nil {
				return perr
			}
			last = fmt.Errorf("%s: %w", config.RedactURL(u), err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("broker: %w", last)
		}
		d := b.Delay(i)
		log.Warn().Err(last).Stringer("retry_in", d).Msg("broker not answering")
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}
