"""Pseudonymised user ids and erasure records.

With ``privacy.pseudonymize: true`` every user id is replaced, where it is read (train's
interactions, ``avrec events add``, the server's requests and events, ``recommend --user``),
by ``HMAC-SHA256(key, id)`` as 64 hex characters. The key lives in ``privacy.key_file`` and
nowhere else, so no artifact or event store holds a raw id, and without the key the stored
ids cannot be linked back to accounts by hashing a list of candidates (unlike a plain hash).
The same key gives the same pseudonym in every stage, so events, models and requests agree.

Erasure (``avrec forget``, ``DELETE /users/{id}``) records the *erased id's* digest
(SHA-256 of the id as stored, i.e. of the pseudonym when pseudonymising) so that train can
drop the user from interaction files written before the request and the server can stop
serving the user's trained vector until the next train.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Callable

from .errors import ConfigError

MIN_KEY_BYTES = 16
KEYGEN = "python -c 'import secrets; print(secrets.token_hex(32))' > avrec.key && chmod 600 avrec.key"

Pseudonymizer = Callable[[str], str]


def identity(user_id: str) -> str:
    return str(user_id)


def read_key(path: str | Path) -> bytes:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"privacy.key_file {str(path)!r} does not exist; create one with: {KEYGEN}")
    key = p.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"privacy.key_file {str(path)!r} holds {len(key)} bytes; a key needs at least "
                          f"{MIN_KEY_BYTES} random bytes ({KEYGEN})")
    return key


def pseudonymizer(cfg) -> Pseudonymizer:
    """The id mapping the config asks for: HMAC-SHA256 hex with ``privacy.pseudonymize``,
    the identity otherwise."""
    pc = getattr(cfg, "privacy", None)
    if pc is None or not pc.pseudonymize:
        return identity
    if not pc.key_file:
        raise ConfigError(f"privacy.pseudonymize is true but privacy.key_file is not set; create a key ({KEYGEN}) "
                          "and pass --set privacy.key_file=avrec.key")
    key = read_key(pc.key_file)

    def pid(user_id: str) -> str:
        return hmac.new(key, str(user_id).encode("utf-8"), hashlib.sha256).hexdigest()

    return pid


def erasure_digest(stored_id: str) -> str:
    """What an erasure record keeps of a user: SHA-256 of the id as stored."""
    return hashlib.sha256(str(stored_id).encode("utf-8")).hexdigest()
