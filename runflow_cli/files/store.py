"""One bucket prefix, spoken to through obstore (the Rust ``object_store`` crate's bindings).

Only this module imports obstore. What it can do is what OUT in a bucket needs: put an
object whole (one PUT below :data:`MULTIPART_SIZE`, a multipart upload above it, completed
only after the last chunk, so the object appears whole or not at all), put one only if
absent or only if unchanged (the lease), read metadata (HEAD, LIST) without reading
bodies, read, copy server-side and delete.

Credentials are never ours: obstore reads the provider's chain (``AWS_ACCESS_KEY_ID`` and
friends, a web identity token, the container's or the instance's role). Nothing here
puts a credential into a message.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from runflow_cli.errors import LocalIOError, UsageError
from runflow_cli.files.location import Location

__all__ = [
    "MULTIPART_SIZE",
    "ObjectInfo",
    "Store",
    "StoreError",
    "open_store",
]

MULTIPART_SIZE = 8 * 1024 * 1024
"""Objects at least this large go up in parts of this size (S3's minimum part is 5 MB)."""

INSTALL_HINT = "Install the object-storage extra: pip install 'runflow-cli[cloud]'"


class StoreError(LocalIOError):
    """The bucket refused or could not be reached (exit 5, like a disk that refuses)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    e_tag: str | None
    modified_ns: int


def _import_obstore() -> Any:
    try:
        import obstore
    except ImportError:
        raise UsageError(
            "--out s3://... needs the object-storage extra, which is not installed",
            hint=INSTALL_HINT,
        ) from None
    return obstore


def open_store(
    location: Location,
    endpoint: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Store:
    """The store behind ``location`` (``s3://bucket/prefix``); ``endpoint`` (else
    ``AWS_ENDPOINT_URL``) for an S3-compatible server. Nothing is sent yet."""
    obstore = _import_obstore()
    from obstore.store import S3Store

    endpoint = endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    options: dict[str, Any] = {"connect_timeout": timedelta(seconds=10)}
    config: dict[str, Any] = {}
    if endpoint:
        config["endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = True
    if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        config["region"] = "us-east-1"  # S3's own default; a bucket elsewhere redirects
    try:
        s3 = S3Store(
            location.bucket,
            prefix=location.prefix or None,
            client_options=options,  # type: ignore[arg-type]
            retry_config={"max_retries": 4, "retry_timeout": timedelta(seconds=60)},
            **config,
        )
    except Exception as exc:  # a bad setting in the environment, said without values
        raise UsageError(f"cannot use {location.url}: {type(exc).__name__}") from None
    return Store(obstore, s3, location.url)


class Store:
    """Keys are relative to the prefix (``sku/name.webp``, ``.runflow/state.db``)."""

    def __init__(self, obstore: Any, store: Any, url: str) -> None:
        self._ob = obstore
        self._store = store
        self.url = url

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def where(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _fail(self, key: str, doing: str, exc: Exception) -> StoreError:
        # obstore's messages name the request URL and status, never a credential; the
        # first line is enough, the rest is the server's XML.
        detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return StoreError(
            f"could not {doing} {self.where(key)}: {detail}",
            path=None,
            cause=type(exc).__name__,
            hint="Check the bucket's name, that it exists, the endpoint (--storage-endpoint "
            "or AWS_ENDPOINT_URL) and the credentials in the environment.",
        )

    # --- metadata ------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        try:
            meta = self._ob.head(self._store, key)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fail(key, "look at", exc) from None
        return _info(meta)

    def list(self, prefix: str = "") -> dict[str, ObjectInfo]:
        """Every object below ``prefix``: its size, tag and time (LIST, 1,000 a request)."""
        found: dict[str, ObjectInfo] = {}
        try:
            for page in self._ob.list(self._store, prefix or None, chunk_size=1000):
                for meta in page:
                    found[str(meta["path"])] = _info(meta)
        except FileNotFoundError:
            return found
        except Exception as exc:
            raise self._fail(prefix, "list", exc) from None
        return found

    # --- reading -------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        try:
            return bytes(self._ob.get(self._store, key).bytes())
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fail(key, "read", exc) from None

    def chunks(self, key: str) -> Iterator[bytes]:
        try:
            for chunk in self._ob.get(self._store, key).stream(min_chunk_size=1 << 20):
                yield bytes(chunk)
        except Exception as exc:
            raise self._fail(key, "read", exc) from None

    # --- writing -------------------------------------------------------------------

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> tuple[int, str]:
        """Put ``chunks`` as one object; its size and SHA-256. Held in memory up to
        :data:`MULTIPART_SIZE` (one PUT), else sent in parts: the object exists only once
        the upload completes, and an error or an interrupt before that leaves none."""
        digest = hashlib.sha256()
        size = 0
        head: list[bytes] = []
        held = 0
        source = iter(chunks)
        for chunk in source:
            digest.update(chunk)
            size += len(chunk)
            head.append(chunk)
            held += len(chunk)
            if held >= MULTIPART_SIZE:
                break
        else:
            self._put(key, b"".join(head))
            return size, digest.hexdigest()

        def rest() -> Iterator[bytes]:
            nonlocal size
            yield from head
            for chunk in source:
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        try:
            self._ob.put(self._store, key, rest(), chunk_size=MULTIPART_SIZE, max_concurrency=4)
        except Exception as exc:
            raise self._fail(key, "upload", exc) from None
        return size, digest.hexdigest()

    def _put(self, key: str, data: bytes) -> Any:
        try:
            return self._ob.put(self._store, key, data, use_multipart=False)
        except Exception as exc:
            raise self._fail(key, "write", exc) from None

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        """Create ``key`` only if no object has it (``If-None-Match: *``); its new tag, or
        None when one exists."""
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            result = self._ob.put(self._store, key, data, mode="create", use_multipart=False)
        except (AlreadyExistsError, PreconditionError):
            return None
        except Exception as exc:
            raise self._fail(key, "create", exc) from None
        return result.get("e_tag")

    def put_if_match(self, key: str, data: bytes, e_tag: str) -> str | None:
        """Replace ``key`` only if it is still the object tagged ``e_tag`` (``If-Match``);
        its new tag, or None when it changed (someone else wrote it) or is gone."""
        from obstore.exceptions import PreconditionError

        try:
            result = self._ob.put(
                self._store, key, data, mode={"e_tag": e_tag}, use_multipart=False
            )
        except (PreconditionError, FileNotFoundError):
            return None
        except Exception as exc:
            raise self._fail(key, "replace", exc) from None
        return result.get("e_tag")

    def copy(self, source: str, dest: str) -> None:
        """A server-side copy (the bytes never come down)."""
        try:
            self._ob.copy(self._store, source, dest, overwrite=True)
        except Exception as exc:
            raise self._fail(dest, "copy to", exc) from None

    def delete(self, key: str) -> None:
        try:
            self._ob.delete(self._store, key)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._fail(key, "delete", exc) from None


def _info(meta: Mapping[str, Any]) -> ObjectInfo:
    modified = meta.get("last_modified")
    ns = int(modified.timestamp() * 1_000_000_000) if modified is not None else 0
    return ObjectInfo(int(meta["size"]), meta.get("e_tag"), ns)
