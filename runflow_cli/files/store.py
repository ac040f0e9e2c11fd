"""One bucket prefix, spoken to through obstore (the Rust ``object_store`` crate's bindings).

Only this module imports obstore. What it can do is what OUT in a bucket needs: put an
object whole (one PUT below :data:`MULTIPART_SIZE`, a multipart upload above it, completed
only after the last chunk, so the object appears whole or not at all), put one only if
absent or only if unchanged (the lease), read metadata (HEAD, LIST) without reading
bodies, read, copy server-side and delete.

Which store a URL's scheme opens is the table :data:`KINDS` (S3 and S3-compatible stores,
Azure Blob Storage). Credentials are never ours: obstore reads the provider's chain
(``AWS_ACCESS_KEY_ID`` and friends, a web identity token, the container's or the
instance's role; ``AZURE_STORAGE_ACCOUNT_NAME`` with ``AZURE_STORAGE_ACCOUNT_KEY``, a SAS
token, a service principal, a managed identity). Nothing here puts a credential into a
message.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
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

_QUERY = re.compile(r"(https?://[^\s?]*)\?\S*")
"""A URL's query in an error message, up to the next blank."""

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
            "--out in object storage needs the object-storage extra, which is not installed",
            hint=INSTALL_HINT,
        ) from None
    return obstore


def _s3(stores: Any, location: Location, config: dict[str, Any], env: Mapping[str, str]) -> Any:
    if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        config["region"] = "us-east-1"  # S3's own default; a bucket elsewhere redirects
    return stores.S3Store(location.bucket, prefix=location.prefix or None, **config)


def _azure(stores: Any, location: Location, config: dict[str, Any], _: Mapping[str, str]) -> Any:
    return stores.AzureStore(location.bucket, prefix=location.prefix or None, **config)


@dataclass(frozen=True, slots=True)
class StoreKind:
    """How one scheme of :data:`~runflow_cli.files.location.STORE_SCHEMES` is opened."""

    make: Callable[[Any, Location, dict[str, Any], Mapping[str, str]], Any]
    endpoint_env: tuple[str, ...]
    """Where the endpoint comes from when ``--storage-endpoint`` is not given."""
    hint: str
    """What to check when the store refuses (names of settings, never their values)."""


KINDS: dict[str, StoreKind] = {
    "s3": StoreKind(
        _s3,
        ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        "Check the bucket's name, that it exists, the endpoint (--storage-endpoint or "
        "AWS_ENDPOINT_URL) and the credentials in the environment (AWS_ACCESS_KEY_ID, "
        "AWS_PROFILE, a role).",
    ),
    "az": StoreKind(
        _azure,
        ("AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"),
        "Check the container's name, that it exists, the endpoint (--storage-endpoint or "
        "AZURE_STORAGE_ENDPOINT; AZURE_STORAGE_USE_EMULATOR=true for Azurite's default) and "
        "the credentials in the environment (AZURE_STORAGE_ACCOUNT_NAME with "
        "AZURE_STORAGE_ACCOUNT_KEY, a SAS token, a service principal or a managed identity).",
    ),
}
"""One entry a scheme: obstore reads each provider's own environment besides these."""


def open_store(
    location: Location,
    endpoint: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Store:
    """The store behind ``location`` (``s3://bucket/prefix``, ``az://container/prefix``);
    ``endpoint`` (else the provider's variable, e.g. ``AWS_ENDPOINT_URL``) for an
    S3-compatible server or an emulator. Nothing is sent yet."""
    obstore = _import_obstore()
    from obstore import store as stores

    kind = KINDS[location.scheme or ""]
    endpoint = endpoint or next((env[n] for n in kind.endpoint_env if env.get(n)), None)
    options: dict[str, Any] = {"connect_timeout": timedelta(seconds=10)}
    config: dict[str, Any] = {
        "client_options": options,
        "retry_config": {"max_retries": 4, "retry_timeout": timedelta(seconds=60)},
    }
    if endpoint:
        config["endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = True
    try:
        client = kind.make(stores, location, config, env)
    except Exception as exc:  # a bad or missing setting ("Account must be specified")
        raise UsageError(
            f"cannot use {location.url}: {_said(exc, env)}; nothing was done", hint=kind.hint
        ) from None
    return Store(obstore, client, location.url, kind.hint)


def _said(exc: Exception, env: Mapping[str, str]) -> str:
    """The first line of obstore's complaint about a setting, with the value of every
    secret-looking variable blanked out (in case a message ever quotes one)."""
    said = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    for name, value in env.items():
        if len(value) >= 8 and any(w in name for w in ("KEY", "SECRET", "TOKEN", "PASSWORD")):
            said = said.replace(value, "***")
    return said


class Store:
    """Keys are relative to the prefix (``sku/name.webp``, ``.runflow/state.db``)."""

    def __init__(self, obstore: Any, store: Any, url: str, hint: str = "") -> None:
        self._ob = obstore
        self._store = store
        self.url = url
        self._hint = hint

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def where(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _fail(self, key: str, doing: str, exc: Exception) -> StoreError:
        # obstore's messages name the request URL and status; the first line is enough,
        # the rest is the server's XML. A URL's query is cut: an Azure SAS token rides there.
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        detail = _QUERY.sub(r"\1", detail)[:300]
        return StoreError(
            f"could not {doing} {self.where(key)}: {detail}",
            path=None,
            cause=type(exc).__name__,
            hint=self._hint,
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
