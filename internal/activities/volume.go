package activities

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/qcow2"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// EnsureVolume creates a VM's copy-on-write volume (idempotent) in the
// cluster's pool, once the pool is proven ours.
func (a *Activities) EnsureVolume(ctx context.Context, req api.VolumeRequest) (api.EnsureResult, error) {
	var res api.EnsureResult
	err := a.heartbeating(ctx, func() (err error) {
		if err := a.Libvirt.OwnedPool(req.Pool, req.PoolUUID); err != nil {
			return err
		}
		res.Created, err = a.Libvirt.EnsureVolume(req.Pool, req.XML)
		return err
	})
	return res, err
}

// DeleteVolume deletes a volume of the cluster's pool; an absent volume or
// pool is success. A pool without the cluster's UUID is not ours, and
// neither is anything in it: ErrNotOwned, nothing touched.
func (a *Activities) DeleteVolume(ctx context.Context, ref api.VolumeRef) error {
	return a.heartbeating(ctx, func() error {
		if err := a.Libvirt.OwnedPool(ref.Pool, ref.PoolUUID); errors.Is(err, libvirt.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return a.Libvirt.DeleteVolume(ref.Pool, ref.Name)
	})
}

// resumeRewind is how far before its last heartbeated offset a retried
// upload starts again. The offset counts bytes handed to libvirtd; when the
// worker dies, libvirtd drops what it had received but not yet written, so
// resuming exactly there could leave a hole. Rewriting bytes is harmless.
const resumeRewind = 64 << 20

// proofSegment is how much data an upload sends in one stream before it
// finishes it, so that what it sent can be read back while the next
// segment travels. Every segment costs a finish and a new stream (2-7 ms
// measured here), and the last one is read back after the stream ended
// (about 40 ms for 128 MiB): 2 GiB cost about 16 of the first and one of
// the second. (A variable: tests cut small images into several segments.)
var proofSegment int64 = 128 << 20

// afterSegmentWritten, if set (by tests), runs when libvirtd has written a
// segment of an upload into the volume at volPath, below end, before the
// proof is told: a test can spoil what libvirtd wrote.
var afterSegmentWritten func(volPath string, end int64)

// sameFile says whether path still names the file f (a volume replaced
// under the upload is not the one that was checked).
func sameFile(f *os.File, path string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		return false, err
	}
	if err := unix.Lstat(path, &b); err != nil {
		return false, err
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

func statSource(path string) (api.SourceStat, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return api.SourceStat{}, err
	}
	return sourceStat(&st), nil
}

// fstatSource is statSource of an open file: the file that is read, not
// whatever the path names by now.
func fstatSource(f *os.File) (api.SourceStat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return api.SourceStat{}, err
	}
	return sourceStat(&st), nil
}

func sourceStat(st *unix.Stat_t) api.SourceStat {
	return api.SourceStat{Size: st.Size, MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano(), Inode: st.Ino}
}

