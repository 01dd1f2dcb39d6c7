"""The embedded S3 endpoint: moto's server (pinned in requirements.lock), with one cost fixed.

moto answers every version listing (``ListObjectVersions``, whatever the prefix) by deep-copying
every version in the bucket, and a version's deep copy reads and copies its stored bytes
(``FakeKey.__getstate__``). A listing therefore costs as much as everything stored: late in the
test suite, seconds per listing, so that a test which lists a single key (removing a segment
that was announced but never committed, placing a hold) took 128 s in the full suite and 9 s
alone. Here the listing copies each version's attributes and shares its bytes, which it only
reads, and which the copy never closes (a ``FakeKey`` closes its buffer when collected); every
other deep copy (``CopyObject`` among them) is moto's own. Semantics are moto's: the listing
still works on copies, so its bookkeeping (``is_latest``) touches no stored version.

Run as ``python -m bwc.devstack.s3_server`` with moto's server arguments.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from moto.s3 import models
from moto.server import main

_listing = threading.local()


_LISTED: dict[type, type] = {}


def _listed(cls: type) -> type:
    """``cls`` whose copies never dispose of anything: a ``FakeKey`` closes its byte buffer
    when it is garbage-collected, and a listing's copy shares the stored version's buffer."""
    if cls not in _LISTED:
        _LISTED[cls] = type(f"Listed{cls.__name__}", (cls,), {
            "__del__": lambda self: None,
            "dispose": lambda self, *args, **kwargs: None,
        })
    return _LISTED[cls]


def _sharing_bytes(version: Any) -> Any:
    """A copy of a stored version (or delete marker) that shares, not copies, its bytes."""
    if not hasattr(version, "__dict__"):
        return copy.deepcopy(version)
    clone: Any = object.__new__(_listed(type(version)))
    clone.__dict__.update(version.__dict__)
    return clone


class _CopyInModels:
    """Stands in for the ``copy`` module inside ``moto.s3.models``: cheap copies only within a
    version listing of this thread, moto's own everywhere else."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if getattr(_listing, "active", False) and isinstance(value, list):
            return [_sharing_bytes(version) for version in value]
        return copy.deepcopy(value, memo)


_list_object_versions = models.S3Backend.list_object_versions


def _list_object_versions_sharing_bytes(self: Any, *args: Any, **kwargs: Any) -> Any:
    _listing.active = True
    try:
        return _list_object_versions(self, *args, **kwargs)
    finally:
        _listing.active = False


models.copy = _CopyInModels()  # type: ignore[attr-defined,assignment]
models.S3Backend.list_object_versions = _list_object_versions_sharing_bytes  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
