package accesslog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxLine is the longest line read; longer ones are bad lines.
const MaxLine = 256 << 10

// Source is one log being read: a file, a gzip file (recognised by its
// magic bytes, whatever its name) or stdin.
type Source struct {
	Name   string
	r      *bufio.Reader
	closer []io.Closer
	line   int
	e      Entry // the current entry while merging
}

// Open opens a log; "-" is stdin.
func Open(name string, stdin io.Reader) (*Source, error) {
	var r io.Reader
	s := &Source{Name: name}
	if name == "-" {
		r, s.Name = stdin, "(stdin)"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		r = f
		s.closer = append(s.closer, f)
	}
	return s, s.init(r)
}

// NewSource reads a log from r.
func NewSource(name string, r io.Reader) (*Source, error) {
	s := &Source{Name: name}
	return s, s.init(r)
}

func (s *Source) init(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			s.Close()
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		s.closer = append(s.closer, zr)
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	s.r = br
	return nil
}

// Close closes the source's files.
func (s *Source) Close() error {
	var errs []error
	for i := len(s.closer) - 1; i >= 0; i-- {
		errs = append(errs, s.closer[i].Close())
	}
	s.closer = nil
	return errors.Join(errs...)
}

var errLong = fmt.Errorf("line longer than %d KiB", MaxLine>>10)

// next reads the next line. It returns the line (valid until the next
// call), or io.EOF, or an error of the underlying reader; a line too long
// is returned as errLong with the rest of it skipped.
func (s *Source) next() ([]byte, error) {
	for {
		line, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull || (err == nil && len(line) > MaxLine) {
			s.line++
			for err == bufio.ErrBufferFull {
				_, err = s.r.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, err
			}
			return nil, errLong
		}
		if len(line) == 0 && err != nil {
			return nil, err
		}
		s.line++
		if err != nil && err != io.EOF {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if err == io.EOF {
				return nil, io.EOF
			}
			continue // blank lines are not lines
		}
		return line, nil
	}
}

// advance reads the next good entry into s.e, counting bad lines on the
// way. ok is false at the end.
func (s *Source) advance(a *Analyser) (bool, error) {
	for {
		line, err := s.next()
		switch {
		case err == io.EOF:
			return false, nil
		case err == errLong:
			a.BadLine(s.Name, s.line, err)
			continue
		case err != nil:
			// A truncated or corrupt gzip file (one being rotated, say):
			// what was read counts, the rest of this source is skipped
			// and said so, the other sources go on.
			a.BadLine(s.Name, s.line+1, fmt.Errorf("read error, rest of the file skipped: %w", err))
			return false, nil
		}
		if err := Parse(line, &s.e); err != nil {
			a.BadLine(s.Name, s.line, err)
			continue
		}
		return true, nil
	}
}

// Run reads the sources into a: one after the other in the order of
// their lines when there is one, merged by time (a k-way merge: each
// source is read in its order, the earliest line of all goes first) when
// there are several. Rotated logs, or the logs of several directors, thus
// come out as one stream in time order, which the time and gaps reports
// need. Memory is one buffered line per source.
func Run(a *Analyser, srcs ...*Source) error {
	if len(srcs) == 1 {
		s := srcs[0]
		for {
			ok, err := s.advance(a)
			if err != nil || !ok {
				return err
			}
			a.Add(&s.e)
		}
	}
	h := make(mergeHeap, 0, len(srcs))
	for _, s := range srcs {
		ok, err := s.advance(a)
		if err != nil {
			return err
		}
		if ok {
			h = append(h, s)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		s := h[0]
		a.Add(&s.e)
		ok, err := s.advance(a)
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return nil
}

type mergeHeap []*Source

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return h[i].e.Time < h[j].e.Time }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.(*Source)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
