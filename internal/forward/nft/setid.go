package nft

import (
	"sync/atomic"

	"github.com/google/nftables"
)

// setIDs numbers the sets govs adds. google/nftables numbers a set whose
// ID is 0 from a package variable it does not synchronise, so two
// connections adding sets at once (the rules' transaction and the access
// log's marks) race on it; an ID only has to be unique in its transaction.
var setIDs atomic.Uint32

// numbered gives s an ID of govs's own if it has none.
func numbered(s *nftables.Set) *nftables.Set {
	if s.ID == 0 {
		s.ID = 1<<24 + setIDs.Add(1)
	}
	return s
}
