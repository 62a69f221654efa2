"""PKCS#11 HSM slots through python-pkcs11, and the "NG" variant that re-initializes the library.

Token properties (non-secret): ``library`` (a name from settings.PKCS11_LIBRARIES), ``reference_type``
(SLOT_ID, SLOT_INDEX or SLOT_LABEL — EJBCA's Id, Index or Label), ``reference`` and optionally
``attribute_file`` (a name from settings.PKCS11_ATTRIBUTE_FILES). The authentication code is the slot's
user PIN.

Attribute files hold one ``CKA_NAME=value`` per line (``#`` starts a comment; values true/false or an
integer), applied to the private key template at generation, e.g. ``CKA_EXTRACTABLE=false``.

One logged-in session per process and token (keyed on the token row's version, so a deactivation
elsewhere retires it) serves every signature. Keys never leave the HSM: private keys are generated
sensitive and not extractable, and the handles refuse to export.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pkcs11
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from django.conf import settings
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from ..errors import AuthenticationCodeError, CryptoTokenError, KeyPairExistsError, UnsupportedKeySpecError
from .base import BackendParameter, CryptoTokenBackend, GeneratedKeyPair, KeySpec, registry
from .remote_keys import (
    ClientPool,
    CryptoTokenUnavailableError,
    RemoteECPrivateKey,
    RemoteRSAPrivateKey,
    SignRequest,
    ecdsa_raw_to_der,
)

if TYPE_CHECKING:
    from ..models import CryptoTokenKeyPair

logger = logging.getLogger("cryptotokens.pkcs11")

REF_SLOT_ID, REF_SLOT_INDEX, REF_SLOT_LABEL = "SLOT_ID", "SLOT_INDEX", "SLOT_LABEL"
CURVE_OIDS = {
    "secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34", "secp521r1": "1.3.132.0.35",
    "brainpoolP256r1": "1.3.36.3.3.2.8.1.1.7", "brainpoolP384r1": "1.3.36.3.3.2.8.1.1.11",
    "brainpoolP512r1": "1.3.36.3.3.2.8.1.1.13",
}
_HASH_MECH = {
    "sha256": (Mechanism.SHA256_RSA_PKCS, Mechanism.SHA256_RSA_PKCS_PSS, Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384_RSA_PKCS, Mechanism.SHA384_RSA_PKCS_PSS, Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512_RSA_PKCS, Mechanism.SHA512_RSA_PKCS_PSS, Mechanism.SHA512, MGF.SHA512),
}
# DER DigestInfo prefixes (RFC 8017 9.2) for signing a precomputed digest with CKM_RSA_PKCS.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
# Error codes that mean "the connection to the HSM is gone" (there is no standard way to tell).
CONNECTION_ERRORS = (p11.DeviceRemoved, p11.DeviceError, p11.SessionHandleInvalid, p11.SessionClosed,
                     p11.TokenNotPresent, p11.GeneralError, p11.ObjectHandleInvalid, p11.KeyHandleInvalid,
                     p11.UserNotLoggedIn)


def _is_connection_error(exc: Exception) -> bool:
    # CKR_CRYPTOKI_NOT_INITIALIZED has no class of its own in python-pkcs11: it is a bare PKCS11Error.
    return isinstance(exc, CONNECTION_ERRORS) or type(exc) is p11.PKCS11Error


class _Slot:
    """A logged-in session on one token, shared by the handles of a process (one operation at a time)."""

    def __init__(self, lib: pkcs11.lib, token: pkcs11.Token, pin: str):
        self.lib = lib
        self.token = token
        self.session = token.open(user_pin=pin, rw=True)
        self.lock = threading.Lock()
        self.keys: dict[str, Any] = {}

    def private_key(self, alias: str):
        key = self.keys.get(alias)
        if key is None:
            key = self.session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=alias)
            self.keys[alias] = key
        return key

    def close(self) -> None:
        try:
            self.session.close()
        except Exception:  # the session may already be gone with the device
            logger.debug("closing a dead PKCS#11 session failed", exc_info=True)


_slots: ClientPool[_Slot] = ClientPool()


def _attribute_template(name: str | None) -> dict:
    if not name:
        return {}
    path = settings.PKCS11_ATTRIBUTE_FILES.get(name)
    if path is None:
        raise CryptoTokenError(f"PKCS#11 attribute file '{name}' is not configured.")
    template = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, _, value = line.partition("=")
        attr = getattr(Attribute, key.strip().removeprefix("CKA_"), None)
        if attr is None or not value.strip():
            raise CryptoTokenError(f"PKCS#11 attribute file '{name}', line {number}: cannot read '{line}'.")
        v = value.strip().lower()
        template[attr] = v == "true" if v in {"true", "false"} else int(v, 0)
    return template


@registry.register
class PKCS11CryptoTokenBackend(CryptoTokenBackend):
    type_name = "PKCS11CryptoToken"
    label = "PKCS#11 HSM slot"
    reinitialize_on_failure = False
    parameters = (
        BackendParameter("library", "PKCS#11 library",
                         help_text="A module configured in PKCS11_LIBRARIES (SoftHSM2 by default)"),
        BackendParameter("reference_type", "PKCS#11 reference type",
                         choices=((REF_SLOT_ID, "Slot ID"), (REF_SLOT_INDEX, "Slot index"),
                                  (REF_SLOT_LABEL, "Token label")), default=REF_SLOT_LABEL),
        BackendParameter("reference", "PKCS#11 reference", help_text="The slot number, index or token label"),
        BackendParameter("attribute_file", "PKCS#11 attribute file", required=False,
                         help_text="Only for HSMs that need extra key attributes (PKCS11_ATTRIBUTE_FILES)"),
    )

    # -- locating the slot ---------------------------------------------------------------------------------
    def _library_path(self) -> str:
        name = self.token.properties.get("library") or next(iter(settings.PKCS11_LIBRARIES), "")
        path = settings.PKCS11_LIBRARIES.get(name)
        if path is None:
            raise CryptoTokenError(f"PKCS#11 library '{name}' is not configured (PKCS11_LIBRARIES).")
        if not os.path.exists(path):
            raise CryptoTokenError(f"PKCS#11 library '{name}' is configured as {path}, but that file does not exist.")
        return path

    def _lib(self) -> pkcs11.lib:
        return pkcs11.lib(self._library_path())

    def _find_token(self, lib: pkcs11.lib) -> pkcs11.Token:
        ref_type = self.token.properties.get("reference_type", REF_SLOT_LABEL)
        ref = str(self.token.properties.get("reference", "")).strip()
        try:
            if ref_type == REF_SLOT_LABEL:
                return lib.get_token(token_label=ref)
            slots = lib.get_slots(token_present=True)
            if ref_type == REF_SLOT_ID:
                return next(s for s in slots if s.slot_id == int(ref)).get_token()
            if ref_type == REF_SLOT_INDEX:
                return slots[int(ref)].get_token()
        except (p11.NoSuchToken, StopIteration, IndexError, ValueError):
            raise CryptoTokenError(f"No PKCS#11 token with {ref_type.replace('_', ' ').lower()} '{ref}'.") from None
        raise CryptoTokenError(f"Unknown PKCS#11 reference type '{ref_type}'.")

    def _pool_key(self) -> tuple:
        p = self.token.properties
        return (self._library_path(), p.get("reference_type"), str(p.get("reference")), self.token.pk,
                self.token.version)

    def _slot(self, pin: str) -> _Slot:
        def open_slot() -> _Slot:
            lib = self._lib()
            try:
                return _Slot(lib, self._find_token(lib), pin)
            except p11.PinIncorrect:
                raise AuthenticationCodeError(f"Wrong PIN for crypto token '{self.token.name}'.") from None
            except p11.PinLocked:
                raise AuthenticationCodeError(f"The PIN of crypto token '{self.token.name}' is locked.") from None

        return _slots.get(self._pool_key(), open_slot)

    def _drop(self, slot: _Slot | None = None) -> None:
        key = self._pool_key()
        if slot is None:
            slot = _slots._clients.get(key)
        _slots.discard(key, slot)
        if slot is not None:
            slot.close()

    def _run(self, pin: str, operation):
        """Run ``operation(slot)``; on a connection failure the NG variant re-initializes and retries once."""
        slot = self._slot(pin)
        try:
            with slot.lock:
                return operation(slot)
        except (CryptoTokenError, p11.PinIncorrect):
            raise
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            self._drop(slot)
            if not self.reinitialize_on_failure:
                raise CryptoTokenUnavailableError(
                    f"Crypto token '{self.token.name}': the HSM connection failed ({type(exc).__name__}); "
                    "the next operation opens a new session.") from None
            logger.warning("PKCS#11 token %s: %s; re-initializing the library", self.token.name, type(exc).__name__)
            self._reinitialize(slot.lib)
            slot = self._slot(pin)
            with slot.lock:
                return operation(slot)

    @staticmethod
    def _reinitialize(lib: pkcs11.lib) -> None:
        try:
            lib.reinitialize()
        except p11.PKCS11Error:
            lib.initialize()  # it was already finalized
        # Every pooled session of this library died with it.
        for key, slot in list(_slots._clients.items()):
            if slot.lib is lib:
                _slots.discard(key, slot)

    # -- the backend interface ---------------------------------------------------------------------------
    def initialize(self, auth_code: str) -> None:
        self.check_auth_code(auth_code)

    def check_auth_code(self, auth_code: str) -> None:
        # A login only proves the PIN on a token nobody in this process is logged in to: close ours first.
        if self.token.pk:
            for key, slot in list(_slots._clients.items()):
                if key[3] == self.token.pk:
                    _slots.discard(key, slot)
                    slot.close()
        lib = self._lib()
        token = self._find_token(lib)
        try:
            token.open(user_pin=auth_code).close()
        except p11.PinIncorrect:
            raise AuthenticationCodeError(f"Wrong PIN for crypto token '{self.token.name}'.") from None
        except p11.PinLocked:
            raise AuthenticationCodeError(f"The PIN of crypto token '{self.token.name}' is locked.") from None
        except p11.UserAlreadyLoggedIn:
            raise CryptoTokenError("Another process here holds this slot's login; deactivate it there first.")

    def supported(self, spec: KeySpec) -> None:
        if spec.algorithm == "RSA" and not 1024 <= (spec.size or 0) <= 8192:
            raise UnsupportedKeySpecError("PKCS#11 tokens generate RSA keys of 1024 to 8192 bits here.")
        if spec.algorithm == "EC" and spec.curve not in CURVE_OIDS:
            raise UnsupportedKeySpecError(f"Curve {spec.curve} is not supported on PKCS#11 tokens.")
        if spec.algorithm in {"Ed25519", "Ed448"}:
            raise UnsupportedKeySpecError(f"{spec.algorithm} keys are not supported on PKCS#11 tokens here "
                                          "(use RSA or EC, or a soft token).")

    def generate_key_pair(self, alias: str, spec: KeySpec, auth_code: str) -> GeneratedKeyPair:
        self.supported(spec)
        template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                    **_attribute_template(self.token.properties.get("attribute_file"))}
        key_id = os.urandom(16)

        def generate(slot: _Slot):
            if list(slot.session.get_objects({Attribute.LABEL: alias})):
                raise KeyPairExistsError(f"The HSM already holds an object labelled '{alias}'.")
            if spec.algorithm == "RSA":
                pub, _ = slot.session.generate_keypair(KeyType.RSA, spec.size, label=alias, id=key_id, store=True,
                                                       private_template=template)
                return rsa.RSAPublicNumbers(int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big"),
                                            int.from_bytes(pub[Attribute.MODULUS], "big")).public_key()
            from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

            params = slot.session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVE_OIDS[spec.curve])}, local=True)
            pub, _ = params.generate_keypair(label=alias, id=key_id, store=True, private_template=template)
            return load_der_public_key(encode_ec_public_key(pub))

        try:
            public_key = self._run(auth_code, generate)
        except p11.PKCS11Error as exc:
            raise CryptoTokenError(f"The HSM refused to generate {spec}: {type(exc).__name__}.") from None
        return GeneratedKeyPair(public_key=public_key, private_data=key_id)

    def load_private_key(self, entry: CryptoTokenKeyPair, auth_code: str):
        public_key = load_der_public_key(bytes(entry.public_key_der))
        alias = entry.alias
        backend = self

        def signer(req: SignRequest) -> bytes:
            def sign(slot: _Slot) -> bytes:
                key = slot.private_key(alias)
                return _sign(key, req)

            try:
                return backend._run(auth_code, sign)
            except p11.NoSuchKey:
                raise CryptoTokenError(f"Key '{alias}' is no longer on the HSM.") from None

        label = f"'{alias}' on PKCS#11 token '{self.token.name}'"
        if isinstance(public_key, rsa.RSAPublicKey):
            return RemoteRSAPrivateKey(public_key, signer, label)
        return RemoteECPrivateKey(public_key, signer, label)

    def remove_key_pair(self, entry: CryptoTokenKeyPair, auth_code: str) -> None:
        def remove(slot: _Slot) -> None:
            for obj in slot.session.get_objects({Attribute.LABEL: entry.alias}):
                obj.destroy()
            slot.keys.pop(entry.alias, None)

        self._run(auth_code, remove)


def _sign(key, req: SignRequest) -> bytes:
    name = req.hash.name
    if req.scheme == "ECDSA":
        return ecdsa_raw_to_der(key.sign(req.digest(), mechanism=Mechanism.ECDSA))
    pkcs1, pss, hash_mech, mgf = _HASH_MECH[name]
    if req.scheme == "PKCS1v15":
        if req.prehashed:
            return key.sign(_DIGEST_INFO[name] + req.data, mechanism=Mechanism.RSA_PKCS)
        return key.sign(req.data, mechanism=pkcs1)
    params = (hash_mech, mgf, req.hash.digest_size)
    if req.prehashed:
        return key.sign(req.data, mechanism=Mechanism.RSA_PKCS_PSS, mechanism_param=params)
    return key.sign(req.data, mechanism=pss, mechanism_param=params)


@registry.register
class Pkcs11NgCryptoTokenBackend(PKCS11CryptoTokenBackend):
    """PKCS#11 NG: re-initializes the library after a connection failure and retries the operation once
    (for network HSMs whose libraries do not reconnect by themselves)."""

    type_name = "Pkcs11NgCryptoToken"
    label = "PKCS#11 NG (re-initializes the library after connection failures)"
    reinitialize_on_failure = True


def clear_sessions() -> None:
    """Close every pooled session of this process (tests, shutdown)."""
    for slot in list(_slots._clients.values()):
        slot.close()
    _slots.clear()

