"""Storage behind the batch URIs, on pyarrow.fs (plus a read-only HTTP file):

    s3://BUCKET/KEY       pyarrow S3FileSystem; AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
                          AWS_SESSION_TOKEN, AWS_ENDPOINT_URL (or S3_ENDPOINT + S3_USE_HTTPS),
                          AWS_DEFAULT_REGION (or AWS_REGION, default us-east-1), AWS_CA_BUNDLE
    gs://BUCKET/KEY       pyarrow GcsFileSystem with Google's default credentials
    pvc://CLAIM/PATH      $MODELDEPLOY_PVC_ROOT/CLAIM/PATH (default /mnt/pvc), a mounted claim
    /PATH, file:///PATH   the local file system
    http(s)://...         input only: ranged GETs, no listing

S3 and GCS have no rename: ``move`` is pyarrow's copy then delete there, ``os.replace`` on
local disks (atomic within one file system).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from .errors import PermanentError

log = logging.getLogger("modeldeploy.batch")

PVC_ROOT_ENV = "MODELDEPLOY_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"
HTTP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Location:
    """One file or directory: its URI, the file system (None for http) and the path on it.
    ``prefix`` + (path minus ``root``) gives the URI back for paths found by listing."""

    uri: str
    fs: Any
    path: str
    prefix: str = ""
    root: str = ""

    @property
    def is_http(self) -> bool:
        return self.fs is None

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def uri_of(self, path: str) -> str:
        return self.prefix + path[len(self.root):]

    def at(self, path: str) -> Location:
        return Location(self.uri_of(path), self.fs, path, self.prefix, self.root)

    def child(self, *names: str) -> Location:
        return self.at("/".join([self.path.rstrip("/"), *names]))


def locate(uri: str) -> Location:
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("http", "https"):
        return Location(uri, None, uri)
    if scheme == "s3":
        return Location(uri, s3(), uri[5:], "s3://")
    if scheme in ("gs", "gcs"):
        path = uri.split("://", 1)[1]
        return Location(uri, gcs(), path, scheme + "://")
    if scheme == "pvc":
        root = os.environ.get(PVC_ROOT_ENV) or DEFAULT_PVC_ROOT
        rest = uri[len("pvc://"):]
        if not rest.split("/", 1)[0]:
            raise PermanentError(f"{uri}: expected pvc://CLAIM/PATH")
        base = root.rstrip("/") + "/"
        return Location(uri, pafs.LocalFileSystem(), base + rest, "pvc://", base)
    if scheme == "file":
        path = urlsplit(uri).path
        return Location("file://" + path, pafs.LocalFileSystem(), path, "file://")
    if scheme:
        raise PermanentError(f"{uri}: unsupported scheme {scheme}:// (s3, gs, pvc, file, http, https or a path)")
    path = os.path.abspath(uri) + ("/" if uri.endswith("/") else "")
    return Location(path, pafs.LocalFileSystem(), path)


@functools.cache
def s3() -> pafs.S3FileSystem:
    env = os.environ
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
    if not endpoint and env.get("S3_ENDPOINT"):
        https = env.get("S3_USE_HTTPS", "1").strip().lower() not in ("0", "false", "no")
        endpoint = env["S3_ENDPOINT"] if "://" in env["S3_ENDPOINT"] else f"{'https' if https else 'http'}://{env['S3_ENDPOINT']}"
    kwargs: dict[str, Any] = {"region": env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1"}
    if endpoint.strip():
        parts = urlsplit(endpoint.strip() if "://" in endpoint else "https://" + endpoint.strip())
        kwargs["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
        kwargs["scheme"] = parts.scheme or "https"
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        kwargs.update(access_key=env["AWS_ACCESS_KEY_ID"], secret_key=env["AWS_SECRET_ACCESS_KEY"],
                      session_token=env.get("AWS_SESSION_TOKEN") or None)
    if env.get("AWS_CA_BUNDLE"):
        kwargs["tls_ca_file_path"] = env["AWS_CA_BUNDLE"]
    if env.get("S3_VERIFY_SSL", "").strip().lower() in ("0", "false", "no") and kwargs.get("scheme", "https") == "https":
        log.warning("S3_VERIFY_SSL=0: pyarrow's S3 client always verifies TLS; give the endpoint's CA in AWS_CA_BUNDLE")
    return pafs.S3FileSystem(**kwargs)


@functools.cache
def gcs() -> pafs.GcsFileSystem:
    return pafs.GcsFileSystem()


# ---------------------------------------------------------------- reading


def file_size(loc: Location) -> int | None:
    """The size of a file; None when an HTTP server does not say; FileNotFoundError when absent."""
    if loc.is_http:
        return _http_size(loc.uri)
    info = loc.fs.get_file_info(loc.path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(loc.uri)
    return info.size


def kind(loc: Location) -> str:
    """"file", "dir" or "missing"."""
    if loc.is_http:
        return "file"
    info = loc.fs.get_file_info(loc.path.rstrip("/") or "/")
    return {pafs.FileType.File: "file", pafs.FileType.Directory: "dir"}.get(info.type, "missing")


def list_files(loc: Location, recursive: bool = True) -> list[tuple[str, int]]:
    """(path, size) of every file below a directory (none when it does not exist)."""
    selector = pafs.FileSelector(loc.path.rstrip("/"), recursive=recursive, allow_not_found=True)
    try:
        infos = loc.fs.get_file_info(selector)
    except FileNotFoundError:
        return []
    return [(i.path, i.size) for i in infos if i.type == pafs.FileType.File]


def open_random(loc: Location, size: int | None = None) -> Any:
    """A seekable binary file (pyarrow NativeFile, or HttpFile)."""
    if loc.is_http:
        return HttpFile(loc.uri, size)
    return loc.fs.open_input_file(loc.path)


def read_bytes(loc: Location) -> bytes | None:
    """A small file's content, or None when it does not exist."""
    try:
        with loc.fs.open_input_stream(loc.path) as f:
            return f.read()
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------- writing


