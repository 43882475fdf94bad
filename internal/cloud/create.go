package cloud

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2"

	"xcatbm/internal/httpretry"
)

// createAttempts bounds the POSTs of Create.
const createAttempts = 3

// Create makes something with create, a POST, whose outcome is unknown when the
// connection breaks before the answer: the service may have made it. Then, and when
// the service answers 409 (it exists already, made by an earlier attempt whose answer
// was lost), find looks for what create would have made: found, it is the result;
// not found after a broken connection, create runs again (at most 3 POSTs in all); not
// found after a 409, the 409 is the answer. find returns nil and no error for "not
// there"; it should look by something the caller chose (an id, a name and owner), so
// that what it finds is this create's work. Both return gophercloud's errors as
// they are (Describe them afterwards).
//
// Create returns the thing, whether this call found rather than made it, and the
// last error (create's, or find's with create's).
func Create[T any](ctx context.Context, create, find func(context.Context) (*T, error)) (v *T, found bool, err error) {
	for range createAttempts {
		v, err = create(ctx)
		if err == nil {
			return v, false, nil
		}
		conflict := gophercloud.ResponseCodeIs(err, 409)
		if !conflict && !httpretry.IsDropped(err) {
			return nil, false, err
		}
		got, ferr := find(ctx)
		if ferr != nil {
			return nil, false, fmt.Errorf("%w (then looking for what it made: %v)", err, ferr)
		}
		if got != nil {
			return got, true, nil
		}
		if conflict {
			return nil, false, err
		}
	}
	return nil, false, err
}
