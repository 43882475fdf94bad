// Package logging builds the zerolog logger every xcatbm program uses: JSON lines by
// default (one event per line, easy to grep and ship), human-readable when writing to
// a terminal or when asked.
//
// Field names are shared across packages so that an operator can grep one name
// everywhere: node, instance, job, step, request_id, method, command.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Field names used in log lines across xcatbm.
const (
	FieldNode      = "node"
	FieldInstance  = "instance"
	FieldJob       = "job"
	FieldStep      = "step"
	FieldRequestID = "request_id"
	FieldMethod    = "method"
	FieldCommand   = "command"
	FieldHost      = "compute_host"
)

// Options select the log format and level.
type Options struct {
	// Format is "json", "console" or "auto" (console on a terminal, else JSON).
	Format string
	// Level is a zerolog level name: trace, debug, info, warn, error.
	Level string
}

// New returns a logger writing to w as opts say, stamped with the program name. It
// returns an error naming a bad format or level.
func New(w io.Writer, program string, opts Options) (zerolog.Logger, error) {
	level := zerolog.InfoLevel
	if opts.Level != "" {
		l, err := zerolog.ParseLevel(strings.ToLower(opts.Level))
		if err != nil {
			return zerolog.Nop(), fmt.Errorf("log level %q: want trace, debug, info, warn or error", opts.Level)
		}
		level = l
	}
	switch opts.Format {
	case "", "auto":
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
		}
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: true}
	case "json":
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: want json, console or auto", opts.Format)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(level).With().Timestamp().Str("program", program).Logger(), nil
}
