"""Personal data sealed at rest: field-by-field AES-GCM under a key ring with key ids.

Every original of personal data a service keeps (intake's ``personal_data``, every
service's ``dead_letter_bodies``) is stored as a *token*, one per field::

    enc:v1:<kid>:<base64url(12-byte nonce || ciphertext || 16-byte tag)>

- ``v1`` is the format; ``<kid>`` names the key of the ring that sealed it
  (``[A-Za-z0-9_.-]{1,32}``), so a reader picks the key without guessing and a rotation
  sweep finds what is still under an old key.
- AES-256-GCM (``cryptography``'s ``AESGCM``), a fresh random 96-bit nonce per value
  (safe far beyond the ~2**32 values per key at which random nonces start to matter; keys
  are rotated long before).
- The associated data binds the value to where it belongs: ``["parley", "v1", kid, field,
  doc_id]`` (JSON). ``field`` is the value's dotted path in its document (``data.phone``)
  and ``doc_id`` the document's ``_id``: a token copied to another field or another record
  fails to open (``DecryptionFailed``), as does one whose kid was edited.
- What is sealed: ``str`` as UTF-8, ``bytes`` as they are, anything else as JSON (sorted
  keys). ``open`` gives bytes back; ``open_text`` / ``open_json`` decode; each reader knows
  which of its fields is which.

A document with sealed fields also carries ``kid`` at its top level: the key all its sealed
fields are under (``NO_KEY`` when it holds none, e.g. erased). ``rotate`` finds what still
needs re-encrypting by an equality filter on that (indexed) field, with a projection of
``_id`` and ``kid`` only, then reads and rewrites those documents one by one by ``_id`` (see
``rotate`` for its cost on FerretDB).

Keys come from settings (``CryptoSettings``): ``PARLEY_CRYPTO_KEYS`` (JSON ``{"kid":
"<base64 key>"}`` or ``kid:<base64 key>,kid2:<base64 key>``) and ``PARLEY_CRYPTO_ACTIVE_KEY``
(the kid new values are sealed with; may be left out when there is one key). Keys are 16,
24 or 32 bytes (32 recommended). Unset, a fixed *development* ring is used (kid ``dev``);
``PARLEY_ENVIRONMENT=production`` refuses it, and refuses any ring that contains the
development key. ``python -m shared.crypto genkey --kid K`` prints a new key entry.

Rotation: add the new key to ``PARLEY_CRYPTO_KEYS`` and make it active (every process),
then run ``python -m shared.crypto rotate --db DB --collection C --fields f1,f2`` (or the
service's own timer); old tokens stay readable as long as their key is in the ring; once a
sweep reports nothing left under the old kid, the old key may be removed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

VERSION = "v1"
PREFIX = f"enc:{VERSION}:"
NONCE_BYTES = 12
KEY_BYTES = (16, 24, 32)
KID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
#: The top-level ``kid`` of a document that holds no sealed value (its originals were erased).
NO_KEY = "-"
#: The development key ring's one key id; its key is derived from a public phrase.
DEV_KID = "dev"
DEV_KEY = hashlib.sha256(b"parley development key ring - public, never for production").digest()

_TOKEN = re.compile(r"^enc:(?P<version>[a-z0-9]+):(?P<kid>[A-Za-z0-9_.-]{1,32}):(?P<body>[A-Za-z0-9_-]+=*)$")


class CryptoError(Exception):
    """Something about sealed values or keys is wrong (never says what the plaintext was)."""


class UnknownKey(CryptoError):
    """A token names a key id the ring does not hold."""


class DecryptionFailed(CryptoError):
    """A token does not open: wrong field or record, edited, or sealed under another key."""


class CryptoConfigError(CryptoError):
    """The key ring settings cannot be used (malformed, or refused in production)."""


def is_sealed(value: object) -> bool:
    """Whether ``value`` is a token of this module."""
    return isinstance(value, str) and value.startswith("enc:") and _TOKEN.match(value) is not None


def key_id(token: str) -> str:
    """The key id a token was sealed under."""
    m = _TOKEN.match(token)
    if m is None:
        raise DecryptionFailed("not a sealed value")
    return m.group("kid")


def _aad(kid: str, field_name: str, doc_id: object) -> bytes:
    return json.dumps(["parley", VERSION, kid, field_name, str(doc_id)],
                      ensure_ascii=False, separators=(",", ":")).encode()


def _plain_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class KeyRing:
    """Keys by id; ``active`` seals new values, every key opens what it sealed."""

    keys: Mapping[str, bytes]
    active: str
    development: bool = False
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise CryptoConfigError("the key ring holds no key")
        for kid, key in self.keys.items():
            if not KID_PATTERN.match(kid):
                raise CryptoConfigError(f"key id {kid!r} is not [A-Za-z0-9_.-]{{1,32}}")
            if len(key) not in KEY_BYTES:
                raise CryptoConfigError(f"key {kid} is {len(key)} bytes; AES needs 16, 24 or 32")
            self._ciphers[kid] = AESGCM(key)
        if self.active not in self.keys:
            raise CryptoConfigError(f"the active key id {self.active!r} is not in the key ring")

    def __repr__(self) -> str:  # never the keys
        return f"KeyRing(kids={sorted(self.keys)}, active={self.active!r}, development={self.development})"

    def seal(self, value: object, *, field: str, doc_id: object) -> str:
        """Encrypt ``value`` for ``field`` of document ``doc_id`` under the active key."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.active].encrypt(nonce, _plain_bytes(value), _aad(self.active, field, doc_id))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{PREFIX}{self.active}:{body}"

    def open(self, token: str, *, field: str, doc_id: object) -> bytes:
        """Decrypt a token of ``field`` of document ``doc_id``; raise ``CryptoError`` if it does not open."""
        m = _TOKEN.match(token) if isinstance(token, str) else None
        if m is None:
            raise DecryptionFailed(f"{field} of {doc_id} is not a sealed value")
        if m.group("version") != VERSION:
            raise DecryptionFailed(f"{field} of {doc_id} is sealed in format {m.group('version')}, "
                                   f"which this code does not know")
        kid = m.group("kid")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise UnknownKey(f"{field} of {doc_id} is sealed under key id {kid!r}, which is not in "
                             f"the key ring (PARLEY_CRYPTO_KEYS holds {sorted(self.keys)})")
        try:
            raw = base64.urlsafe_b64decode(m.group("body"))
        except (binascii.Error, ValueError) as exc:
            raise DecryptionFailed(f"{field} of {doc_id}: damaged token") from exc
        if len(raw) < NONCE_BYTES + 16:
            raise DecryptionFailed(f"{field} of {doc_id}: damaged token")
        try:
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(kid, field, doc_id))
        except InvalidTag as exc:
            raise DecryptionFailed(
                f"{field} of {doc_id} does not open under key {kid}: it belongs to another field "
                "or record, or was altered") from exc

    def open_text(self, token: str, *, field: str, doc_id: object) -> str:
        """Decrypt a sealed ``str``."""
        return self.open(token, field=field, doc_id=doc_id).decode("utf-8")

    def open_json(self, token: str, *, field: str, doc_id: object) -> Any:
        """Decrypt a value sealed as JSON (neither ``str`` nor ``bytes`` when sealed)."""
        return json.loads(self.open(token, field=field, doc_id=doc_id))

    def reseal(self, token: str, *, field: str, doc_id: object) -> str:
        """The token re-encrypted under the active key (the same token if it already is)."""
        if key_id(token) == self.active:
            return token
        return self.seal(self.open(token, field=field, doc_id=doc_id), field=field, doc_id=doc_id)


