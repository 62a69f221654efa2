"""PKCS#11 libraries, logins and sessions, shared by every crypto token and key handle of a process.

Why one connection per *slot* and not per token row: PKCS#11 keeps the login state per application
(process) and token. A second ``C_Login`` fails with CKR_USER_ALREADY_LOGGED_IN, and ``C_Logout`` on
any session logs out all of them. So a process holds one :class:`SlotConnection` per (library, slot):
one read-write session, logged in as the user, that serves every operation on that slot, with the
key objects found in it cached (python-pkcs11 binds a key object to its session).

Why one call at a time per library: python-pkcs11 initializes modules with ``C_Initialize(NULL)``,
which by the standard promises the module that the application will not call it from several
threads at once, and SoftHSM2 then runs without locks (concurrent signatures fail with
CKR_GENERAL_ERROR). Every call into a module therefore holds its :attr:`Library.call_lock`; processes,
not threads, give parallelism (gunicorn and Celery workers each have their own connections).

Each loaded library has an *epoch*, bumped whenever it is initialized again; a connection made in an
older epoch is dead (its handles mean nothing, and closing them could close someone else's new
session), so it is dropped without being touched.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pkcs11
from pkcs11 import Mechanism
from pkcs11 import exceptions as p11

from ...errors import AuthenticationCodeError, CryptoTokenError

logger = logging.getLogger("cryptotokens.pkcs11")

# Return codes that mean "the connection to the HSM is gone" — PKCS#11 has no standard way to say it,
# so this is EJBCA's heuristic. UserNotLoggedIn is here too: a login lost with the connection.
_CONNECTION_ERRORS = (p11.DeviceRemoved, p11.DeviceError, p11.SessionHandleInvalid, p11.SessionClosed,
                      p11.TokenNotPresent, p11.GeneralError, p11.UserNotLoggedIn)
# A cached key object that no longer names a key (the key was removed, or the login changed under it).
STALE_OBJECT_ERRORS = (p11.ObjectHandleInvalid, p11.KeyHandleInvalid)

KeyRef = tuple[str, bytes | None]  # (label, CKA_ID or None for keys made elsewhere)
Capabilities = tuple[frozenset[int], dict[int, tuple[int, int]]]


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the library lost its device (see the heuristic above)."""
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    # CKR_CRYPTOKI_NOT_INITIALIZED has no class of its own in python-pkcs11: only the message tells it.
    return type(exc) is p11.PKCS11Error and "not initialized" in str(exc)


def describe_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_connections: dict[tuple[str, int], SlotConnection] = {}
_libraries: dict[str, Library] = {}
_capabilities: dict[tuple[str, int], Capabilities] = {}
# Guards the registries above. Always taken *after* a library's call_lock, never before it.
_registry_lock = threading.RLock()


