package activities

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"hash"
	"os"

	"github.com/hpcvm/hpcvm/internal/libvirt"
)

// digestBlock is the unit of the image digest.
const digestBlock = 64 << 10

// imageDigest is SHA-256 over an image cut in 64 KiB blocks, where a block
// of zeros counts as one tag byte and any other block as a tag byte and its
// contents; the total length closes it. Two files with the same content have
// the same digest however their holes are laid out (a hole reads as zeros,
// and a block of written zeros is the same as a hole), and a hole costs no
// hashing: a 20 GiB image with 1 GiB of data is digested at the speed of
// its data. It is the digest recorded on a verified base volume.
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

// compareWithSource reads the volume file and the source side by side and
// reports whether they hold the same bytes, with the image digest of the
// source. Ranges that are holes in both are neither read nor hashed (a hole
// reads as zeros, so a hole in one against zeros in the other is equal);
// a 20 GiB image with 1 GiB of data costs 1 GiB of reading each side. tick
// is called between reads (cancellation).
func compareWithSource(src, vol string, tick func() error) (sum []byte, same bool, err error) {
	sf, err := os.Open(src)
	if err != nil {
		return nil, false, err
	}
	defer sf.Close()
	return compareFileWithVolume(sf, vol, tick)
}

// compareFileWithVolume is compareWithSource of a source already open.
func compareFileWithVolume(sf *os.File, vol string, tick func() error) (sum []byte, same bool, err error) {
	vf, err := os.Open(vol)
	if err != nil {
		return nil, false, err
	}
	defer vf.Close()
	sst, err := sf.Stat()
	if err != nil {
		return nil, false, err
	}
	vst, err := vf.Stat()
	if err != nil {
		return nil, false, err
	}
	size := sst.Size()
	if vst.Size() != size {
		return nil, false, nil
	}
	// dataEnd is where the data at pos ends in f; pos itself if f has a
	// hole at pos.
	dataEnd := func(f *os.File, pos int64) (int64, int64, error) {
		at, err := libvirt.NextData(f, pos, size)
		if err != nil || at > pos {
			return at, pos, err
		}
		end, err := libvirt.NextHole(f, pos, size)
		return at, end, err
	}
	d := newImageDigest()
	const chunk = 4 << 20
	sb, vb := make([]byte, chunk), make([]byte, chunk)
	for pos := int64(0); pos < size; {
		sData, sEnd, err := dataEnd(sf, pos)
		if err != nil {
			return nil, false, err
		}
		vData, vEnd, err := dataEnd(vf, pos)
		if err != nil {
			return nil, false, err
		}
		if next := min(sData, vData); next > pos {
			d.WriteHole(next - pos) // a hole in both
			pos = next
			continue
		}
		end := min(pos+chunk, max(sEnd, vEnd))
		n := int(end - pos)
		if _, err := sf.ReadAt(sb[:n], pos); err != nil {
			return nil, false, err
		}
		if _, err := vf.ReadAt(vb[:n], pos); err != nil {
			return nil, false, err
		}
		if !bytes.Equal(sb[:n], vb[:n]) {
			return nil, false, nil
		}
		_, _ = d.Write(sb[:n])
		pos = end
		if err := tick(); err != nil {
			return nil, false, err
		}
	}
	return d.Sum(), true, nil
}
