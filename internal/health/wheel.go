package health

import "time"

// wheelTick is the resolution of the Runner's timer wheel: a check runs up
// to one tick after it is due. Coarse on purpose: 10,000 checks a second
// then wake the runner's loop at most 1/wheelTick times a second (about a
// hundred due checks each time at 10k/s) instead of once per check, and
// their SYNs leave in one system call and their answers are read in a few
// (10 ms rather than 5: about half a point of a core less at 10k/s, in
// alternating runs of BenchmarkHealthChecks10k/veth).
const wheelTick = 10 * time.Millisecond

// wheelSlots is the number of slots of the wheel (a power of two): one
// round covers wheelSlots*wheelTick (10.24 s); an entry due later waits in
// its slot for its round, looked at once per round.
const wheelSlots = 1024

// wheel is a hashed timer wheel of jobs by due tick: O(1) to add, remove
// and pop, whatever the number of jobs. It is pure (ticks are passed in)
// and not safe for concurrent use: the Runner guards it with its mutex.
type wheel struct {
	slots [wheelSlots][]*Job
	n     int
	// done is the last tick whose slot was emptied of its due entries:
	// advance starts after it.
	done int64
}

// tickOf is the tick that d (since the runner's epoch) falls in, rounded
// up: an entry never fires early.
func tickOf(d time.Duration) int64 { return int64((d + wheelTick - 1) / wheelTick) }

// add queues j at tick due (at the earliest the next tick not yet
// advanced over).
func (w *wheel) add(j *Job, due int64) {
	if due <= w.done {
		due = w.done + 1
	}
	j.due = due
	s := &w.slots[due&(wheelSlots-1)]
	j.slot, j.pos = int32(due&(wheelSlots-1)), int32(len(*s))
	*s = append(*s, j)
	w.n++
}

// remove takes j out of the wheel; false if it was not in it.
func (w *wheel) remove(j *Job) bool {
	if j.slot < 0 {
		return false
	}
	s := &w.slots[j.slot]
	last := len(*s) - 1
	if int(j.pos) != last {
		moved := (*s)[last]
		(*s)[j.pos] = moved
		moved.pos = j.pos
	}
	(*s)[last] = nil
	*s = (*s)[:last]
	j.slot, j.pos = -1, -1
	w.n--
	return true
}

// advance appends to out, and removes, every job due at or before tick
// now, in no particular order.
func (w *wheel) advance(now int64, out []*Job) []*Job {
	if now <= w.done {
		return out
	}
	from := w.done + 1
	if now-from >= wheelSlots {
		from = now - wheelSlots + 1 // every slot is looked at once anyway
	}
	for t := from; t <= now && w.n > 0; t++ {
		s := &w.slots[t&(wheelSlots-1)]
		for i := 0; i < len(*s); {
			j := (*s)[i]
			if j.due > now {
				i++ // a later round's
				continue
			}
			w.remove(j) // moves the last entry to i
			out = append(out, j)
		}
	}
	w.done = now
	return out
}

// drain appends every job to out and empties the wheel.
func (w *wheel) drain(out []*Job) []*Job {
	for i := range w.slots {
		for _, j := range w.slots[i] {
			j.slot, j.pos = -1, -1
			out = append(out, j)
		}
		clear(w.slots[i])
		w.slots[i] = w.slots[i][:0]
	}
	w.n = 0
	return out
}

// next is the first tick after now whose slot holds an entry (it may be a
// later round's: the caller then wakes for nothing, once a round), or
// false when the wheel is empty. At thousands of checks a second the next
// slot is seldom more than one tick away.
func (w *wheel) next(now int64) (int64, bool) {
	if w.n == 0 {
		return 0, false
	}
	if now < w.done {
		now = w.done
	}
	for t := now + 1; t <= now+wheelSlots; t++ {
		if len(w.slots[t&(wheelSlots-1)]) > 0 {
			return t, true
		}
	}
	return now + wheelSlots, true // unreachable while n > 0
}

// len is the number of jobs in the wheel.
func (w *wheel) len() int { return w.n }
