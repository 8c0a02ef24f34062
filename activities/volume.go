package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/hpcvm/hpcvm/libvirt"
	"go.temporal.io/sdk/activity"
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

// UploadBaseImage streams the base image into its pool volume. It heartbeats
// the byte offset it reached; a retry after a crash or timeout resumes from
// the last heartbeat instead of starting over. A volume already holding the
// whole image is left as it is.
func (a *Activities) UploadBaseImage(ctx context.Context, req UploadRequest) (UploadResult, error) {
	var res UploadResult
	_, _, size, err := libvirt.InspectImage(req.Source)
	if err != nil {
		return res, badInput(fmt.Sprintf("base image %q: %v", req.Source, err), err)
	}
	if _, err := a.Libvirt.EnsureVolume(req.Pool, req.XML); err != nil {
		return res, classify(err)
	}
	var offset int64
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &offset); err != nil || offset < 0 || offset > size {
			offset = 0
		}
	} else if vol, err := a.Libvirt.LookupVolume(req.Pool, req.Volume); err == nil && int64(vol.Physical) == size {
		// Nothing to resume and the file is as long as the image: an earlier
		// run uploaded it completely.
		res.AlreadyDone = true
		return res, nil
	} else if err != nil && !errors.Is(err, libvirt.ErrNotFound) {
		return res, classify(err)
	}
	res.ResumedFrom = offset
	logger := activity.GetLogger(ctx)
	logger.Info("uploading base image", "source", req.Source, "volume", req.Volume, "offset", offset, "size", size)
	err = a.Libvirt.UploadVolume(ctx, req.Pool, req.Volume, req.Source, offset, func(done int64) {
		activity.RecordHeartbeat(ctx, done)
	})
	if err != nil {
		return res, classify(err)
	}
	res.Bytes = size - offset
	return res, nil
}
