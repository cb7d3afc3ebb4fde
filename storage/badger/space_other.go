//go:build !unix

package badger

import "errors"

// statFree is not implemented here: the free-space guard is off.
func statFree(string) (uint64, error) {
	return 0, errors.ErrUnsupported
}
