package s3

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/ckptdev/ckpt/store/backend"
)

// Server-side copies (backend.Copier). A plain CopyObject cannot be made
// create-only everywhere: AWS S3 honours If-None-Match on it (since October
// 2025), but MinIO ignores the header there and overwrites the destination.
// So a copy is a multipart upload of one part: the part is copied by the
// server (UploadPartCopy), its ETag (the MD5 of the bytes copied, for
// objects not encrypted with KMS or customer keys) is compared with the MD5
// the caller expects, and only then is the upload completed with
// If-None-Match: *, which both honour. Until the completion nothing is
// visible under the key; a mismatch aborts the upload.

var _ backend.Copier = (*Backend)(nil)

// CanCopyFrom implements backend.Copier: src is an S3 backend of the same
// endpoint. Whether the credentials may read src's bucket shows only when a
// copy is tried (ErrCopyUnsupported).
func (b *Backend) CanCopyFrom(src backend.Backend) bool {
	o, ok := src.(*Backend)
	return ok && o.endpoint == b.endpoint
}

// CopyFrom implements backend.Copier.
func (b *Backend) CopyFrom(ctx context.Context, src backend.Backend, srcKey, key string, want backend.CopyCheck) error {
	o, ok := src.(*Backend)
	if !ok || o.endpoint != b.endpoint {
		return fmt.Errorf("copy %s to %s: %w: %s is on another server", srcKey, b.location, backend.ErrCopyUnsupported, src.Location())
	}
	srcObject, err := o.object(srcKey)
	if err != nil {
		return err
	}
	object, err := b.object(key)
	if err != nil {
		return err
	}
	if want.Size <= 0 || want.Size > MaxPartSize {
		// S3 copies at most 5 GiB in one part, and no empty part.
		return fmt.Errorf("copy %s to %s: %w: %d bytes", srcKey, b.location, backend.ErrCopyUnsupported, want.Size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("copy %s: %w", key, err)
	}
	p := &put{b: b, ctx: ctx, key: key, object: object, size: want.Size, token: newToken()}
	if err := p.copyPart(o.bucket, srcObject, want); err != nil {
		return fmt.Errorf("copy %s from %s to %s in %s: %w", srcKey, src.Location(), key, b.location, err)
	}
	return nil
}

// copyPart creates the object from the first want.Size bytes of
// srcBucket/srcObject in a one-part multipart upload, checked against want
// before it is completed create-only.
func (p *put) copyPart(srcBucket, srcObject string, want backend.CopyCheck) (err error) {
	b := p.b
	uploadID, err := p.startUpload()
	if err != nil {
		return err
	}
	completed := false
	defer p.abortIncomplete(uploadID, &completed, &err)

	var part minio.CompletePart
	err = b.retry(p.ctx, "copy part", func(int) error {
		var err error
		part, err = b.core.CopyObjectPart(p.ctx, srcBucket, srcObject, b.bucket, p.object, uploadID, 1, 0, want.Size, nil)
		return err
	})
	switch code, status := errorCode(err); {
	case err == nil:
	case isNotFound(err):
		return fmt.Errorf("source: %w", backend.ErrNotFound)
	case code == "InvalidRange" || status == 416 || code == "InvalidArgument" && status == 400:
		// The range of want.Size bytes is not in the source (AWS says
		// InvalidRange, MinIO InvalidArgument).
		return fmt.Errorf("%w: the source is not %d bytes long: %v", backend.ErrCopyMismatch, want.Size, err)
	case code == "AccessDenied" || code == "NotImplemented" || status == 403 || status == 501:
		return fmt.Errorf("%w: %v", backend.ErrCopyUnsupported, err)
	default:
		return err
	}
	if got := strings.Trim(part.ETag, `"`); got != hex.EncodeToString(want.MD5[:]) {
		// Either the source changed since the caller read it, or the
		// server's part ETags are not MD5s (KMS encryption): either way the
		// copy cannot be vouched for.
		return fmt.Errorf("%w: the server copied bytes with ETag %s, want MD5 %x", backend.ErrCopyMismatch, got, want.MD5)
	}
	part.PartNumber = 1
	if err := p.complete(uploadID, []minio.CompletePart{part}); err != nil {
		return err
	}
	completed = true
	return nil
}
