// Package qcow2 reads what a disk image's header says about files other
// than itself. A qcow2 header may name a backing file and an external data
// file anywhere on the host; QEMU (as root, labelled by libvirt) opens
// them. hpcvm uploads only self-contained images, so it reads the header
// itself instead of trusting libvirt's probe.
//
// The layout is QEMU's docs/interop/qcow2.txt, versions 2 and 3.
package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic is the first four bytes of every qcow2 image.
var Magic = [4]byte{'Q', 'F', 'I', 0xfb}

// Header extension types (a big-endian uint32 each).
const (
	extEnd           = 0x00000000
	extBackingFormat = 0xe2792aca
	extDataFile      = 0x44415441 // "DATA": the external data file's name
)

// incompatDataFile is the incompatible feature bit of an image whose guest
// data lives in an external data file.
const incompatDataFile = 1 << 2

// maxNameLen bounds the names read: QEMU refuses a backing file name longer
// than 1023 bytes; a data file name is an extension of at most a cluster.
const maxNameLen = 4096

// Image is what the header of an image says.
type Image struct {
	Format      string // "qcow2" or "raw" (no qcow2 magic)
	Version     uint32 // qcow2 version (2 or 3); 0 for raw
	VirtualSize uint64 // what the guest sees
	// BackingFile is the backing file the header names ("" for none),
	// BackingFormat its format if the header says.
	BackingFile, BackingFormat string
	// DataFile says the guest data lives in an external data file;
	// DataFileName is its name if the header carries one.
	DataFile     bool
	DataFileName string
	// CryptMethod is the header's crypt_method: 0 for none, 1 for the old
	// AES-CBC encryption, 2 for LUKS. An encrypted image needs a secret
	// that hpcvm never hands to libvirt, so QEMU could not open it.
	CryptMethod uint32
}

// Encryption methods a qcow2 header names (crypt_method).
const (
	cryptNone = 0
	cryptAES  = 1
	cryptLUKS = 2
)

