package activities

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/hpcvm/hpcvm/libvirt"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// EnsureVolume creates a VM's copy-on-write volume (idempotent).
func (a *Activities) EnsureVolume(ctx context.Context, req VolumeRequest) (EnsureResult, error) {
	var res EnsureResult
	err := a.heartbeating(ctx, func() (err error) {
		res.Created, err = a.Libvirt.EnsureVolume(req.Pool, req.XML)
		return err
	})
	return res, err
}

// DeleteVolume deletes a volume; an absent one is success.
func (a *Activities) DeleteVolume(ctx context.Context, ref VolumeRef) error {
	return a.heartbeating(ctx, func() error { return a.Libvirt.DeleteVolume(ref.Pool, ref.Name) })
}

// resumeRewind is how far before its last heartbeated offset a retried
// upload starts again. The offset counts bytes handed to libvirtd; when the
// worker dies, libvirtd drops what it had received but not yet written, so
// resuming exactly there could leave a hole. Rewriting bytes is harmless.
const resumeRewind = 64 << 20

// UploadBaseImage streams the base image into its pool volume, heartbeating
// the byte offset it reached: a retry after a crash or timeout resumes from
// there (less resumeRewind) instead of starting over. A volume that existed
// before this run is not uploaded again but compared with the image: equal
// is success; different is a final error, since VM disks may be layered on it.
func (a *Activities) UploadBaseImage(ctx context.Context, req UploadRequest) (UploadResult, error) {
	var res UploadResult
	_, _, size, err := libvirt.InspectImage(req.Source)
	if err != nil {
		return res, badInput(fmt.Sprintf("base image %q: %v", req.Source, err), err)
	}
	var offset int64
	if err := a.heartbeating(ctx, func() error {
		_, err := a.Libvirt.EnsureVolume(req.Pool, req.XML)
		return err
	}); err != nil {
		return res, err
	}
	switch {
	case activity.HasHeartbeatDetails(ctx):
		if err := activity.GetHeartbeatDetails(ctx, &offset); err != nil || offset < 0 || offset > size {
			offset = 0
		}
		offset = max(0, offset-resumeRewind)
	case req.Existed:
		vol, err := a.Libvirt.LookupVolume(req.Pool, req.Volume)
		if err != nil {
			return res, classify(err)
		}
		same, err := sameContent(ctx, vol.Path, req.Source, size)
		if err != nil {
			return res, classify(err)
		}
		if !same {
			return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
				"base volume %s/%s exists but does not hold %s (an earlier upload did not finish, or the image changed); the VMs' disks may be layered on it, so hpcvm does not overwrite it: run `hpcvm destroy` and start the cluster again",
				req.Pool, req.Volume, req.Source), ErrTypeMismatch, nil)
		}
		res.AlreadyDone = true
		return res, nil
	}
	res.ResumedFrom = offset
	activity.GetLogger(ctx).Info("uploading base image", "source", req.Source, "volume", req.Volume, "offset", offset, "size", size)
	err = a.Libvirt.UploadVolume(ctx, req.Pool, req.Volume, req.Source, offset, func(done int64) {
		activity.RecordHeartbeat(ctx, done)
	})
	if err != nil {
		return res, classify(err)
	}
	res.Bytes = size - offset
	return res, nil
}

// sameContent compares the volume's file with the image, heartbeating as it
// reads: the worker runs on the host, so the volume is a local file.
func sameContent(ctx context.Context, volPath, src string, size int64) (bool, error) {
	vf, err := os.Open(volPath)
	if err != nil {
		return false, err
	}
	defer vf.Close()
	if st, err := vf.Stat(); err != nil || st.Size() != size {
		return false, err
	}
	sf, err := os.Open(src)
	if err != nil {
		return false, err
	}
	defer sf.Close()
	const block = 4 << 20
	vb, sb := make([]byte, block), make([]byte, block)
	for done := int64(0); done < size; {
		n, err := io.ReadFull(sf, sb)
		if err != nil && err != io.ErrUnexpectedEOF {
			return false, err
		}
		if _, err := io.ReadFull(vf, vb[:n]); err != nil {
			return false, nil
		}
		if !bytes.Equal(vb[:n], sb[:n]) {
			return false, nil
		}
		done += int64(n)
		activity.RecordHeartbeat(ctx)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
	return true, nil
}
