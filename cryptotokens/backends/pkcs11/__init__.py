"""PKCS#11 HSM slots through python-pkcs11, and the "NG" variant that re-initializes the library.

Token properties (non-secret, in ``CryptoToken.properties``):

``library``
    A name from ``settings.PKCS11_LIBRARIES`` (resolved to the module's path at use).
``reference_type`` / ``reference``
    EJBCA's "Id, Index or Label": ``SLOT_ID`` (the PKCS#11 slot id), ``SLOT_INDEX`` (position in the
    list of slots holding a token) or ``SLOT_LABEL`` (the token's label).
``attribute_file`` (optional)
    A name from ``settings.PKCS11_ATTRIBUTE_FILES``: extra attributes for key generation.

The authentication code is the slot's user PIN.

Attribute files
    One attribute per line, ``#`` starts a comment. ``CKA_NAME = value`` applies to the private key,
    ``public.CKA_NAME = value`` to the public key (``private.`` may be written too). The value is read
    as the attribute's type: ``true``/``false``, an integer (``0x`` hex allowed), hex bytes, text, or a
    date ``YYYY-MM-DD``. CKA_CLASS, CKA_KEY_TYPE, CKA_LABEL, CKA_ID and CKA_TOKEN are the backend's
    own. The file's lines win over the defaults, so an HSM that needs ``CKA_PRIVATE = false`` or a
    different sensitivity can have it; for example::

        # Our HSM's policy: public key objects are private too, keys cannot be copied
        public.CKA_PRIVATE = true
        CKA_COPYABLE = false

Keys are generated on the token (CKA_TOKEN true) with label = the alias and a random CKA_ID (stored as
the key pair's ``private_data``); private keys are sensitive and not extractable. EC and Edwards keys
only sign/verify; RSA keys also encrypt/decrypt, as EJBCA's do (SCEP requests are encrypted to the CA's
key), unless an attribute file says ``CKA_DECRYPT = false``. Key handles subclass ``cryptography``'s
private-key classes (:mod:`..keys`) and never export; RSA handles ``decrypt`` with CKM_RSA_PKCS or
CKM_RSA_PKCS_OAEP, and refuse clearly for keys without CKA_DECRYPT (e.g. made before RSA keys could
decrypt). Sessions are pooled per process and slot (:mod:`.sessions`).

On an operation that fails with a connection-type error, the plain backend drops the slot's
connection and reports the failure (the next call connects afresh); the NG backend re-initializes
the library (C_Finalize/C_Initialize), logs in again and retries the operation once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.types import DecryptMixin

from ...errors import CryptoTokenError, KeyPairExistsError, KeyPairNotFoundError, UnsupportedKeySpecError
from ..base import BackendParameter, CryptoTokenBackend, DeviceKey, GeneratedKeyPair, KeySpec, registry
from ..keys import DecryptRequest, SignatureRequest, device_key_for
from ..remote_keys import CryptoTokenUnavailableError
from . import inventory, mechanisms, sessions
from .config import SLOT_ID, SLOT_INDEX, SlotConfig, parameters
from .sessions import KeyRef

if TYPE_CHECKING:
    from ...models import CryptoTokenKeyPair

logger = logging.getLogger("cryptotokens.pkcs11")
T = TypeVar("T")

# Errors that mean the HSM cannot make this key (size, curve or template refused).
_SPEC_REFUSALS = (p11.KeySizeRange, p11.DomainParamsInvalid, p11.MechanismInvalid, p11.MechanismParamInvalid,
                  p11.TemplateInconsistent, p11.AttributeValueInvalid, p11.AttributeTypeInvalid)
# What the standard says a module answers when a ciphertext does not decrypt (wrong key, corrupted, bad padding).
_UNDECRYPTABLE = (p11.EncryptedDataInvalid, p11.EncryptedDataLenRange)
# A module that cannot do the decryption as asked (e.g. SoftHSM2 2.6 does OAEP with SHA-1 only).
_DECRYPT_REFUSALS = (p11.ArgumentsBad, p11.MechanismInvalid, p11.MechanismParamInvalid)


class SlotAccess:
    """One token row's way into its slot: where it is, the PIN, and whether to re-initialize on failure.

    Cached per (library path, slot reference, token row and version), so every handle and call of a
    token version shares the resolved slot and its pooled connection, and a version bump (activation,
    deactivation, remapping elsewhere) makes the next use resolve and log in afresh.
    """

    def __init__(self, config: SlotConfig, pin: str, who: str, reinitialize: bool):
        self.config = config
        self.library = sessions.library(config.library_name, config.library_path)
        self.pin = pin
        self.who = who
        self.reinitialize = reinitialize
        self._conn: sessions.SlotConnection | None = None

    def slot_id(self) -> int:
        """Resolve the reference to a slot id (slot ids may change when a module re-initializes)."""
        cfg = self.config
        slots = self.library.lib().get_slots(token_present=True)
        if cfg.reference_type == SLOT_ID:
            if any(slot.slot_id == int(cfg.reference) for slot in slots):
                return int(cfg.reference)
            raise CryptoTokenError(f"No PKCS#11 slot with id {cfg.reference} holding a token in library "
                                   f"'{cfg.library_name}'.")
        if cfg.reference_type == SLOT_INDEX:
            if int(cfg.reference) < len(slots):
                return slots[int(cfg.reference)].slot_id
            raise CryptoTokenError(f"No PKCS#11 slot at index {cfg.reference}: library '{cfg.library_name}' has "
                                   f"{len(slots)} slot(s) holding a token.")
        found = []
        for slot in slots:
            try:
                if slot.get_token().label == cfg.reference:
                    found.append(slot.slot_id)
            except (p11.TokenNotPresent, p11.TokenNotRecognised):
                continue
        if len(found) == 1:
            return found[0]
        if found:
            raise CryptoTokenError(f"More than one PKCS#11 token is labelled '{cfg.reference}' in library "
                                   f"'{cfg.library_name}' (slots {', '.join(map(str, found))}): refer to it by id.")
        raise CryptoTokenError(f"No PKCS#11 token labelled '{cfg.reference}' in library '{cfg.library_name}'.")

    def connection(self) -> sessions.SlotConnection:
        conn = self._conn
        if conn is not None and not conn.closed and conn.epoch == self.library.epoch and conn.pin == self.pin:
            return conn
        conn = self._conn = sessions.connect(self.library, self.slot_id(), self.pin, self.who)  # under call_lock
        return conn

    def probe(self, query: Callable[[], T]) -> T:
        """Run a query that needs no login (slot lookup, mechanism list) under the same failure policy."""
        with self.library.call_lock:
            retried = False
            while True:
                epoch = self.library.epoch
                try:
                    return query()
                except p11.PKCS11Error as exc:
                    if retried or not self.reinitialize or not sessions.is_connection_error(exc):
                        raise CryptoTokenUnavailableError(f"The HSM of {self.who} cannot be queried: "
                                                          f"{sessions.describe_error(exc)}.") from None
                    retried = True
                    self.library.reinitialize(epoch)

    def run(self, operation: Callable[[sessions.SlotConnection], T]) -> T:
        """Run ``operation`` on the slot's logged-in session, holding the library's call lock.

        On a connection failure the NG variant re-initializes the library, logs in again and retries
        once; the plain one drops the connection (so the next call starts afresh) and raises.
        """
        with self.library.call_lock:
            retried = False
            while True:
                conn: sessions.SlotConnection | None = None
                try:
                    conn = self.connection()
                    return operation(conn)
                except p11.PKCS11Error as exc:
                    if not sessions.is_connection_error(exc):
                        raise
                    epoch = conn.epoch if conn is not None else self.library.epoch
                    if conn is not None:
                        conn.discard()
                    self._conn = None
                    if retried or not self.reinitialize:
                        logger.warning("%s: %s; the session was dropped", self.who, sessions.describe_error(exc))
                        raise CryptoTokenUnavailableError(
                            f"The HSM connection of {self.who} failed ({sessions.describe_error(exc)}); its "
                            "session was dropped and the next operation connects again.") from None
                    retried = True
                    logger.warning("%s: %s; re-initializing the PKCS#11 library and retrying once", self.who,
                                   sessions.describe_error(exc))
                    self.library.reinitialize(epoch)


def find_private_key(conn: sessions.SlotConnection, ref: KeyRef, who: str) -> tuple[Any, bool]:
    """The private key object ``ref`` names, and whether each use needs the PIN again (CKA_ALWAYS_AUTHENTICATE)."""
    hit = conn.keys.get(ref)
    if hit is not None:
        return hit
    template: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: ref[0]}
    if ref[1]:
        template[Attribute.ID] = ref[1]
    found = list(conn.session.get_objects(template))
    if not found:
        raise KeyPairNotFoundError(f"Key '{ref[0]}' is not on the HSM slot of {who}.")
    if len(found) > 1:
        raise CryptoTokenError(f"More than one private key is labelled '{ref[0]}' on the HSM slot of {who}.")
    key = found[0]
    try:
        needs_pin = bool(key[Attribute.ALWAYS_AUTHENTICATE])
    except p11.PKCS11Error:  # not every module knows the attribute
        needs_pin = False
    conn.keys[ref] = hit = (key, needs_pin)
    return hit


class _Signer:
    """The signer behind a key handle: a :class:`SignatureRequest` in, the signature out."""

    __slots__ = ("access", "ref", "plans")

    def __init__(self, access: SlotAccess, ref: KeyRef):
        self.access = access
        self.ref = ref
        self.plans: dict[tuple, mechanisms.SignPlan] = {}

    def __call__(self, request: SignatureRequest) -> bytes:
        access, ref = self.access, self.ref
        # Hash objects compare by identity, so their names make the key.
        key = (request.scheme, request.hash and request.hash.name, request.prehashed, request.salt_length,
               request.mgf_hash and request.mgf_hash.name)
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = access.run(lambda conn: mechanisms.plan_for(request, conn.mechanisms))
        # Hashing and the DER conversion happen outside the library's call lock: other threads may use
        # the module meanwhile.
        payload = plan.payload_of(request)
        mechanism, param = plan.mechanism, plan.param

        def sign(conn: sessions.SlotConnection) -> bytes:
            obj, needs_pin = conn.keys.get(ref) or find_private_key(conn, ref, access.who)
            try:
                return obj.sign(payload, mechanism=mechanism, mechanism_param=param,
                                pin=access.pin if needs_pin else None)
            except sessions.STALE_OBJECT_ERRORS:
                # The cached object went stale (key replaced, login renewed): look it up once more.
                conn.keys.pop(ref, None)
                obj, needs_pin = find_private_key(conn, ref, access.who)
                return obj.sign(payload, mechanism=mechanism, mechanism_param=param,
                                pin=access.pin if needs_pin else None)

        try:
            signature = access.run(sign)
        except p11.PKCS11Error as exc:
            raise CryptoTokenError(f"The HSM refused to sign with key '{ref[0]}' of {access.who}: "
                                   f"{sessions.describe_error(exc)}.") from None
        return plan.finish(signature)


class _Decryptor:
    """The decryptor behind an RSA key handle: a :class:`DecryptRequest` in, the plaintext out.

    A ciphertext that does not decrypt raises ValueError (as ``cryptography`` does) and leaves the session
    alone: SoftHSM2 reports it as CKR_GENERAL_ERROR, which alone would read as a lost HSM (and make the NG
    backend re-initialize the library for every bad SCEP message). So after a general error the key is
    read once more: if the HSM answers, the ciphertext was at fault.
    """

    __slots__ = ("access", "ref")

    def __init__(self, access: SlotAccess, ref: KeyRef):
        self.access = access
        self.ref = ref

    def _not_allowed(self) -> CryptoTokenError:
        return CryptoTokenError(f"Key '{self.ref[0]}' of {self.access.who} is not allowed to decrypt (its "
                                "CKA_DECRYPT is false, e.g. a sign-only key made before RSA keys could decrypt): "
                                "generate a new RSA key for decryption.")

    def _decrypt(self, obj: Any, needs_pin: bool, request: DecryptRequest, mechanism: Any, param: Any) -> bytes:
        if not isinstance(obj, DecryptMixin):  # python-pkcs11 adds the mixin only when CKA_DECRYPT is true
            raise self._not_allowed()
        try:
            return obj.decrypt(request.ciphertext, mechanism=mechanism, mechanism_param=param,
                               pin=self.access.pin if needs_pin else None)
        except _UNDECRYPTABLE:
            raise ValueError("Decryption failed") from None
        except p11.GeneralError:
            try:
                obj[Attribute.KEY_TYPE]
                answers = True
            except p11.PKCS11Error:
                answers = False
            if not answers:
                raise  # the HSM is gone too: the original error goes to the connection failure policy
            raise ValueError("Decryption failed") from None
        except p11.PKCS11Error as exc:
            if type(exc) is p11.PKCS11Error and str(exc).endswith(" 0x68"):  # CKR_KEY_FUNCTION_NOT_PERMITTED
                raise self._not_allowed() from None  # (python-pkcs11 has no class for it)
            raise

    def __call__(self, request: DecryptRequest) -> bytes:
        access, ref = self.access, self.ref

        def decrypt(conn: sessions.SlotConnection) -> bytes:
            mechanism, param = mechanisms.decrypt_mechanism(request, conn.mechanisms)
            obj, needs_pin = conn.keys.get(ref) or find_private_key(conn, ref, access.who)
            try:
                return self._decrypt(obj, needs_pin, request, mechanism, param)
            except sessions.STALE_OBJECT_ERRORS:
                conn.keys.pop(ref, None)  # the cached object went stale: look it up once more
                obj, needs_pin = find_private_key(conn, ref, access.who)
                return self._decrypt(obj, needs_pin, request, mechanism, param)

        try:
            return access.run(decrypt)
        except _DECRYPT_REFUSALS as exc:
            raise UnsupportedKeySpecError(f"The HSM of {access.who} cannot decrypt {request.describe()} with key "
                                          f"'{ref[0]}': {sessions.describe_error(exc)}.") from None
        except p11.PKCS11Error as exc:
            raise CryptoTokenError(f"The HSM refused to decrypt with key '{ref[0]}' of {access.who}: "
                                   f"{sessions.describe_error(exc)}.") from None


class _Parameters:
    """Declared parameters, built when read: their choices follow the settings of the moment."""

    def __get__(self, instance: object, owner: type) -> tuple[BackendParameter, ...]:
        return parameters()


_accesses: dict[tuple, SlotAccess] = {}
_accesses_lock = threading.Lock()


@registry.register
class PKCS11CryptoTokenBackend(CryptoTokenBackend):
    """A PKCS#11 HSM slot (EJBCA's PKCS11CryptoToken): fails clearly when the HSM connection drops."""

    type_name = "PKCS11CryptoToken"
    label = "PKCS#11 HSM slot"
    parameters = _Parameters()  # type: ignore[assignment]
    reinitialize_on_failure: ClassVar[bool] = False

    @property
    def who(self) -> str:
        return f"crypto token '{self.token.name}'"

    def _config(self) -> SlotConfig:
        return SlotConfig.from_properties(self.token.properties)

    def _access(self, pin: str) -> SlotAccess:
        config = self._config()
        if self.token.pk is None:  # not saved yet (initialize): nothing to share
            return SlotAccess(config, pin, self.who, self.reinitialize_on_failure)
        key = (config.library_path, config.reference_type, config.reference, self.token.pk, self.token.version,
               self.reinitialize_on_failure)
        access = _accesses.get(key)
        if access is None or access.pin != pin or access.who != self.who:
            access = SlotAccess(config, pin, self.who, self.reinitialize_on_failure)
            with _accesses_lock:
                for old in [k for k in _accesses if k[3] == self.token.pk]:
                    del _accesses[old]  # older versions of this token row
                _accesses[key] = access
        return access

    # -- the backend interface ---------------------------------------------------------------------------
    def initialize(self, auth_code: str) -> None:
        """Resolve library and slot, read the attribute file and log in, before the token row is saved."""
        config = self._config()
        config.key_templates()  # a broken attribute file is reported now, not at the first key generation
        self.check_auth_code(auth_code)
        self.token.properties = {**self.token.properties, **config.as_properties()}

    def validate_properties(self, auth_code: str) -> None:
        """Called by services.edit_token after a remapping: the new slot must exist and take the PIN."""
        self.initialize(auth_code)

    def check_auth_code(self, auth_code: str) -> None:
        """Log in with ``auth_code``. Where this process is logged in to the slot with another PIN, it logs
        in again (checking the new PIN) and restores the previous login when the PIN is wrong."""
        access = SlotAccess(self._config(), auth_code, self.who, self.reinitialize_on_failure)
        access.run(lambda conn: None)

    def device_identity(self) -> str | None:
        """The token the slot reference resolves to (module, manufacturer, serial number, label): two crypto tokens
        that resolve to the same one would share one slot's keys under two names."""
        access = SlotAccess(self._config(), "", self.who, self.reinitialize_on_failure)

        def read() -> str | None:
            slot_id = access.slot_id()
            for slot in access.library.lib().get_slots(token_present=True):
                if slot.slot_id == slot_id:
                    token = slot.get_token()
                    return f"{access.config.library_path}|{token.manufacturer_id}|{token.serial!r}|{token.label}"
            return None

        return access.probe(read)

    def describe_device(self) -> str:
        return self._config().describe()

    def list_device_keys(self, auth_code: str) -> list[DeviceKey]:
        """The slot's private keys, read from the HSM (keys made by other tools or installations included)."""
        access = self._access(auth_code)
        try:
            return access.run(lambda conn: inventory.device_keys(conn.session))
        except p11.PKCS11Error as exc:
            raise CryptoTokenError(f"Cannot list the keys on the HSM slot of {self.who}: "
                                   f"{sessions.describe_error(exc)}.") from None

    def supported(self, spec: KeySpec) -> None:
        access = SlotAccess(self._config(), "", self.who, self.reinitialize_on_failure)
        mechs, sizes = access.probe(lambda: sessions.slot_capabilities(access.library, access.slot_id()))
        mechanisms.check_supported(spec, mechs, sizes)

    def generate_key_pair(self, alias: str, spec: KeySpec, auth_code: str) -> GeneratedKeyPair:
        self.supported(spec)
        access = self._access(auth_code)
        private_extra, public_extra = access.config.key_templates()
        key_id = os.urandom(20)

        def generate(conn: sessions.SlotConnection):
            # The HSM, not only the database, decides whether the alias is free: keys made by other
            # installations or tools share the slot.
            if list(conn.session.get_objects({Attribute.LABEL: alias})):
                raise KeyPairExistsError(f"The HSM slot of {self.who} already holds an object labelled '{alias}'.")
            return mechanisms.generate(conn.session, spec, alias, key_id, private_extra, public_extra)

        try:
            public_key = access.run(generate)
        except _SPEC_REFUSALS as exc:
            raise UnsupportedKeySpecError(f"The HSM of {self.who} refused to generate a {spec} key: "
                                          f"{sessions.describe_error(exc)}.") from None
        except p11.PKCS11Error as exc:
            if "0x140" in str(exc):  # CKR_CURVE_NOT_SUPPORTED (python-pkcs11 has no class for it)
                raise UnsupportedKeySpecError(f"The HSM of {self.who} does not support the curve {spec}.") from None
            raise CryptoTokenError(f"The HSM of {self.who} failed to generate a {spec} key: "
                                   f"{sessions.describe_error(exc)}.") from None
        return GeneratedKeyPair(public_key=public_key, private_data=key_id)

    def load_private_key(self, entry: CryptoTokenKeyPair, auth_code: str):
        """A handle for ``entry``'s key, after checking the key is on the HSM and matches the stored public key."""
        access = self._access(auth_code)
        public_key = load_der_public_key(bytes(entry.public_key_der))
        ref: KeyRef = (entry.alias, bytes(entry.private_data) if entry.private_data else None)

        def check(conn: sessions.SlotConnection) -> None:
            obj, _ = find_private_key(conn, ref, self.who)
            if not mechanisms.key_matches(obj, public_key):
                raise CryptoTokenError(f"Key '{entry.alias}' on the HSM slot of {self.who} does not match the "
                                       "public key stored for it.")

        try:
            access.run(check)
        except p11.PKCS11Error as exc:
            raise CryptoTokenError(f"Cannot read key '{entry.alias}' of {self.who}: "
                                   f"{sessions.describe_error(exc)}.") from None
        return device_key_for(public_key, _Signer(access, ref), f"'{entry.alias}' on PKCS#11 {self.who}",
                              _Decryptor(access, ref))

    def remove_key_pair(self, entry: CryptoTokenKeyPair, auth_code: str) -> None:
        """Destroy every object with the key pair's label (and CKA_ID, where the key was made here)."""
        access = self._access(auth_code)
        ref: KeyRef = (entry.alias, bytes(entry.private_data) if entry.private_data else None)
        template: dict[Attribute, Any] = {Attribute.LABEL: entry.alias}
        if ref[1]:
            template[Attribute.ID] = ref[1]

        def remove(conn: sessions.SlotConnection) -> int:
            objects = list(conn.session.get_objects(template))
            for obj in objects:
                obj.destroy()
            conn.forget_key(ref)
            return len(objects)

        try:
            removed = access.run(remove)
        except p11.PKCS11Error as exc:
            raise CryptoTokenError(f"The HSM of {self.who} refused to remove key '{entry.alias}': "
                                   f"{sessions.describe_error(exc)}.") from None
        if not removed:
            logger.info("%s: key '%s' was already gone from the HSM", self.who, entry.alias)


@registry.register
class Pkcs11NgCryptoTokenBackend(PKCS11CryptoTokenBackend):
    """PKCS#11 NG: re-initializes the library after a connection failure and retries the operation once
    (for network HSMs whose libraries do not reconnect by themselves)."""

    type_name = "Pkcs11NgCryptoToken"
    label = "PKCS#11 NG"
    reinitialize_on_failure = True


def clear_sessions() -> None:
    """Log out and close every pooled connection of this process (tests, shutdown)."""
    with _accesses_lock:
        _accesses.clear()
    sessions.clear()


def reinitialize_library(path: str) -> None:
    """C_Finalize and C_Initialize a loaded module (e.g. after another process added a token to SoftHSM2)."""
    lib = sessions.library(path, path)
    lib.reinitialize(lib.epoch)