class Library:
    """One PKCS#11 module of this process (python-pkcs11 loads a module once per path)."""

    def __init__(self, name: str, path: str):
        self.name = name
        self.path = path
        self.epoch = 0
        # Serializes every call into the module (see the module docstring); re-entrant so an operation
        # can connect, log in again or re-initialize while holding it.
        self.call_lock = threading.RLock()
        self._lib: Any = None

    def lib(self) -> Any:
        """The loaded, initialized module (the caller holds :attr:`call_lock`)."""
        lib = self._lib
        if lib is not None and lib.initialized:
            return lib
        was_loaded = lib is not None
        try:
            # Loads the module on first use, and calls C_Initialize again when it was finalized.
            lib = pkcs11.lib(self.path)
        except (p11.PKCS11Error, OSError, RuntimeError) as exc:
            raise CryptoTokenError(f"PKCS#11 library '{self.name}' ({self.path}) cannot be loaded: "
                                   f"{describe_error(exc)}.") from None
        if was_loaded:
            self._new_epoch()  # it was finalized and initialized again: every old session is gone
        self._lib = lib
        return lib

    def reinitialize(self, seen_epoch: int) -> None:
        """C_Finalize and C_Initialize, unless another thread already did since ``seen_epoch``."""
        with self.call_lock:
            if self.epoch != seen_epoch:
                return
            lib = self.lib()
            logger.warning("Re-initializing PKCS#11 library %s (%s)", self.name, self.path)
            try:
                lib.finalize()
            except p11.PKCS11Error:
                # Already finalized behind python-pkcs11's back (its flag is now cleared): initialize below.
                logger.debug("C_Finalize failed during re-initialization", exc_info=True)
            try:
                lib.initialize()
            except p11.PKCS11Error as exc:
                raise CryptoTokenError(f"PKCS#11 library '{self.name}' cannot be initialized again: "
                                       f"{describe_error(exc)}.") from None
            self._new_epoch()

    def _new_epoch(self) -> None:
        with _registry_lock:
            self.epoch += 1
            for key, conn in list(_connections.items()):
                if conn.library is self:
                    conn.closed = True  # not closed on the device: its handles died with the old epoch
                    del _connections[key]
            for key in [k for k in _capabilities if k[0] == self.path]:
                del _capabilities[key]


class SlotConnection:
    """The login, session and key objects of one slot in this process (see the module docstring).

    Every method expects the caller to hold ``library.call_lock``.
    """

    def __init__(self, library: Library, slot_id: int, pin: str, who: str):
        self.library = library
        self.epoch = library.epoch
        self.slot_id = slot_id
        self.token = token_in_slot(library, slot_id)
        self.mechanisms = slot_capabilities(library, slot_id)[0]
        self.closed = False
        self.session = login(self.token, pin, who)
        self.pin = pin
        self.keys: dict[KeyRef, tuple[Any, bool]] = {}  # key objects found here, and whether each needs the PIN

    def usable(self) -> bool:
        return not self.closed and self.epoch == self.library.epoch

    def forget_key(self, ref: KeyRef) -> None:
        """Drop a removed key from the cache (a reused object handle must not find another key)."""
        self.keys.pop(ref, None)
        self.keys.pop((ref[0], None), None)

    def relogin(self, pin: str, who: str) -> None:
        """Log in with another PIN (which checks it); on a wrong PIN the previous login is restored.

        PKCS#11 cannot check a second PIN while logged in, so this logs out and in again.
        """
        self.keys.clear()  # private objects may get new handles under a new login
        try:
            self.session.close()  # C_Logout and C_CloseSession
            self.session = login(self.token, pin, who)
            self.pin = pin
            return
        except AuthenticationCodeError as exc:
            refused = exc
        except (p11.PKCS11Error, CryptoTokenError) as exc:
            self.discard()  # the slot is in an unknown state: the next use connects again
            raise CryptoTokenError(f"Logging in again to PKCS#11 token '{self.token.label}' failed: "
                                   f"{describe_error(exc)}.") from exc
        try:
            self.session = login(self.token, self.pin, "the previous login")
        except (p11.PKCS11Error, CryptoTokenError):
            logger.warning("PKCS#11 token '%s': the previous login could not be restored", self.token.label)
            self.discard()  # nothing is logged in now: the next use connects afresh
        raise refused

    def discard(self) -> None:
        """Drop this connection (after a failure): log out and close, so the next use logs in afresh."""
        with _registry_lock:
            if _connections.get((self.library.path, self.slot_id)) is self:
                del _connections[(self.library.path, self.slot_id)]
            if self.closed:
                return
            self.closed = True
        self.keys.clear()
        if self.epoch != self.library.epoch:
            return  # the library was initialized again: these handles are meaningless now
        try:
            self.session.close()
        except p11.PKCS11Error:
            logger.debug("closing the PKCS#11 session of a dropped connection failed", exc_info=True)


