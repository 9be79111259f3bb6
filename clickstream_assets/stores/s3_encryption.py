"""Server-side encryption for every object the loader writes to S3.

Staged load files hold customers' personal data. S3 encrypts an object at rest when its PUT
asks: SSE-S3 (`AES256`, keys managed by S3) by default, SSE-KMS (`aws:kms`) with a key id when
one is configured, so the key's policy decides who can decrypt and CloudTrail records each use.
"""

from __future__ import annotations

SSE_S3 = "AES256"
SSE_KMS = "aws:kms"


def sse_args(kms_key_id: str | None = None) -> dict[str, str]:
    """The PutObject arguments that encrypt the object (a key id/ARN/alias is not a secret)."""
    if kms_key_id:
        return {"ServerSideEncryption": SSE_KMS, "SSEKMSKeyId": kms_key_id}
    return {"ServerSideEncryption": SSE_S3}