// Read reads the header of the image r (size bytes long). An image without
// the qcow2 magic is raw. A qcow2 header that is truncated, of a version
// other than 2 or 3, or whose fields point outside the file is an error:
// such an image cannot be judged, so it is not used.
func Read(r io.ReaderAt, size int64) (Image, error) {
	var magic [4]byte
	if n, err := r.ReadAt(magic[:], 0); n < 4 {
		if err != nil && !errors.Is(err, io.EOF) {
			return Image{}, err
		}
		return Image{Format: "raw", VirtualSize: uint64(max(size, 0))}, nil
	}
	if magic != Magic {
		return Image{Format: "raw", VirtualSize: uint64(size)}, nil
	}
	// 104 bytes: the version 3 header up to header_length.
	hdr := make([]byte, 104)
	if n, err := r.ReadAt(hdr, 0); n < 72 {
		if err != nil && !errors.Is(err, io.EOF) {
			return Image{}, err
		}
		return Image{}, fmt.Errorf("truncated qcow2 header (%d bytes); the image is damaged", n)
	} else if n < len(hdr) {
		hdr = hdr[:n]
	}
	be := binary.BigEndian
	img := Image{Format: "qcow2", Version: be.Uint32(hdr[4:8]), VirtualSize: be.Uint64(hdr[24:32])}
	backingOffset, backingSize := be.Uint64(hdr[8:16]), be.Uint32(hdr[16:20])
	clusterBits := be.Uint32(hdr[20:24])
	img.CryptMethod = be.Uint32(hdr[32:36])
	if clusterBits < 9 || clusterBits > 21 {
		return img, fmt.Errorf("qcow2 header has cluster_bits %d (QEMU accepts 9 to 21); the image is damaged", clusterBits)
	}
	clusterSize := int64(1) << clusterBits
	extStart := int64(72)
	switch img.Version {
	case 2:
	case 3:
		if len(hdr) < 104 {
			return img, fmt.Errorf("truncated qcow2 version 3 header (%d bytes); the image is damaged", len(hdr))
		}
		if be.Uint64(hdr[72:80])&incompatDataFile != 0 {
			img.DataFile = true
		}
		extStart = int64(be.Uint32(hdr[100:104]))
		if extStart < 104 || extStart > clusterSize {
			return img, fmt.Errorf("qcow2 header_length %d is outside 104..%d; the image is damaged", extStart, clusterSize)
		}
	default:
		return img, fmt.Errorf("qcow2 version %d is not one hpcvm reads (2 or 3)", img.Version)
	}

	if backingOffset != 0 {
		if backingSize == 0 || backingSize > maxNameLen || backingOffset > uint64(size) {
			return img, fmt.Errorf("qcow2 header names a backing file at offset %d, %d bytes long, which the image cannot hold; the image is damaged", backingOffset, backingSize)
		}
		name := make([]byte, backingSize)
		if _, err := r.ReadAt(name, int64(backingOffset)); err != nil {
			return img, fmt.Errorf("reading the backing file name of the qcow2 header: %w", err)
		}
		img.BackingFile = string(name)
	}

	// Header extensions follow the header, up to the end of the first
	// cluster, each 8-byte aligned, ended by type 0.
	end := min(clusterSize, size)
	for at := extStart; ; {
		if at+8 > end {
			if at == end && img.Version == 2 && at == 72 {
				break // a version 2 image may end right after its header
			}
			return img, fmt.Errorf("qcow2 header extensions run past the first cluster; the image is damaged")
		}
		var eh [8]byte
		if _, err := r.ReadAt(eh[:], at); err != nil {
			return img, fmt.Errorf("reading a qcow2 header extension: %w", err)
		}
		typ, length := be.Uint32(eh[0:4]), int64(be.Uint32(eh[4:8]))
		if typ == extEnd {
			break
		}
		data := at + 8
		if data+length > end {
			return img, fmt.Errorf("qcow2 header extension %#x (%d bytes) runs past the first cluster; the image is damaged", typ, length)
		}
		switch typ {
		case extBackingFormat, extDataFile:
			if length > maxNameLen {
				return img, fmt.Errorf("qcow2 header extension %#x is %d bytes long; the image is damaged", typ, length)
			}
			b := make([]byte, length)
			if _, err := r.ReadAt(b, data); err != nil {
				return img, fmt.Errorf("reading qcow2 header extension %#x: %w", typ, err)
			}
			if typ == extBackingFormat {
				img.BackingFormat = string(b)
			} else {
				img.DataFile, img.DataFileName = true, string(b)
			}
		}
		at = data + (length+7)&^7
	}
	return img, nil
}

// SelfContained refuses an image whose guest data is not all in the file
// itself, or cannot be read without a secret (an encrypted qcow2), saying
// how to make one that can be used. path names the image in the message.
func (img Image) SelfContained(path string) error {
	flatten := fmt.Sprintf("flatten it into one first (qemu-img convert -O qcow2 %s <new image>) and use that", path)
	switch {
	case img.CryptMethod != cryptNone:
		// Checked first: converting also drops any backing file.
		return fmt.Errorf("it is a qcow2 image encrypted with %s, and hpcvm passes no secret to QEMU, so no VM could read it; "+
			"convert it into a plain qcow2 first (qemu-img convert --object secret,id=sec0,file=<key file> "+
			"--image-opts driver=qcow2,file.filename=%s,encrypt.key-secret=sec0 -O qcow2 <new image>) and use that",
			cryptName(img.CryptMethod), path)
	case img.BackingFile != "":
		return fmt.Errorf("it is a qcow2 image layered on the backing file %q, which QEMU would open as root; hpcvm uses only self-contained images: %s", img.BackingFile, flatten)
	case img.DataFile && img.DataFileName != "":
		return fmt.Errorf("it is a qcow2 image whose data lives in the external data file %q, which QEMU would open as root; hpcvm uses only self-contained images: %s", img.DataFileName, flatten)
	case img.DataFile:
		return fmt.Errorf("it is a qcow2 image whose data lives in an external data file; hpcvm uses only self-contained images: %s", flatten)
	}
	return nil
}

// cryptName names a crypt_method for messages.
func cryptName(m uint32) string {
	switch m {
	case cryptAES:
		return "the old AES-CBC method"
	case cryptLUKS:
		return "LUKS"
	}
	return fmt.Sprintf("crypt_method %d", m)
}
