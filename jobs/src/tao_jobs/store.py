"""Artifact store access by URI: ``file://`` paths and ``s3://bucket/key`` on any S3-compatible endpoint.

Jobs read inputs and write outputs directly in the store (on Kubernetes there is no shared disk). S3
credentials come from the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or a service account),
never from the stage spec; the spec only carries the endpoint, region and addressing style.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from .contract import BadInput


@dataclass(frozen=True)
class S3Options:
    endpoint: str | None = None
    region: str = "us-east-1"
    force_path_style: bool = True


class AlreadyExists(Exception):
    """A conditional create found the object already there."""


def join(prefix: str, *parts: str) -> str:
    out = prefix
    for p in parts:
        out = out.rstrip("/") + "/" + p.lstrip("/")
    return out


def _file_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


class Store:
    def __init__(self, s3: S3Options | None = None):
        self._s3_options = s3 or S3Options()
        self._s3_client = None

    # --- S3 plumbing -------------------------------------------------------------------------------
    def _s3(self):
        if self._s3_client is None:
            import boto3
            from botocore.config import Config

            o = self._s3_options
            self._s3_client = boto3.client(
                "s3",
                endpoint_url=o.endpoint or os.environ.get("AWS_ENDPOINT_URL") or None,
                region_name=o.region,
                config=Config(
                    s3={"addressing_style": "path" if o.force_path_style else "auto"},
                    retries={"max_attempts": 5, "mode": "standard"},
                ),
            )
        return self._s3_client

    @staticmethod
    def _bucket_key(uri: str) -> tuple[str, str]:
        u = urlparse(uri)
        return u.netloc, u.path.lstrip("/")

    # --- reads -------------------------------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        if uri.startswith("file://"):
            return _file_path(uri).exists()
        from botocore.exceptions import ClientError

        bucket, key = self._bucket_key(uri)
        try:
            self._s3().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def read_bytes(self, uri: str) -> bytes:
        if uri.startswith("file://"):
            p = _file_path(uri)
            if not p.is_file():
                raise BadInput(f"{uri}: input file does not exist")
            return p.read_bytes()
        from botocore.exceptions import ClientError

        bucket, key = self._bucket_key(uri)
        try:
            return self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise BadInput(f"{uri}: input object does not exist") from e
            raise

    def read_text(self, uri: str) -> str:
        data = self.read_bytes(uri)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadInput(f"{uri}: not UTF-8 text ({e})") from e

    def list(self, prefix: str) -> list[str]:
        """All object URIs under a prefix (recursive)."""
        if prefix.startswith("file://"):
            root = _file_path(prefix)
            if not root.exists():
                return []
            return sorted("file://" + str(p) for p in root.rglob("*") if p.is_file())
        bucket, key = self._bucket_key(prefix)
        out: list[str] = []
        for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            out += [f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", [])]
        return sorted(out)

    def local_dir(self, prefix: str) -> Path:
        """A local directory with the contents of a prefix (the path itself for file://, a download for s3)."""
        if prefix.startswith("file://"):
            p = _file_path(prefix)
            if not p.is_dir():
                raise BadInput(f"{prefix}: input directory does not exist")
            return p
        objects = self.list(prefix)
        if not objects:
            raise BadInput(f"{prefix}: no objects under this prefix")
        dest = Path(tempfile.mkdtemp(prefix="tao-in-"))
        base = prefix.rstrip("/") + "/"
        for uri in objects:
            target = dest / uri[len(base) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            bucket, key = self._bucket_key(uri)
            self._s3().download_file(bucket, key, str(target))
        return dest

    # --- writes ------------------------------------------------------------------------------------
    def write_bytes(self, uri: str, data: bytes, *, if_none_match: bool = False) -> None:
        """Writes an object. With ``if_none_match`` the write is a conditional create (AlreadyExists if present)."""
        if uri.startswith("file://"):
            p = _file_path(uri)
            p.parent.mkdir(parents=True, exist_ok=True)
            # a name no other writer uses (threads and processes): readers never see half a file
            tmp = p.with_name(p.name + f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
            tmp.write_bytes(data)
            try:
                if if_none_match:
                    try:
                        os.link(tmp, p)  # atomic create-if-absent on POSIX: one of any number of creators wins
                    except FileExistsError as e:
                        raise AlreadyExists(uri) from e
                else:
                    os.replace(tmp, p)
            finally:
                tmp.unlink(missing_ok=True)
            return
        from botocore.exceptions import ClientError

        bucket, key = self._bucket_key(uri)
        extra = {"IfNoneMatch": "*"} if if_none_match else {}
        try:
            self._s3().put_object(Bucket=bucket, Key=key, Body=data, **extra)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise AlreadyExists(uri) from e
            raise

    def write_text(self, uri: str, text: str) -> None:
        self.write_bytes(uri, text.encode("utf-8"))

    def upload_file(self, local: Path, uri: str) -> None:
        if uri.startswith("file://"):
            p = _file_path(uri)
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.resolve() != local.resolve():
                # copy to a private name, then rename: a reader (or a racing writer) never sees a partial file
                tmp = p.with_name(p.name + f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
                try:
                    shutil.copyfile(local, tmp)
                    os.replace(tmp, p)
                finally:
                    tmp.unlink(missing_ok=True)
            return
        bucket, key = self._bucket_key(uri)
        self._s3().upload_file(str(local), bucket, key)  # multipart above the transfer threshold

    def upload_dir(self, local: Path, prefix: str) -> None:
        for p in sorted(local.rglob("*")):
            if p.is_file():
                self.upload_file(p, join(prefix, str(p.relative_to(local))))

    def delete(self, uri: str) -> None:
        if uri.startswith("file://"):
            _file_path(uri).unlink(missing_ok=True)
            return
        bucket, key = self._bucket_key(uri)
        self._s3().delete_object(Bucket=bucket, Key=key)