# ------------------------------------------------------------------ settings


def _parse_keys(text: str) -> dict[str, bytes]:
    text = text.strip()
    pairs: list[tuple[str, str]]
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CryptoConfigError("PARLEY_CRYPTO_KEYS is not valid JSON") from exc
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise CryptoConfigError('PARLEY_CRYPTO_KEYS as JSON must be {"kid": "<base64 key>", ...}')
        pairs = [(str(k), v) for k, v in loaded.items()]
    else:
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            kid, sep, encoded = item.partition(":")
            if not sep:
                raise CryptoConfigError("PARLEY_CRYPTO_KEYS entries are kid:<base64 key>")
            pairs.append((kid.strip(), encoded.strip()))
    keys: dict[str, bytes] = {}
    for kid, encoded in pairs:
        if kid in keys:
            raise CryptoConfigError(f"key id {kid!r} appears twice in PARLEY_CRYPTO_KEYS")
        try:
            standard = encoded.replace("-", "+").replace("_", "/")  # url-safe base64 too
            keys[kid] = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CryptoConfigError(f"key {kid!r} in PARLEY_CRYPTO_KEYS is not base64") from exc
    if not keys:
        raise CryptoConfigError("PARLEY_CRYPTO_KEYS holds no key")
    return keys


class CryptoSettings(BaseSettings):
    """The key ring: ``PARLEY_CRYPTO_KEYS`` and ``PARLEY_CRYPTO_ACTIVE_KEY``.

    Lives here rather than in ``shared.settings`` so every store can build its ring from the
    environment alone; a service composes it into its settings as ``crypto``.
    """

    model_config = SettingsConfigDict(env_prefix="PARLEY_CRYPTO_", extra="ignore")

    keys: SecretStr | None = Field(
        None,
        description='Keys by id: JSON {"kid": "<base64 key>"} or kid:<base64 key>,kid2:<base64 key> '
        "(16, 24 or 32 bytes each). Unset: the development key ring, which production refuses.",
    )
    active_key: str | None = Field(
        None, description="Key id that seals new values (required when PARLEY_CRYPTO_KEYS has several)."
    )

    def keyring(self, environment: str) -> KeyRing:
        """The key ring for ``environment``; production refuses the development ring and key."""
        if self.keys is None or not self.keys.get_secret_value().strip():
            if environment == "production":
                raise CryptoConfigError(
                    "PARLEY_CRYPTO_KEYS is not set: production refuses the development key ring")
            return development_keyring()
        keys = _parse_keys(self.keys.get_secret_value())
        if environment == "production" and any(k == DEV_KEY for k in keys.values()):
            raise CryptoConfigError("PARLEY_CRYPTO_KEYS holds the development key: refused in production")
        active = self.active_key
        if active is None:
            if len(keys) > 1:
                raise CryptoConfigError("PARLEY_CRYPTO_KEYS holds several keys: set PARLEY_CRYPTO_ACTIVE_KEY")
            active = next(iter(keys))
        return KeyRing(keys, active)


