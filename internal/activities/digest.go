package activities

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/zeebo/blake3"
)

// digestBlock is the unit of the image digest.
const digestBlock = 64 << 10

// imageDigest is the image digest: BLAKE3 over an image cut in 64 KiB
// blocks, in three parts. One hashes the blocks that are not all zeros, in
// order; one hashes the layout, a bit per block (1: the block is in the
// first); the last hashes the two with the image's length. Together they
// say the whole image, and two files with the same content have the same
// digest however their zeros are laid out (a hole reads as zeros, and a
// block of written zeros is the same as a hole). A hole costs no hashing:
// a 20 GiB image with 1 GiB of data is digested at the speed of its data.
// It is the digest recorded on a verified base volume.
//
// BLAKE3 because the digest is taken while the image streams, on the cores
// libvirtd's side of the stream needs too: 1 GiB of random data took 0.82 s
// of a core with SHA-256 (SHA-NI) and about 0.4 s with BLAKE3 (AVX2) fed
// whole blocks. (Records made with the earlier SHA-256 digest are still
// recognised: see readBaseRecord.)
type imageDigest struct {
	data    *blake3.Hasher // the blocks that are not zeros
	layout  *blake3.Hasher // a bit per block, 8 to a byte, first block in the high bit
	bits    byte           // the layout byte being filled
	nbits   int            // how many bits it holds
	pending []byte         // the start of a block not yet complete
	total   int64
}

var zeroBlock = make([]byte, digestBlock)

func newImageDigest() *imageDigest {
	return &imageDigest{data: blake3.New(), layout: blake3.New(), pending: make([]byte, 0, digestBlock)}
}

// mark adds n bits of value bit to the layout.
func (d *imageDigest) mark(bit byte, n int64) {
	for ; n > 0 && (d.nbits > 0 || bit == 1 || n < 8); n-- {
		d.bits |= bit << (7 - d.nbits)
		if d.nbits++; d.nbits == 8 {
			_, _ = d.layout.Write([]byte{d.bits})
			d.bits, d.nbits = 0, 0
		}
	}
	// Whole bytes of zero bits (a hole) go at once.
	for n >= 8 {
		k := min(n/8, int64(len(zeroBlock)))
		_, _ = d.layout.Write(zeroBlock[:k])
		n -= k * 8
	}
	for ; n > 0; n-- {
		if d.nbits++; d.nbits == 8 {
			_, _ = d.layout.Write([]byte{d.bits})
			d.bits, d.nbits = 0, 0
		}
	}
}

func (d *imageDigest) block(b []byte) {
	if bytes.Equal(b, zeroBlock[:len(b)]) {
		d.mark(0, 1)
		return
	}
	d.mark(1, 1)
	_, _ = d.data.Write(b)
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
	d.mark(0, n/digestBlock)
	d.total += n / digestBlock * digestBlock
	if n%digestBlock > 0 {
		_, _ = d.Write(zeroBlock[:n%digestBlock])
	}
}

// Sum is the digest of everything written so far, in hex-able bytes. It
// does not disturb the running digest.
func (d *imageDigest) Sum() []byte {
	e := imageDigest{data: d.data.Clone(), layout: d.layout.Clone(), bits: d.bits, nbits: d.nbits}
	if len(d.pending) > 0 {
		e.block(d.pending)
	}
	if e.nbits > 0 {
		_, _ = e.layout.Write([]byte{e.bits}) // the length says how many bits count
	}
	h := blake3.New()
	_, _ = h.Write([]byte(imageDigestKind))
	_, _ = h.Write(e.data.Sum(nil))
	_, _ = h.Write(e.layout.Sum(nil))
	var size [8]byte
	binary.BigEndian.PutUint64(size[:], uint64(d.total))
	_, _ = h.Write(size[:])
	return h.Sum(nil)
}

// proofChunk is how much of a file the digest and the comparison read at
// a time: pieces of 1 MiB stay in the CPU's cache between the read and the
// comparison (2 GiB read back and compared: 0.68 s of CPU in 1 MiB pieces,
// 0.72 s in 4 MiB, 1.5 s in 16 MiB).
const proofChunk = 1 << 20

// extent is a range of a file that holds data; what lies between extents
// is a hole.
type extent struct{ off, end int64 }

// dataExtents maps where f holds data below size (SEEK_DATA, SEEK_HOLE).
// It moves f's offset. With the map, the digest and the comparison read f
// with ReadAt alone, which leaves the offset alone: they can run while the
// upload reads f by its offset.
func dataExtents(f *os.File, size int64) ([]extent, error) {
	var exts []extent
	for pos := int64(0); pos < size; {
		at, err := libvirt.NextData(f, pos, size)
		if err != nil || at >= size {
			return exts, err
		}
		end, err := libvirt.NextHole(f, at, size)
		if err != nil {
			return nil, err
		}
		exts = append(exts, extent{at, end})
		pos = end
	}
	return exts, nil
}

