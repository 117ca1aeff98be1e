"""Files in a sweep's storage: a local directory or an object-store URI (``s3://bucket/prefix``,
``gs://…``). URIs go through pyarrow's filesystems, the ones Ray Train and Tune use for the same
``storage_path``, so a store's credentials and endpoint reach raysweep's files exactly as they reach
Ray's checkpoints (for an S3-compatible store such as MinIO: ``AWS_ENDPOINT_URL``, or the URI's own
``?endpoint_override=HOST:PORT&scheme=http``)."""

import os
from pathlib import Path
from typing import List, Optional, Tuple

from ..evaluation.checkpoints import is_uri


def split(uri: str) -> Tuple["object", str]:
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def bucket_path(uri: str) -> str:
    """``s3://bucket/a/b?opts`` -> ``bucket/a/b``: the path pyarrow (and Ray) report inside a store."""
    from urllib.parse import urlsplit

    u = urlsplit(uri)
    return (u.netloc + u.path).rstrip("/")


def join(base: str, *parts: str) -> str:
    """``base/part/…`` keeping a URI's query (endpoint options) at the end."""
    head, sep, query = base.partition("?")
    return "/".join([head.rstrip("/")] + [p.strip("/") for p in parts]) + (sep + query)


def write_bytes(target: str, data: bytes) -> None:
    """Whole-object write: an object store makes an object visible only once it is complete; a
    local file is written beside and renamed, so a reader never sees half of either."""
    if not is_uri(target):
        p = Path(target)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, p)
        return
    fs, path = split(target)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(data)


def read_bytes(target: str) -> Optional[bytes]:
    """The object's bytes, or None when there is none."""
    if not is_uri(target):
        p = Path(target)
        return p.read_bytes() if p.is_file() else None
    import pyarrow.fs

    fs, path = split(target)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


def list_names(target: str) -> List[str]:
    """The names directly under a prefix (files and 'directories'), sorted; [] when there is none."""
    if not is_uri(target):
        p = Path(target)
        return sorted(x.name for x in p.iterdir()) if p.is_dir() else []
    import pyarrow.fs

    fs, path = split(target)
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    except OSError:
        return []
    return sorted(i.base_name for i in infos)


def as_uri(path: str, storage_uri: Optional[str]) -> str:
    """A checkpoint path as Ray reports it (for an object store: the bucket path without its scheme)
    made a URI again against the sweep's storage, so any process can open it."""
    if not path or is_uri(path) or not is_uri(storage_uri):
        return path
    base = bucket_path(storage_uri)
    if path == base or path.startswith(base + "/"):
        return join(storage_uri, path[len(base):]) if path != base else storage_uri
    return path