def open_output(loc: Location) -> Any:
    if loc.is_local:
        os.makedirs(os.path.dirname(loc.path), exist_ok=True)
    return loc.fs.open_output_stream(loc.path)


def write_bytes(loc: Location, data: bytes) -> None:
    with open_output(loc) as f:
        f.write(data)


def move(src: Location, dst: Location) -> None:
    if src.is_local:
        os.makedirs(os.path.dirname(dst.path), exist_ok=True)
        os.replace(src.path, dst.path)
    else:
        src.fs.move(src.path, dst.path)


def delete(loc: Location) -> None:
    """Remove a file; one that is already gone is fine."""
    try:
        loc.fs.delete_file(loc.path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- http


def _http_size(url: str) -> int | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=HTTP_TIMEOUT) as r:
            length = r.headers.get("Content-Length")
    except urllib.error.HTTPError as e:
        if e.code in (404, 410):
            raise FileNotFoundError(url) from None
        if e.code not in (405, 501):  # HEAD not allowed: the size stays unknown
            raise OSError(f"{url}: HTTP {e.code} {e.reason}") from None
        return None
    return int(length) if length and length.isdigit() else None


class HttpFile(io.RawIOBase):
    """A read-only HTTP(S) file: one streaming GET from the current position, a new ranged
    GET after each seek (servers without Range support are read and skipped up to it)."""

    def __init__(self, url: str, size: int | None = None):
        super().__init__()
        self.url = url
        self.size = size
        self.pos = 0
        self._resp: Any = None
        self._resp_pos = -1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            if self.size is None:
                self.size = _http_size(self.url)
            if self.size is None:
                raise OSError(f"{self.url}: the server does not give the file's size (Content-Length)")
            offset += self.size
        elif whence == io.SEEK_CUR:
            offset += self.pos
        self.pos = max(0, offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        if self.size is not None and self.pos >= self.size:
            return 0
        if self._resp is None or self._resp_pos != self.pos:
            self._open()
        n = self._resp.readinto(buffer)
        self.pos += n
        self._resp_pos = self.pos
        return n

    def _open(self) -> None:
        self._close_response()
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={self.pos}-"} if self.pos else {})
        try:
            resp = urllib.request.urlopen(request, timeout=HTTP_TIMEOUT)
        except urllib.error.HTTPError as e:
            if e.code == 416:
                self._resp, self._resp_pos = io.BytesIO(b""), self.pos
                return
            if e.code in (404, 410):
                raise FileNotFoundError(self.url) from None
            raise OSError(f"{self.url}: HTTP {e.code} {e.reason}") from None
        if self.pos and resp.status != 206:
            skip = self.pos
            while skip:
                chunk = resp.read(min(skip, 1 << 20))
                if not chunk:
                    break
                skip -= len(chunk)
        self._resp, self._resp_pos = resp, self.pos

    def _close_response(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    def close(self) -> None:
        self._close_response()
        super().close()
