package activities

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"os"

	"github.com/hpcvm/hpcvm/libvirt"
)

// digestBlock is the unit of the image digest.
const digestBlock = 64 << 10

// imageDigest is SHA-256 over an image cut in 64 KiB blocks, where a block
// of zeros counts as one tag byte and any other block as a tag byte and its
// contents; the total length closes it. Two files with the same content have
// the same digest however their holes are laid out (a hole reads as zeros,
// and a block of written zeros is the same as a hole), and a hole costs no
// hashing: a 20 GiB image with 1 GiB of data is digested at the speed of
// its data. It is the digest the upload streams and the volume is checked
// against.
type imageDigest struct {
	h       hash.Hash
	pending []byte // the start of a block not yet complete
	total   int64
}

var zeroBlock = make([]byte, digestBlock)

func newImageDigest() *imageDigest {
	return &imageDigest{h: sha256.New(), pending: make([]byte, 0, digestBlock)}
}

func (d *imageDigest) block(b []byte) {
	if bytes.Equal(b, zeroBlock[:len(b)]) {
		d.h.Write([]byte{0})
		return
	}
	d.h.Write([]byte{1})
	d.h.Write(b)
}

// Write digests data.
func (d *imageDigest) Write(p []byte) (int, error) {
	n := len(p)
	d.total += int64(n)
	if len(d.pending) > 0 {
		k := min(len(p), digestBlock-len(d.pending))
		d.pending = append(d.pending, p[:k]...)
		p = p[k:]
		if len(d.pending) == digestBlock {
			d.block(d.pending)
			d.pending = d.pending[:0]
		}
	}
	for len(p) >= digestBlock {
		d.block(p[:digestBlock])
		p = p[digestBlock:]
	}
	d.pending = append(d.pending, p...)
	return n, nil
}

// WriteHole digests n zeros without looking at them.
func (d *imageDigest) WriteHole(n int64) {
	if len(d.pending) > 0 {
		k := min(n, int64(digestBlock-len(d.pending)))
		_, _ = d.Write(zeroBlock[:k])
		n -= k
	}
	for ; n >= digestBlock; n -= digestBlock {
		d.h.Write([]byte{0})
		d.total += digestBlock
	}
	if n > 0 {
		_, _ = d.Write(zeroBlock[:n])
	}
}

// Sum is the digest of everything written so far, in hex-able bytes.
func (d *imageDigest) Sum() []byte {
	h := d.h
	if m, ok := h.(encoding.BinaryMarshaler); ok {
		// Sum must not disturb the running state: finish on a copy.
		state, _ := m.MarshalBinary()
		h = sha256.New()
		_ = h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state)
	}
	if len(d.pending) > 0 {
		if bytes.Equal(d.pending, zeroBlock[:len(d.pending)]) {
			h.Write([]byte{0})
		} else {
			h.Write([]byte{1})
			h.Write(d.pending)
		}
	}
	var size [8]byte
	binary.BigEndian.PutUint64(size[:], uint64(d.total))
	h.Write(size[:])
	return h.Sum(nil)
}

// MarshalBinary saves the running state, so a resumed upload digests on.
func (d *imageDigest) MarshalBinary() ([]byte, error) {
	state, err := d.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint64(nil, uint64(d.total))
	out = binary.BigEndian.AppendUint32(out, uint32(len(state)))
	out = append(out, state...)
	return append(out, d.pending...), nil
}

// UnmarshalBinary restores a state MarshalBinary saved.
func (d *imageDigest) UnmarshalBinary(b []byte) error {
	if len(b) < 12 {
		return errors.New("image digest state too short")
	}
	total := int64(binary.BigEndian.Uint64(b))
	n := int(binary.BigEndian.Uint32(b[8:]))
	if total < 0 || len(b) < 12+n || int64(len(b)-12-n) != total%digestBlock {
		return errors.New("image digest state damaged")
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(b[12 : 12+n]); err != nil {
		return err
	}
	d.h, d.total = h, total
	d.pending = append(make([]byte, 0, digestBlock), b[12+n:]...)
	return nil
}

// digestFile digests a local file, skipping its holes; tick is called
// between reads (heartbeats, cancellation).
func digestFile(path string, tick func() error) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	d := newImageDigest()
	buf := make([]byte, 4<<20)
	for pos := int64(0); pos < size; {
		dataAt, err := libvirt.NextData(f, pos, size)
		if err != nil {
			return nil, err
		}
		if dataAt > pos {
			d.WriteHole(dataAt - pos)
			pos = dataAt
			continue
		}
		holeAt, err := libvirt.NextHole(f, pos, size)
		if err != nil {
			return nil, err
		}
		if _, err := f.Seek(pos, io.SeekStart); err != nil {
			return nil, err
		}
		n, err := io.ReadFull(f, buf[:min(int64(len(buf)), holeAt-pos)])
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		if n == 0 {
			return nil, io.ErrUnexpectedEOF
		}
		_, _ = d.Write(buf[:n])
		pos += int64(n)
		if err := tick(); err != nil {
			return nil, err
		}
	}
	return d.Sum(), nil
}
