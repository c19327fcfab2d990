package connsync

import (
	"time"

	"github.com/govs-lb/govs/internal/ctevent"
)

// The sync reads conntrack's events with govs's one event reader
// (internal/ctevent), which the kernel dataplane's access log uses too.

// evDestroy is the kind of a flow's end.
const evDestroy = int(ctevent.Destroy)

// ctEvent is a conntrack event of a flow the sync may want.
type ctEvent struct {
	kind   int
	entry  Entry
	dstNAT bool // the director translated it (IPS_DST_NAT)
}

// eventReader is a netlink socket subscribed to conntrack's new, update
// and destroy groups.
type eventReader struct {
	r   *ctevent.Reader
	evs []ctevent.Event
}

func openEvents() (*eventReader, error) {
	// A burst of new flows must not overflow the socket (ENOBUFS loses
	// events); reads time out so that the reader notices when it is to
	// stop.
	r, err := ctevent.Open(0, ctevent.GroupNew|ctevent.GroupUpdate|ctevent.GroupDestroy, 16<<20, 200*time.Millisecond)
	if err != nil {
		return nil, err
	}
	return &eventReader{r: r}, nil
}

func (r *eventReader) close() { r.r.Close() }

// read waits for the next datagram and appends its events to out.
// unix.ENOBUFS means events were lost.
func (r *eventReader) read(out []ctEvent) ([]ctEvent, error) {
	var err error
	r.evs, err = r.r.Read(r.evs[:0])
	for i := range r.evs {
		out = append(out, syncEvent(&r.evs[i]))
	}
	return out, err
}

// syncEvent is what the sync keeps of a conntrack event.
func syncEvent(ev *ctevent.Event) ctEvent {
	return ctEvent{kind: int(ev.Kind), dstNAT: ev.Status&ctevent.StatusDstNAT != 0,
		entry: Entry{Proto: ev.Proto, State: ev.State, Orig: Tuple(ev.Orig), Reply: Tuple(ev.Reply),
			Mark: ev.Mark, Timeout: ev.Timeout}}
}