// UploadBaseImage streams the base image into its pool volume and proves
// what it wrote: the volume is read back beside the source and must hold
// the same bytes; the source did not change meanwhile. The proof, with the
// image digest (BLAKE3 of its 64 KiB blocks; records of the earlier
// SHA-256 digest are still recognised), is recorded on the volume
// file itself (an extended attribute, so it lives and dies with the
// volume): a later start trusts a recorded base without the source, and
// without reading the source again.
//
// The proof runs while the image streams (uploadProof): the stream is cut
// in segments, each finished before the next (libvirtd has then written
// it), and each finished segment is read back while the next one travels;
// the digest is computed from the bytes the stream reads, as they are
// read. When the stream ends, only the last segment is left to read back.
//
// Heartbeats carry the resume point: a retry after a crash or timeout
// resumes there instead of starting over, unless the source changed
// between attempts, in which case it starts over.
func (a *Activities) UploadBaseImage(ctx context.Context, req api.UploadRequest) (api.UploadResult, error) {
	var res api.UploadResult
	if req.Existed {
		return a.checkExistingBase(ctx, req)
	}
	// The image is opened once, where it was checked, and everything after
	// (its header, the stream, the comparison) reads that open file: a
	// link swapped in after the check is never followed.
	srcFile, err := openChecked(baseImageField, req.Source, a.ImageRoots, "--image-root")
	if err != nil {
		return res, err
	}
	defer srcFile.Close()
	if _, _, err := inspectImage(srcFile, req.Source); err != nil {
		return res, err
	}
	src, err := fstatSource(srcFile)
	if err != nil {
		return res, badInput(fmt.Sprintf("base image %q: %v", req.Source, err), err)
	}
	size := src.Size

	// Every heartbeat of this attempt carries the resume point: a heartbeat
	// without details would erase the one an earlier attempt left, and a
	// retry after this one would start over for nothing.
	var prev api.UploadProgress
	hadPrev := activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &prev) == nil
	beats := &pulse{}
	if hadPrev {
		beats.set(prev)
	}
	withBeats := func(fn func() error) error { return a.beatingWith(ctx, beats, fn) }

	// remake deletes the volume and creates it anew, empty.
	remake := func() error {
		if err := a.Libvirt.DeleteVolume(req.Pool, req.Volume); err != nil {
			return err
		}
		_, err := a.Libvirt.EnsureVolume(req.Pool, req.XML)
		return err
	}
	var created bool
	var volPath string
	if err := withBeats(func() (err error) {
		if err := a.Libvirt.OwnedPool(req.Pool, req.PoolUUID); err != nil {
			return err
		}
		created, err = a.Libvirt.EnsureVolume(req.Pool, req.XML)
		if errors.Is(err, libvirt.ErrMismatch) {
			// The volume did not exist before this run (req.Existed is
			// false), so it is an earlier attempt's, cut short before the
			// image's own header landed (libvirt then reads it as another
			// format or size): make it anew and upload from the start.
			created, err = true, remake()
		}
		if err != nil {
			return err
		}
		vol, err := a.Libvirt.LookupVolume(req.Pool, req.Volume)
		volPath = vol.Path
		return err
	}); err != nil {
		return res, err
	}

	var offset int64
	if !created && hadPrev {
		changed := prev.Source != src
		switch {
		case changed || prev.StartOver:
			if changed {
				res.Notes = append(res.Notes, fmt.Sprintf("base image %s changed between upload attempts; the upload started over", req.Source))
			}
			// The volume may hold a tail of what was there before: start
			// from a new, empty volume.
			if err := withBeats(remake); err != nil {
				// The XML was planned from the old source (size, format):
				// the run must plan again.
				return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("base image %s changed while it was being uploaded and its volume cannot be made anew (%v): start again", req.Source, err), api.ErrTypeMismatch, err)
			}
			created = true
		case prev.Offset > 0 && prev.Offset <= size:
			offset = prev.Offset
		}
	}
	if offset == 0 {
		// A sparse stream leaves the volume's old bytes wherever the image
		// has a hole: the empty qcow2 libvirt just made, or what an
		// earlier attempt wrote. An earlier attempt's volume is made anew;
		// then the file is emptied to zeros at its length (a raw volume's
		// length is its capacity, which a resume checks).
		if !created {
			if err := withBeats(remake); err != nil {
				return res, err
			}
		}
		st, err := os.Stat(volPath)
		if err != nil {
			return res, classify(err)
		}
		if err := os.Truncate(volPath, 0); err != nil {
			return res, classify(err)
		}
		if err := os.Truncate(volPath, st.Size()); err != nil {
			return res, classify(err)
		}
	}
	res.ResumedFrom = offset

	// The proof runs beside the stream (see uploadProof): it reads the
	// source by its data map, with ReadAt, and the volume through a file
	// of its own, opened now, after the volume was made for this upload.
	volFile, err := os.OpenFile(volPath, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return res, classify(err)
	}
	defer volFile.Close()
	var proof *uploadProof
	if err := withBeats(func() error {
		exts, err := dataExtents(srcFile, size)
		if err == nil {
			proof, err = startProof(srcFile, exts, volFile, size, offset, ctx.Err)
		}
		return err
	}); err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		return res, temporal.NewApplicationErrorWithCause(fmt.Sprintf("reading base image %s: %v", req.Source, err), api.ErrTypeLibvirt, err)
	}
	defer proof.abandon() // a no-op once finished

	activity.GetLogger(ctx).Info("uploading base image", "source", req.Source, "volume", req.Volume, "offset", offset, "size", size)
	// The heartbeat names a resume point: what libvirtd has certainly
	// written (a finished segment), or resumeRewind behind what was handed
	// to it, or where this attempt began, whichever is furthest.
	beats.set(api.UploadProgress{Offset: offset, Source: src})
	var sent, written int64
	resumeAt := func() int64 { return max(offset, written, sent-resumeRewind) }
	// Heartbeats go out from their own goroutine too, so the upload is seen
	// alive while libvirtd flushes the end of the stream.
	err = withBeats(func() error {
		return a.Libvirt.UploadVolumeFileWith(ctx, req.Pool, req.Volume, srcFile, offset, libvirt.UploadOptions{
			Segment: proofSegment,
			Read:    proof.read,
			Progress: func(done int64) {
				sent = done
				beats.set(api.UploadProgress{Offset: resumeAt(), Sent: done, Source: src})
			},
			Written: func(end int64) error {
				if afterSegmentWritten != nil {
					afterSegmentWritten(volPath, end)
				}
				written = end
				beats.set(api.UploadProgress{Offset: resumeAt(), Sent: sent, Source: src})
				return proof.written(end)
			},
		})
	})
	if err != nil && !errors.Is(err, errVolumeDiffers) {
		return res, err
	}
	res.Bytes = size - offset

	// Prove it: the volume must hold exactly the source's bytes (all but
	// the last segment are compared by now), and the volume must still be
	// the file libvirt names.
	var sum []byte
	var same bool
	compareErr := withBeats(func() (err error) {
		sum, same, err = proof.finish()
		if err == nil && same {
			same, err = sameFile(volFile, volPath)
		}
		return err
	})
	if after, err := fstatSource(srcFile); err != nil || after != src {
		// The next attempt sees the change and starts over. (A source cut
		// short while it was compared is such a change, not a failure.)
		return res, temporal.NewApplicationError(fmt.Sprintf("base image %s changed while it was uploaded; uploading again", req.Source), api.ErrTypeLibvirt)
	}
	if compareErr != nil {
		if ctx.Err() != nil {
			return res, compareErr
		}
		return res, temporal.NewApplicationErrorWithCause(fmt.Sprintf("checking base volume %s against %s: %v", volPath, req.Source, compareErr), api.ErrTypeLibvirt, compareErr)
	}
	if !same {
		if offset > 0 {
			// A resumed upload can leave a hole if libvirtd lost more than
			// the rewind covers: the next attempt starts from scratch.
			beats.set(api.UploadProgress{Source: src, StartOver: true})
			a.beat(ctx, beats, nil)
			return res, temporal.NewApplicationError(fmt.Sprintf("base volume %s/%s does not hold the image %s after a resumed upload; uploading it again from the start", req.Pool, req.Volume, req.Source), api.ErrTypeLibvirt)
		}
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("base volume %s/%s does not hold what was uploaded from %s: the storage under the pool lost data; check it, then start again", req.Pool, req.Volume, req.Source), api.ErrTypeLibvirt, nil)
	}
	// What QEMU opens is the volume: its own header must be
	// self-contained too.
	if err := volumeSelfContained(req, volPath); err != nil {
		return res, err
	}
	rec := baseRecord{Digest: hex.EncodeToString(sum), Kind: imageDigestKind, Size: size, Source: req.Source, SourceStat: src, Verified: time.Now().UTC().Format(time.RFC3339)}
	if err := rec.write(volPath); err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("the base volume's digest could not be recorded on %s (%v): later starts will compare it with the source again", volPath, err))
	}
	return res, nil
}

