"""Plain S3 transfers of a dataset, timed: what the S3 server alone can move
(run in the model-server image; endpoint and keys from the AWS_* environment).

    python s3io.py put|get --bucket B --prefix P [--dir DIR] [--threads 2] [--client boto3|pyarrow]

put: uploads every file of --dir to s3://B/P<name> (one PutObject each, or pyarrow's
     output stream, which uploads in parts); get: reads every object below s3://B/P whole.
--threads files at a time, like the batch run's parallelism. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import time


def boto3_client():
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                        config=Config(max_pool_connections=16, retries={"max_attempts": 2}))


def pyarrow_fs():
    from pyarrow import fs

    scheme, _, host = os.environ["AWS_ENDPOINT_URL"].partition("://")
    return fs.S3FileSystem(endpoint_override=host, scheme=scheme,
                           region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def transfer(op: str, client: str, bucket: str, keys: list[str], directory: str | None, threads: int) -> int:
    s3 = boto3_client() if client == "boto3" else pyarrow_fs()

    def one(key: str) -> int:
        if op == "put":
            data = open(os.path.join(directory, os.path.basename(key)), "rb").read()
            if client == "boto3":
                s3.put_object(Bucket=bucket, Key=key, Body=data)
            else:
                with s3.open_output_stream(f"{bucket}/{key}") as out:
                    out.write(data)
            return len(data)
        if client == "boto3":
            return len(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        with s3.open_input_stream(f"{bucket}/{key}") as f:
            return len(f.read())

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, keys))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("op", choices=("put", "get"))
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--dir")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--client", choices=("boto3", "pyarrow"), default="boto3")
    args = parser.parse_args()
    if args.op == "put":
        keys = [args.prefix + name for name in sorted(os.listdir(args.dir)) if not name.startswith(".")]
    else:
        listing = boto3_client().get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=args.prefix)
        keys = [o["Key"] for page in listing for o in page.get("Contents", [])]
    start = time.perf_counter()
    size = transfer(args.op, args.client, args.bucket, keys, args.dir, args.threads)
    seconds = time.perf_counter() - start
    print(json.dumps({"op": args.op, "client": args.client, "objects": len(keys), "bytes": size, "seconds": seconds,
                      "mb_per_s": size / seconds / 1e6, "threads": args.threads}))


if __name__ == "__main__":
    main()
