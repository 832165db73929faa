"""Upload every file under DIR to the bucket `models` of the S3 server at $AWS_ENDPOINT_URL
(the key is its path under DIR), creating the bucket first. Credentials come from the
environment (the Secret s3-credentials), as they would for any S3 client.

Runs in the cluster (train.yaml) with the storage initializer's image, which has boto3.
"""

import sys
import time
from pathlib import Path

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError

BUCKET = "models"
S3_TIMEOUT = 120


def create_bucket(s3) -> None:
    """The bucket, once the server answers: its Service may still be without an endpoint."""
    deadline = time.monotonic() + S3_TIMEOUT
    while True:
        try:
            s3.create_bucket(Bucket=BUCKET)
            return
        except ClientError as err:
            if err.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return
            raise
        except EndpointConnectionError as err:
            if time.monotonic() > deadline:
                sys.exit(f"the S3 server did not answer within {S3_TIMEOUT}s: {err}")
            time.sleep(1)


def main(root: Path) -> None:
    s3 = boto3.client("s3")
    create_bucket(s3)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = path.relative_to(root).as_posix()
        s3.upload_file(str(path), BUCKET, key)
        print(f"uploaded s3://{BUCKET}/{key} ({path.stat().st_size} bytes)", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