// checkExistingBase decides about a base volume that was there before the
// run. A volume with a record of a verified upload is trusted as it is: the
// source is not needed, and a changed or missing source is a note, not a
// failure. A volume without a record (an older hpcvm, or an upload that
// never finished) is compared with the source, and recorded if equal.
func (a *Activities) checkExistingBase(ctx context.Context, req api.UploadRequest) (api.UploadResult, error) {
	res := api.UploadResult{AlreadyDone: true}
	var vol libvirt.VolumeInfo
	if err := a.heartbeating(ctx, func() (err error) {
		if err := a.Libvirt.OwnedPool(req.Pool, req.PoolUUID); err != nil {
			return err
		}
		vol, err = a.Libvirt.LookupVolume(req.Pool, req.Volume)
		return err
	}); err != nil {
		return res, err
	}
	// A volume an earlier hpcvm uploaded was not checked for a backing or
	// data file: QEMU would open what its header names.
	if err := volumeSelfContained(req, vol.Path); err != nil {
		return res, err
	}
	if rec, ok := readBaseRecord(vol.Path); ok {
		if st, err := os.Stat(vol.Path); err == nil && st.Size() == rec.Size {
			// The source only matters for a note; it is looked at only
			// under the image roots.
			var src api.SourceStat
			p, err := checkUnder(baseImageField, req.Source, a.ImageRoots, "--image-root")
			gone := err == nil && !p.Exists
			if err == nil && !gone {
				var f *os.File
				if f, err = p.open(); err == nil {
					src, err = fstatSource(f)
					_ = f.Close()
				}
			}
			switch {
			case gone:
				res.Notes = append(res.Notes, fmt.Sprintf("base image %s is not there any more; the cluster runs on its verified copy %s (digest %s)", req.Source, req.Volume, rec.Digest))
			case err != nil:
				res.Notes = append(res.Notes, fmt.Sprintf("base image %s cannot be used any more (%v); the cluster runs on its verified copy %s (digest %s)", req.Source, err, req.Volume, rec.Digest))
			case req.Source != rec.Source || src != rec.SourceStat:
				res.Notes = append(res.Notes, fmt.Sprintf("base image %s is not the file the base volume was made from (%s, %s); the cluster keeps its base (digest %s): destroy and start again to use the new image", req.Source, rec.Source, rec.Verified, rec.Digest))
			}
			return res, nil
		}
	}
	srcPath, err := checkUnder(baseImageField, req.Source, a.ImageRoots, "--image-root")
	if err != nil {
		return res, err
	}
	srcFile, err := srcPath.open()
	var srcSt api.SourceStat
	if err == nil {
		defer srcFile.Close()
		srcSt, err = fstatSource(srcFile)
	}
	if err != nil {
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"base volume %s/%s exists but holds no record of a verified upload, and the base image %s cannot be read (%v) to check it: put the image back and start again, or run `hpcvm destroy`",
			req.Pool, req.Volume, req.Source, err), api.ErrTypeMismatch, nil)
	}
	var sum []byte
	var same bool
	if err := a.heartbeating(ctx, func() (err error) {
		sum, same, err = compareFileWithVolume(srcFile, vol.Path, ctx.Err)
		return err
	}); err != nil {
		return res, err
	}
	if !same {
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"base volume %s/%s exists but does not hold %s (an earlier upload did not finish, or the image changed); the VMs' disks may be layered on it, so hpcvm does not overwrite it: run `hpcvm destroy` and start the cluster again",
			req.Pool, req.Volume, req.Source), api.ErrTypeMismatch, nil)
	}
	rec := baseRecord{Digest: hex.EncodeToString(sum), Kind: imageDigestKind, Size: srcSt.Size, Source: req.Source, SourceStat: srcSt, Verified: time.Now().UTC().Format(time.RFC3339)}
	_ = rec.write(vol.Path)
	return res, nil
}

