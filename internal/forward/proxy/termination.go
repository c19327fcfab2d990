package proxy

import "errors"

// dstError marks a copy's error as the destination's (a write failed), so
// that the termination code blames the right side: a read error is the
// source's.
type dstError struct{ error }

func (e dstError) Unwrap() error { return e.error }

func isDstError(err error) bool {
	var d dstError
	return errors.As(err, &d)
}