// digestExtents is the image digest of f, size bytes with data only in
// exts: holes are digested without reading them.
func digestExtents(f *os.File, size int64, exts []extent, tick func() error) ([]byte, error) {
	d := newImageDigest()
	if err := digestRange(d, f, exts, 0, size, tick); err != nil {
		return nil, err
	}
	return d.Sum(), nil
}

// digestRange digests f from from to to into d (which holds the digest of
// what is before from), f's data lying in exts.
func digestRange(d *imageDigest, f *os.File, exts []extent, from, to int64, tick func() error) error {
	var buf []byte
	pos := from
	for _, e := range exts {
		if e.end <= pos {
			continue
		}
		if e.off >= to {
			break
		}
		if e.off > pos {
			d.WriteHole(e.off - pos)
			pos = e.off
		}
		if buf == nil {
			buf = make([]byte, proofChunk)
		}
		for end := min(e.end, to); pos < end; {
			n := min(int64(len(buf)), end-pos)
			if _, err := f.ReadAt(buf[:n], pos); err != nil {
				return err
			}
			_, _ = d.Write(buf[:n])
			pos += n
			if err := tick(); err != nil {
				return err
			}
		}
	}
	if to > pos {
		d.WriteHole(to - pos)
	}
	return nil
}

// volumeCheck compares a volume file with its source, in offset order, as
// far as asked each time (upTo): an upload can have what libvirtd has
// written compared while the rest is on its way. Ranges that are holes in
// both are neither read nor compared (a hole reads as zeros, so a hole in
// one against zeros in the other is equal): a 20 GiB image with 1 GiB of
// data costs 1 GiB of reading each side. The source is read with ReadAt
// only (see dataExtents); the volume file is the check's own.
type volumeCheck struct {
	src  *os.File
	exts []extent // the source's data
	vol  *os.File
	size int64
	pos  int64 // below it, the volume holds the source's bytes
	next int   // the first of exts that ends after pos
	sb   []byte
	vb   []byte
}

func newVolumeCheck(src *os.File, exts []extent, vol *os.File, size int64) *volumeCheck {
	return &volumeCheck{src: src, exts: exts, vol: vol, size: size, sb: make([]byte, proofChunk), vb: make([]byte, proofChunk)}
}