def library(name: str, path: str) -> Library:
    """The process-wide :class:`Library` for ``path``."""
    lib = _libraries.get(path)
    if lib is None:
        with _registry_lock:
            lib = _libraries.setdefault(path, Library(name, path))
    if lib.name != name and name != path:
        lib.name = name  # first met by path alone (reinitialize_library): take the configured name for messages
    return lib


def connect(lib: Library, slot_id: int, pin: str, who: str) -> SlotConnection:
    """The logged-in connection to ``slot_id``: made, or logged in again with ``pin``, when needed.

    The caller holds ``lib.call_lock``.
    """
    key = (lib.path, slot_id)
    conn = _connections.get(key)
    if conn is None or not conn.usable():
        conn = SlotConnection(lib, slot_id, pin, who)
        with _registry_lock:
            _connections[key] = conn
    elif conn.pin != pin:
        conn.relogin(pin, who)
    return conn


def slot_capabilities(lib: Library, slot_id: int) -> Capabilities:
    """The mechanisms a slot offers and the (min, max) key bits of its key-pair generation mechanisms.

    Needs no login; cached per library epoch (a re-initialized module may be a different device).
    The caller holds ``lib.call_lock``.
    """
    key = (lib.path, slot_id)
    found = _capabilities.get(key)
    if found is None:
        slot = token_in_slot(lib, slot_id).slot
        mechanisms = frozenset(int(m) for m in slot.get_mechanisms())
        sizes = {}
        for mech in (Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.EC_KEY_PAIR_GEN, Mechanism.EC_EDWARDS_KEY_PAIR_GEN):
            if mech in mechanisms:
                info = slot.get_mechanism_info(mech)
                sizes[int(mech)] = (info.min_key_length, info.max_key_length)
        found = _capabilities[key] = (mechanisms, sizes)
    return found


def token_in_slot(lib: Library, slot_id: int) -> Any:
    for slot in lib.lib().get_slots(token_present=True):
        if slot.slot_id == slot_id:
            return slot.get_token()
    raise CryptoTokenError(f"PKCS#11 library '{lib.name}' has no token in slot {slot_id} any more.")


def login(token: Any, pin: str, who: str) -> Any:
    """Open a read-write session logged in as the user, mapping PIN failures to clear errors."""
    locked = (f"The user PIN of PKCS#11 token '{token.label}' ({who}) is locked: the security officer must "
              "unlock it.")
    if token.flags & pkcs11.TokenFlag.USER_PIN_LOCKED:
        raise AuthenticationCodeError(locked)
    try:
        return token.open(user_pin=pin, rw=True)
    except (p11.PinIncorrect, p11.PinLenRange, p11.PinInvalid):
        raise AuthenticationCodeError(f"Wrong PIN for PKCS#11 token '{token.label}' ({who}).") from None
    except p11.PinLocked:
        raise AuthenticationCodeError(locked) from None
    except p11.PinExpired:
        raise AuthenticationCodeError(f"The user PIN of PKCS#11 token '{token.label}' has expired: set a new one "
                                      "on the HSM first.") from None
    except p11.UserPinNotInitialized:
        raise CryptoTokenError(f"PKCS#11 token '{token.label}' has no user PIN yet: initialize it on the HSM "
                               "first.") from None
    except p11.UserAlreadyLoggedIn:
        raise CryptoTokenError(f"This process is already logged in to PKCS#11 token '{token.label}' outside the "
                               "crypto token layer; close that session first.") from None


def clear() -> None:
    """Log out and close every connection of this process (tests, shutdown)."""
    for conn in list(_connections.values()):
        with conn.library.call_lock:
            conn.discard()
    with _registry_lock:
        _connections.clear()
        _capabilities.clear()


def stats() -> dict[tuple[str, int], dict[str, Any]]:
    """Per (library path, slot id) connection: its token label and the key objects it has found."""
    return {key: {"token": conn.token.label, "keys": len(conn.keys)} for key, conn in _connections.items()}
