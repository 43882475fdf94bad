package messages

import (
	"errors"
	"fmt"
)

// FieldError says which field of a message was wrong and how. Field is a dotted path
// from the message root, e.g. "oslo.message", "args", "args.instance.uuid". Every
// decoding error of this package is, or wraps, a *FieldError; match it with errors.As.
type FieldError struct {
	Field   string // dotted path of the offending field
	Problem string // what is wrong with it
	Err     error  // underlying cause, if any
}

// Error implements error.
func (e *FieldError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("field %s: %s: %v", e.Field, e.Problem, e.Err)
	}
	return fmt.Sprintf("field %s: %s", e.Field, e.Problem)
}

// Unwrap returns the underlying cause.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, problem string, err error) *FieldError {
	return &FieldError{Field: field, Problem: problem, Err: err}
}

// within re-roots an error under prefix: a *FieldError gets prefix prepended to its
// Field, any other error becomes a *FieldError for prefix.
func within(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		field := prefix
		if fe.Field != "" {
			field = prefix + "." + fe.Field
		}
		return &FieldError{Field: field, Problem: fe.Problem, Err: fe.Err}
	}
	return &FieldError{Field: prefix, Problem: "invalid", Err: err}
}