def development_keyring() -> KeyRing:
    """The fixed development ring (kid ``dev``): fine on a laptop and in tests, never in production."""
    return KeyRing({DEV_KID: DEV_KEY}, DEV_KID, development=True)


@lru_cache(maxsize=1)
def default_keyring() -> KeyRing:
    """The ring of this process from the environment (``PARLEY_CRYPTO_*``, ``PARLEY_ENVIRONMENT``).

    For stores built without a service's settings at hand (the dead-letter store).
    """
    return CryptoSettings().keyring(os.environ.get("PARLEY_ENVIRONMENT", "development"))


def new_key() -> str:
    """A fresh random 256-bit key, base64."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


# ------------------------------------------------------------------ rotation


@dataclass
class RotationReport:
    """What one rotation sweep saw and did."""

    scanned: int = 0  # documents found under an old key (or without one) and looked at
    rotated: int = 0  # documents rewritten under the active key
    sealed_legacy: int = 0  # of those, documents that held plaintext (no kid) until now
    skipped: int = 0  # changed meanwhile (another writer, erased): left for the next sweep
    failed: list[str] = field(default_factory=list)  # _ids whose values did not open (not rewritten)


def _get(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


async def rotate(
    collection: Any,
    *,
    keyring: KeyRing,
    fields: Sequence[str],
    batch_size: int = 100,
    pause_s: float = 0.05,
    plaintext: bool = False,
) -> RotationReport:
    """Re-encrypt every document of ``collection`` under an old key of the ring, in small batches.

    ``fields`` are the dotted paths of the sealed values (absent ones are skipped). With
    ``plaintext``, documents without ``kid`` (written before sealing) are sealed too: their
    ``str``/``bytes`` values as they are, others as JSON (how the field's readers expect them).

    Finding the work: for each key id of the ring other than the active one, one cursor over
    ``find({"kid": <old kid>}, {"_id": 1, "kid": 1})``, unsorted, streamed in cursor batches of
    ``batch_size``; the collection gets an index on ``kid`` (``by_kid``, created here if
    missing), so on MongoDB and on this stack's FerretDB (which serves an equality filter on an
    indexed field from the GIN companion of the index) the sweep reads only the documents it
    has to rewrite, and a sweep with nothing to do costs one index probe per old key. Paging
    with ``find({_id: {$gt: last}}).sort(_id)`` is avoided on purpose: FerretDB v1 pushes
    neither the range nor the sort down, so each page would read the whole collection. The
    ``plaintext`` pass (``kid`` missing: ``$exists`` is not pushed down) reads every document
    once: a one-off migration, not for a timer. Each document to change is read and
    rewritten by ``_id`` (the fast path on both servers), the write conditional on the
    ``kid`` it was read under, so a concurrent erasure or another sweep is not overwritten
    (on FerretDB v1 a conditional update is read-then-write: a race within one update
    remains possible; running the sweep again is always safe). ``pause_s`` between batches
    leaves room for the hot path. New documents are sealed under the active key already, so
    the sweep converges. Measured figures: docs/security.md.
    """
    report = RotationReport()
    await collection.create_index([("kid", 1)], name="by_kid")
    queries: list[dict[str, Any]] = [{"kid": kid} for kid in sorted(keyring.keys) if kid != keyring.active]
    if plaintext:
        queries.append({"kid": {"$exists": False}})
    for query in queries:
        batch: list[Any] = []
        async for head in collection.find(query, {"_id": 1, "kid": 1}, batch_size=batch_size):
            report.scanned += 1
            batch.append(head["_id"])
            if len(batch) >= batch_size:
                await _rotate_batch(collection, batch, keyring=keyring, fields=fields, report=report)
                batch = []
                if pause_s:
                    await asyncio.sleep(pause_s)
        if batch:
            await _rotate_batch(collection, batch, keyring=keyring, fields=fields, report=report)
    log.info("rotation of %s: %d found, %d rotated (%d were plaintext), %d skipped, %d failed",
             getattr(collection, "name", "?"), report.scanned, report.rotated, report.sealed_legacy,
             report.skipped, len(report.failed))
    return report


#: Documents of a batch rewritten at once (each a read and a write by ``_id``).
ROTATION_PARALLEL = 4


async def _rotate_batch(collection: Any, ids: list[Any], *, keyring: KeyRing, fields: Sequence[str],
                        report: RotationReport) -> None:
    gate = asyncio.Semaphore(ROTATION_PARALLEL)

    async def one(doc_id: Any) -> None:
        async with gate:
            await _rotate_one(collection, doc_id, keyring=keyring, fields=fields, report=report)

    await asyncio.gather(*(one(doc_id) for doc_id in ids))


async def _rotate_one(collection: Any, doc_id: Any, *, keyring: KeyRing, fields: Sequence[str],
                      report: RotationReport) -> None:
    doc = await collection.find_one({"_id": doc_id})
    if doc is None:
        report.skipped += 1
        return
    kid = doc.get("kid")
    if kid in (keyring.active, NO_KEY):
        report.skipped += 1
        return
    changes: dict[str, Any] = {}
    try:
        for path in fields:
            value = _get(doc, path)
            if value is None:
                continue
            if is_sealed(value):
                new = keyring.reseal(value, field=path, doc_id=doc_id)
            else:  # plaintext from before sealing
                new = keyring.seal(value, field=path, doc_id=doc_id)
            if new != value:
                changes[path] = new
    except CryptoError as exc:
        log.error("rotation: %s %s: %s", getattr(collection, "name", "?"), doc_id, type(exc).__name__)
        report.failed.append(str(doc_id))
        return
    condition: dict[str, Any] = {"_id": doc_id, "kid": kid} if "kid" in doc else {
        "_id": doc_id, "kid": {"$exists": False}}
    result = await collection.update_one(condition, {"$set": {**changes, "kid": keyring.active}})
    if result.modified_count == 1:
        report.rotated += 1
        report.sealed_legacy += "kid" not in doc
    else:
        report.skipped += 1


# ------------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.crypto rotate ...`` / ``genkey``."""
    parser = argparse.ArgumentParser(prog="python -m shared.crypto", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("rotate", help="re-encrypt a collection's sealed fields under the active key")
    r.add_argument("--db", required=True, help="database name (e.g. parley_intake)")
    r.add_argument("--collection", required=True)
    r.add_argument("--fields", required=True, help="comma-separated dotted paths of the sealed fields")
    r.add_argument("--batch", type=int, default=100)
    r.add_argument("--pause", type=float, default=0.05, help="seconds between batches")
    r.add_argument("--plaintext", action="store_true",
                   help="also seal documents written before sealing (no kid): reads the whole collection")
    g = sub.add_parser("genkey", help="print a new key as kid:<base64> for PARLEY_CRYPTO_KEYS")
    g.add_argument("--kid", required=True)
    args = parser.parse_args(argv)
    if args.command == "genkey":
        if not KID_PATTERN.match(args.kid):
            parser.error("--kid must be [A-Za-z0-9_.-]{1,32}")
        print(f"{args.kid}:{new_key()}")  # noqa: T201 - the command's output
        return 0
    return asyncio.run(_rotate_command(args))


async def _rotate_command(args: argparse.Namespace) -> int:
    from shared.mongo import make_client
    from shared.settings import MongoSettings

    keyring = default_keyring()
    fields = [f.strip() for f in args.fields.split(",") if f.strip()]
    client = make_client(MongoSettings())
    try:
        report = await rotate(client[args.db][args.collection], keyring=keyring, fields=fields,
                              batch_size=args.batch, pause_s=args.pause, plaintext=args.plaintext)
    finally:
        await client.close()
    print(json.dumps({"active": keyring.active, **report.__dict__}))  # noqa: T201
    return 1 if report.failed else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(main())