// volumeSelfContained refuses a base volume whose header names a backing
// or data file (the VMs' disks would reach through it) or that is
// encrypted (no VM could read it).
func volumeSelfContained(req api.UploadRequest, volPath string) error {
	f, err := os.OpenFile(volPath, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return classify(err)
	}
	defer f.Close()
	if _, err := selfContained(f, req.Source); err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"base volume %s/%s (from %s) is not an image QEMU can use on its own, so no VM is started on it: %v; then run `hpcvm destroy` and start again",
			req.Pool, req.Volume, req.Source, err), api.ErrTypeBadInput, nil)
	}
	return nil
}

// baseRecord is the proof of a verified upload, kept on the volume file.
type baseRecord struct {
	Digest     string         `json:"digest"`
	Kind       string         `json:"kind"` // how Digest was computed
	Size       int64          `json:"size"`
	Source     string         `json:"source"`
	SourceStat api.SourceStat `json:"source_stat"`
	Verified   string         `json:"verified"`
}

// baseRecordAttr is the extended attribute that holds the record.
const baseRecordAttr = "user.hpcvm.base"

func (r baseRecord) write(path string) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return unix.Setxattr(path, baseRecordAttr, b, 0)
}

func readBaseRecord(path string) (baseRecord, bool) {
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(path, baseRecordAttr, buf)
	if err != nil {
		return baseRecord{}, false
	}
	var r baseRecord
	if json.Unmarshal(buf[:n], &r) != nil || r.Digest == "" || (r.Kind != imageDigestKind && r.Kind != sha256DigestKind) {
		return baseRecord{}, false
	}
	return r, true
}

// imageDigestKind names the digest in a record (see imageDigest).
const imageDigestKind = "blake3 of the 64 KiB blocks that are not zeros and of their layout"

// sha256DigestKind names the digest of records made before the BLAKE3
// one: SHA-256 over the 64 KiB blocks, a zero block as one tag byte, any
// other as a tag byte and its contents, then the length. Such a record was
// made by the same proof, so it is trusted as it is; its digest is only
// shown, never computed again.
const sha256DigestKind = "sha256 of 64 KiB blocks, zero blocks as one byte"

// selfContained reads the header of an open image file (a regular file)
// and judges it as a base image: one that names a backing or data file,
// is encrypted, or cannot be judged is refused; name is what messages
// call it.
func selfContained(f *os.File, name string) (qcow2.Image, error) {
	st, err := f.Stat()
	if err != nil {
		return qcow2.Image{}, err
	}
	if !st.Mode().IsRegular() {
		return qcow2.Image{}, fmt.Errorf("it is not a regular file (%s)", st.Mode().Type())
	}
	img, err := qcow2.Read(f, st.Size())
	if err == nil {
		err = img.SelfContained(name)
	}
	return img, err
}
