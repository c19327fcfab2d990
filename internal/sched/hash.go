package sched

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// fold is IPVS's address fold for its hash tables: an IPv4 address as a
// host-order integer, an IPv6 address as the xor of its four 32-bit words.
// An IPv4-mapped IPv6 address folds as the IPv4 address it carries.
func fold(a netip.Addr) uint32 {
	switch {
	case !a.IsValid():
		return 0
	case a.Is4() || a.Is4In6():
		b := a.As4()
		return binary.BigEndian.Uint32(b[:])
	}
	b := a.As16()
	return binary.BigEndian.Uint32(b[0:]) ^ binary.BigEndian.Uint32(b[4:]) ^
		binary.BigEndian.Uint32(b[8:]) ^ binary.BigEndian.Uint32(b[12:])
}

// goldenHash is the multiplier of IPVS's sh, dh and lblc hashes.
const goldenHash = 2654435761

// hsiphash32 is the kernel's hsiphash() of one 32-bit value on 64-bit
// machines, where it is SipHash-1-3 keyed by two 64-bit words and truncated
// to 32 bits; mh keys its permutations and lookups with it, so the same
// servers give the same table as IPVS for the same table size.
func hsiphash32(v uint32, k0, k1 uint64) uint32 {
	v0 := uint64(0x736f6d6570736575) ^ k0
	v1 := uint64(0x646f72616e646f6d) ^ k1
	v2 := uint64(0x6c7967656e657261) ^ k0
	v3 := uint64(0x7465646279746573) ^ k1
	b := uint64(4)<<56 | uint64(v)
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	v3 ^= b
	round()
	v0 ^= b
	v2 ^= 0xff
	round()
	round()
	round()
	return uint32(v0 ^ v1 ^ v2 ^ v3)
}
