package accesslog

import (
	"errors"
	"net"
	"os"
	"strconv"
	"time"
)

// syslogOut sends RFC 5424 messages to a syslog server: one datagram each
// over UDP (RFC 5426), octet-counted frames over TCP (RFC 6587 section
// 3.4.1: "LEN SP MSG"). The message's MSG is the record's JSON line without
// its newline; facility local0, severity info; APP-NAME govs, MSGID access.
type syslogOut struct {
	proto, addr string
	header      []byte // " HOSTNAME govs PID access - ", after the time
	conn        net.Conn
	nextDial    time.Time
	scratch     []byte
}

// syslogPRI is <PRI>VERSION: facility local0 (16) * 8 + severity info (6).
const syslogPRI = "<134>1 "

func newSyslogOut(proto, addr string) *syslogOut {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "-"
	}
	if len(host) > 255 {
		host = host[:255]
	}
	h := []byte(" " + host + " govs " + strconv.Itoa(os.Getpid()) + " access - ")
	return &syslogOut{proto: proto, addr: addr, header: h}
}

func (o *syslogOut) batch() bool { return o.proto == "tcp" }

// message appends one RFC 5424 message to b.
func (o *syslogOut) message(b []byte, r *Record, now time.Time) []byte {
	b = append(b, syslogPRI...)
	b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, o.header...)
	b = r.AppendJSON(b)
	return b[:len(b)-1] // the newline is no part of MSG
}

func (o *syslogOut) frame(b []byte, r *Record, now time.Time) []byte {
	if o.proto == "udp" {
		return o.message(b, r, now)
	}
	o.scratch = o.message(o.scratch[:0], r, now)
	b = strconv.AppendInt(b, int64(len(o.scratch)), 10)
	b = append(b, ' ')
	return append(b, o.scratch...)
}

var errNotConnected = errors.New("syslog server unreachable, retrying")

func (o *syslogOut) flush(b []byte, _ int) error {
	if o.conn == nil {
		now := time.Now()
		if now.Before(o.nextDial) {
			return errNotConnected
		}
		c, err := net.DialTimeout(o.proto, o.addr, 2*time.Second)
		if err != nil {
			o.nextDial = now.Add(time.Second)
			return err
		}
		o.conn = c
	}
	// A stuck server must not stop the queue for long: past the deadline
	// the batch is dropped, and the connection made again.
	o.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := o.conn.Write(b); err != nil {
		if o.proto == "tcp" {
			o.conn.Close()
			o.conn = nil
			o.nextDial = time.Now().Add(time.Second)
		}
		return err
	}
	return nil
}

func (o *syslogOut) reopen() error {
	if o.conn != nil {
		o.conn.Close()
		o.conn = nil
	}
	o.nextDial = time.Time{}
	return nil
}

func (o *syslogOut) close() error { return o.reopen() }