// upTo compares the files from where the last call stopped up to end: false
// at the first difference (the volume reads differently, or ends before
// end). tick is called between reads (cancellation).
func (c *volumeCheck) upTo(end int64, tick func() error) (bool, error) {
	end = min(end, c.size)
	for c.pos < end {
		for c.next < len(c.exts) && c.exts[c.next].end <= c.pos {
			c.next++
		}
		// The source's data at pos ends at sEnd (pos itself in a hole,
		// which ends at sData); the same for the volume.
		sData, sEnd := c.size, c.pos
		if c.next < len(c.exts) {
			if e := c.exts[c.next]; e.off <= c.pos {
				sData, sEnd = c.pos, e.end
			} else {
				sData = e.off
			}
		}
		vData, err := libvirt.NextData(c.vol, c.pos, c.size)
		if err != nil {
			return false, err
		}
		vEnd := c.pos
		if vData == c.pos {
			if vEnd, err = libvirt.NextHole(c.vol, c.pos, c.size); err != nil {
				return false, err
			}
		}
		if next := min(sData, vData, end); next > c.pos {
			c.pos = next // a hole in both
			continue
		}
		stop := min(c.pos+proofChunk, max(sEnd, vEnd), end)
		n := stop - c.pos
		if _, err := c.src.ReadAt(c.sb[:n], c.pos); err != nil {
			return false, err
		}
		if _, err := c.vol.ReadAt(c.vb[:n], c.pos); errors.Is(err, io.EOF) {
			return false, nil // the volume is shorter
		} else if err != nil {
			return false, err
		}
		if !bytes.Equal(c.sb[:n], c.vb[:n]) {
			return false, nil
		}
		c.pos = stop
		if err := tick(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// errProofStopped ends a digest or a comparison whose outcome no longer
// matters.
var errProofStopped = errors.New("proof stopped")

// compareWithSource reads the volume file and the source side by side and
// reports whether they hold the same bytes, with the image digest of the
// source. Ranges that are holes in both are neither read nor hashed. tick
// is called between reads (cancellation).
func compareWithSource(src, vol string, tick func() error) (sum []byte, same bool, err error) {
	sf, err := os.Open(src)
	if err != nil {
		return nil, false, err
	}
	defer sf.Close()
	return compareFileWithVolume(sf, vol, tick)
}

// compareFileWithVolume is compareWithSource of a source already open. The
// digest runs beside the comparison, on the other core.
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
	exts, err := dataExtents(sf, size)
	if err != nil {
		return nil, false, err
	}
	var stop atomic.Bool
	var digestErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sum, digestErr = digestExtents(sf, size, exts, func() error {
			if stop.Load() {
				return errProofStopped
			}
			return tick()
		})
	}()
	same, err = newVolumeCheck(sf, exts, vf, size).upTo(size, tick)
	if err != nil || !same {
		stop.Store(true)
	}
	wg.Wait()
	switch {
	case err != nil:
		return nil, false, err
	case !same:
		return nil, false, nil
	case digestErr != nil:
		return nil, false, digestErr
	}
	return sum, true, nil
}

// uploadProof proves an upload while it runs. The image digest is computed
// from what the upload reads (read, from libvirt.UploadOptions.Read), and
// the volume is compared with the source up to each offset libvirtd has
// certainly written (written, from libvirt.UploadOptions.Written), while
// the rest of the image is on its way: when the stream ends, only its last
// segment is left to compare. The two take what libvirtd's side of the
// stream leaves of a host's cores (for 1 GiB of data, about 0.5 s of a
// core for the digest and 0.4 s for the comparison).
//
// Nothing is taken on trust from the stream: every byte of the volume is
// read back after libvirtd said it was written, and compared with the
// source's (which must not change meanwhile: the caller checks).
type uploadProof struct {
	check  *volumeCheck
	tick   func() error
	digest *imageDigest // of the source below digested
	// digested is where the next piece read must start; a piece that
	// does not (at gap) is a fault of the upload, and the proof fails.
	digested int64
	gap      int64 // -1: none

	mark    atomic.Int64  // libvirtd has written the volume below it
	notify  chan struct{} // a new mark (at most one waits)
	closed  chan struct{} // no marks will follow
	close   func()        // closes closed, once
	stop    atomic.Bool   // the outcome no longer matters
	differs atomic.Bool   // the volume was found different

	wg       sync.WaitGroup
	same     bool
	checkErr error
}

// errVolumeDiffers stops an upload whose volume was already found not to
// hold the source's bytes.
var errVolumeDiffers = errors.New("the volume does not hold what was uploaded")

// startProof starts the comparison of src with vol, which waits for
// written, and digests src below from (an upload that resumes there reads
// only the rest, and hands it to read). exts maps src's data (dataExtents);
// tick is called between reads (cancellation).
func startProof(src *os.File, exts []extent, vol *os.File, size, from int64, tick func() error) (*uploadProof, error) {
	p := &uploadProof{check: newVolumeCheck(src, exts, vol, size), digest: newImageDigest(), gap: -1, notify: make(chan struct{}, 1), closed: make(chan struct{})}
	p.close = sync.OnceFunc(func() { close(p.closed) })
	p.tick = func() error {
		if p.stop.Load() {
			return errProofStopped
		}
		return tick()
	}
	if err := digestRange(p.digest, src, exts, 0, from, tick); err != nil {
		return nil, err
	}
	p.digested = from
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.same = true
		for last := false; !last; {
			select {
			case <-p.notify:
			case <-p.closed:
				last = true
			}
			p.same, p.checkErr = p.check.upTo(p.mark.Load(), p.tick)
			if p.checkErr != nil || !p.same {
				p.differs.Store(p.checkErr == nil)
				return
			}
		}
	}()
	return p, nil
}

// read digests a piece the upload read (see libvirt.UploadOptions.Read).
func (p *uploadProof) read(off int64, data []byte, n int64) {
	if off != p.digested || p.gap >= 0 {
		p.gap = max(p.gap, off)
		return
	}
	if data == nil {
		p.digest.WriteHole(n)
	} else {
		_, _ = p.digest.Write(data)
	}
	p.digested += n
}

// written says libvirtd has written the volume below end; an error says
// the volume was already found different, and the upload may stop.
func (p *uploadProof) written(end int64) error {
	if p.differs.Load() {
		return errVolumeDiffers
	}
	p.mark.Store(end)
	select {
	case p.notify <- struct{}{}:
	default: // one is waiting already; it reads the newest mark
	}
	return nil
}

// finish waits for the comparison, once the upload has returned (and so
// read everything), and reports as compareFileWithVolume does.
func (p *uploadProof) finish() (sum []byte, same bool, err error) {
	p.close()
	p.wg.Wait()
	if p.checkErr == nil && p.same {
		// Whatever the marks said, nothing is proven short of the end.
		p.same, p.checkErr = p.check.upTo(p.check.size, p.tick)
	}
	switch {
	case p.checkErr != nil:
		return nil, false, p.checkErr
	case !p.same:
		return nil, false, nil
	case p.gap >= 0:
		return nil, false, fmt.Errorf("the upload read the image at byte %d where the digest had got to %d", p.gap, p.digested)
	case p.digested != p.check.size:
		return nil, false, fmt.Errorf("the upload read the image up to byte %d of %d", p.digested, p.check.size)
	}
	st, err := p.check.vol.Stat()
	if err != nil {
		return nil, false, err
	}
	if st.Size() != p.check.size {
		return nil, false, nil
	}
	return p.digest.Sum(), true, nil
}

// abandon stops the comparison, if still running, and waits for it: the
// upload failed. After finish, it does nothing.
func (p *uploadProof) abandon() {
	p.stop.Store(true)
	p.close()
	p.wg.Wait()
}
