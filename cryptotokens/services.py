"""Crypto token operations. Every state change checks the caller's access rule and is audited.

``actor`` is any object with ``name`` and ``require(resource)`` (the core's access-rule check);
passing it in keeps this app free of imports from the layers above it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from .backends import KeySpec, registry
from .backends.base import DeviceKey, key_spec_of, public_key_der, subject_key_identifier
from .errors import CryptoTokenError, CryptoTokenOfflineError, KeyPairExistsError, KeyPairNotFoundError
from .models import CryptoToken, CryptoTokenKeyPair
from .secrets import decrypt_secret, encrypt_secret
from .signals import crypto_token_event


class Actor(Protocol):
    name: str

    def require(self, resource: str) -> None: ...


def _emit(event_type: str, actor: Actor, token: CryptoToken | None, outcome: str = "SUCCESS", **details: Any) -> None:
    crypto_token_event.send(
        sender=CryptoToken, event_type=event_type, actor=actor.name, token=token, outcome=outcome, details=details
    )


def _code_context(token: CryptoToken) -> str:
    return f"cryptotoken:{token.token_id}"


def key_pair_of(token: CryptoToken, alias: str) -> CryptoTokenKeyPair:
    """The key pair ``alias`` of ``token``, or KeyPairNotFoundError (also for an alias with a NUL, which no key pair
    has: PostgreSQL cannot even compare it)."""
    if "\x00" not in alias:
        entry = CryptoTokenKeyPair.objects.filter(token=token, alias=alias).first()
        if entry is not None:
            return entry
    shown = alias.replace("\x00", "\\x00")  # the message may be audited, and jsonb holds no NUL either
    raise KeyPairNotFoundError(f"No key pair '{shown}' on crypto token '{token.name}'.")


def _new_alias(alias: str) -> None:
    """An alias for a new key pair: 1 to 255 characters, none of them a control character."""
    if not alias or len(alias) > 255 or any(ord(c) < 32 or ord(c) == 127 for c in alias):
        raise CryptoTokenError("A key pair alias of 1 to 255 characters, without control characters, is required.")


def backend_for(token: CryptoToken):
    return registry.get(token.token_type)(token)


@transaction.atomic
def create_token(
    actor: Actor,
    *,
    name: str,
    token_type: str,
    auth_code: str,
    auto_activate: bool = False,
    allow_export: bool = False,
    explicit_ecc_parameters: bool = False,
    properties: dict[str, Any] | None = None,
) -> CryptoToken:
    """Create a crypto token; with auto-activation its code is stored encrypted under the master key."""
    actor.require("/cryptotoken/modify")
    if not auth_code:
        raise CryptoTokenError("An authentication code is required.")
    if CryptoToken.objects.filter(name=name).exists():
        raise CryptoTokenError(f"A crypto token named '{name}' already exists.")
    token = CryptoToken(
        name=name,
        token_type=token_type,
        auto_activate=auto_activate,
        allow_export=allow_export,
        explicit_ecc_parameters=explicit_ecc_parameters,
        properties=properties or {},
    )
    backend = backend_for(token)
    backend.initialize(auth_code)
    _refuse_shared_device(token, backend)
    enc = encrypt_secret(auth_code, _code_context(token))
    if auto_activate:
        token.auth_code_encrypted = enc
    else:
        token.activation_secret = enc  # a new token starts active, as it was just opened with its code
    try:
        with transaction.atomic():
            token.save()
    except IntegrityError:
        raise CryptoTokenError(f"A crypto token named '{name}' already exists.") from None
    _emit("CRYPTOTOKEN_CREATE", actor, token, type=token_type, auto_activation=auto_activate)
    return token


def _refuse_shared_device(token: CryptoToken, backend) -> None:
    """Refuse a token whose settings resolve to the place another token already maps (the same PKCS#11 slot by id,
    index or label): one slot under two names would let each remove or replace the other's keys. Tokens whose
    device cannot be reached now are not compared (they are reported when used)."""
    mine = backend.device_identity()
    if mine is None:
        return
    library = token.properties.get("library")
    for other in CryptoToken.objects.exclude(pk=token.pk).filter(token_type__in=_same_device_types(token)):
        if (other.properties or {}).get("library") != library:
            continue
        try:
            theirs = backend_for(other).device_identity()
        except CryptoTokenError:
            continue
        if theirs == mine:
            raise CryptoTokenError(
                f"Crypto token '{token.name}' would map the same PKCS#11 slot as crypto token '{other.name}' "
                f"({backend.describe_device() if hasattr(backend, 'describe_device') else 'the same token'}): a "
                "slot belongs to one crypto token. Use the existing token, or choose another slot.")


def _same_device_types(token: CryptoToken) -> list[str]:
    """Token types that can share a device with ``token``: its own and its siblings of the same base backend
    (PKCS#11 and PKCS#11 NG map the same slots)."""
    mine = registry.get(token.token_type)
    return [cls.type_name for cls in registry if issubclass(cls, mine) or issubclass(mine, cls)]


def auth_code_of(token: CryptoToken) -> str:
    """The authentication code of an active token, or CryptoTokenOfflineError."""
    stored = token.auth_code_encrypted if token.auto_activate else token.activation_secret
    if not stored:
        raise CryptoTokenOfflineError(token.name)
    return decrypt_secret(stored, _code_context(token)).decode()


def activate(actor: Actor, token: CryptoToken, auth_code: str) -> None:
    """Check the code and make the token active for every process."""
    actor.require(f"/cryptotoken/activate/{token.pk}")
    try:
        backend_for(token).check_auth_code(auth_code)
    except CryptoTokenError as exc:
        _emit("CRYPTOTOKEN_ACTIVATION", actor, token, outcome="FAILURE", reason=str(exc))
        raise
    token.activation_secret = encrypt_secret(auth_code, _code_context(token))
    token.version = F("version") + 1
    token.save(update_fields=["activation_secret", "version", "updated_at"])
    token.refresh_from_db()
    _emit("CRYPTOTOKEN_ACTIVATION", actor, token)


def deactivate(actor: Actor, token: CryptoToken) -> None:
    """Forget the activation; an auto-activated token stays active (its code is stored)."""
    actor.require(f"/cryptotoken/deactivate/{token.pk}")
    token.activation_secret = ""
    token.version = F("version") + 1
    token.save(update_fields=["activation_secret", "version", "updated_at"])
    token.refresh_from_db()
    _emit("CRYPTOTOKEN_DEACTIVATION", actor, token)


def generate_key_pair(actor: Actor, token: CryptoToken, alias: str, key_spec: str | KeySpec) -> CryptoTokenKeyPair:
    """Generate a key pair under ``alias``; the alias must be new on this token."""
    actor.require(f"/cryptotoken/generate_keys/{token.pk}")
    spec = key_spec if isinstance(key_spec, KeySpec) else KeySpec.parse(key_spec)
    _new_alias(alias)
    backend = backend_for(token)
    backend.supported(spec)
    code = auth_code_of(token)
    if CryptoTokenKeyPair.objects.filter(token=token, alias=alias).exists():
        raise KeyPairExistsError(f"Key pair alias '{alias}' already exists on crypto token '{token.name}'.")
    generated = backend.generate_key_pair(alias, spec, code)
    try:
        with transaction.atomic():
            entry = CryptoTokenKeyPair.objects.create(
                token=token,
                alias=alias,
                key_algorithm=spec.algorithm,
                key_spec=spec.spec_value,
                public_key_der=public_key_der(generated.public_key),
                subject_key_id=subject_key_identifier(generated.public_key),
                private_data=generated.private_data,
            )
    except IntegrityError:
        backend.remove_key_pair(
            CryptoTokenKeyPair(token=token, alias=alias, private_data=generated.private_data), code
        )
        raise KeyPairExistsError(f"Key pair alias '{alias}' already exists on crypto token '{token.name}'.") from None
    _emit("CRYPTOTOKEN_GEN_KEYPAIR", actor, token, alias=alias, key_spec=str(spec))
    return entry


def discard_key_pair(token: CryptoToken, entry: CryptoTokenKeyPair, actor: Actor | None = None,
                     reason: str = "") -> None:
    """Undo a key generation whose purpose failed (e.g. a refused CA): the key goes from the device too, and the
    removal is audited beside its generation."""
    try:
        backend_for(token).remove_key_pair(entry, auth_code_of(token))
    finally:
        CryptoTokenKeyPair.objects.filter(pk=entry.pk).delete()
        if actor is not None:
            _emit("CRYPTOTOKEN_DELETE_KEYPAIR", actor, token, alias=entry.alias, reason=reason or "discarded")


def list_device_keys(actor: Actor, token: CryptoToken) -> list[DeviceKeyListing]:
    """The keys on the token's device (HSM slot, KMS, vault; a soft token's keystore rows), each marked with the
    key pair row that knows it, if any. Needs ``/cryptotoken/view/<id>`` and an active token."""
    actor.require(f"/cryptotoken/view/{token.pk}")
    token = CryptoToken.objects.get(pk=token.pk)
    keys = backend_for(token).list_device_keys(auth_code_of(token))
    rows = {row.alias: row for row in CryptoTokenKeyPair.objects.filter(token=token)}
    listed = []
    for key in keys:
        row = rows.get(key.alias)
        # A row knows this key when the alias and the public key agree (an HSM may hold an unrelated key
        # under a label a row also uses).
        known = row is not None and key.public_key is not None and bytes(row.public_key_der) == public_key_der(
            key.public_key)
        listed.append(DeviceKeyListing(key, known))
    return listed


class DeviceKeyListing:
    """A device key and whether a key pair row of this token knows it (``known``: it can be used by alias now)."""

    __slots__ = ("key", "known")

    def __init__(self, key: DeviceKey, known: bool):
        self.key = key
        self.known = known

    def __getattr__(self, name: str) -> Any:
        if name in self.__slots__:  # not set yet (e.g. while copying): never recurse
            raise AttributeError(name)
        return getattr(self.key, name)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the REST and CLI listings."""
        return {"key_pair_alias": self.key.alias, "key_alg": self.key.key_algorithm, "key_spec": self.key.key_spec,
                "subject_key_id": self.key.subject_key_id, "registered": self.known, "usable": self.key.usable,
                **({"problem": self.key.problem} if self.key.problem else {})}


def adopt_key_pair(actor: Actor, token: CryptoToken, alias: str) -> CryptoTokenKeyPair:
    """Register a key that is already on the token's device (made by another tool or installation) under its
    alias: its public key and device reference are recorded, the private key never leaves the device. Needs the
    right to generate keys on the token (it adds a usable key pair), and is audited."""
    actor.require(f"/cryptotoken/generate_keys/{token.pk}")
    _new_alias(alias)
    token = CryptoToken.objects.get(pk=token.pk)
    if CryptoTokenKeyPair.objects.filter(token=token, alias=alias).exists():
        raise KeyPairExistsError(f"Key pair alias '{alias}' is already registered on crypto token '{token.name}'.")
    code = auth_code_of(token)
    backend = backend_for(token)
    try:
        found = backend.adoptable_key(alias, code)
        spec = key_spec_of(found.public_key)
        # Prove the private key is there and belongs to the public key found beside it before recording them: a
        # signature on a random challenge (an HSM's public key object could belong to another key).
        handle = backend.load_private_key(CryptoTokenKeyPair(token=token, alias=alias, public_key_der=public_key_der(
            found.public_key), private_data=found.private_data), code)
        if not _signature_matches(handle, found.public_key):
            raise CryptoTokenError(f"Key '{alias}' on the device of crypto token '{token.name}' does not sign for the "
                                   "public key found with it: it is not registered.")
    except CryptoTokenError as exc:
        _emit("CRYPTOTOKEN_ADOPT_KEYPAIR", actor, token, outcome="FAILURE", alias=alias, reason=str(exc))
        raise
    try:
        with transaction.atomic():
            entry = CryptoTokenKeyPair.objects.create(
                token=token, alias=alias, key_algorithm=spec.algorithm, key_spec=spec.spec_value,
                public_key_der=public_key_der(found.public_key),
                subject_key_id=subject_key_identifier(found.public_key), private_data=found.private_data,
            )
            CryptoToken.objects.filter(pk=token.pk).update(version=F("version") + 1)
    except IntegrityError:
        raise KeyPairExistsError(f"Key pair alias '{alias}' is already registered on crypto token '{token.name}'.") \
            from None
    _emit("CRYPTOTOKEN_ADOPT_KEYPAIR", actor, token, alias=alias, key_spec=str(spec),
          subject_key_id=entry.subject_key_id)
    return entry


def import_private_key(actor: Actor, token: CryptoToken, alias: str, key: PrivateKeyTypes) -> CryptoTokenKeyPair:
    """Put an existing software key on a soft token (used for imports and tests)."""
    actor.require(f"/cryptotoken/generate_keys/{token.pk}")
    _new_alias(alias)
    backend = backend_for(token)
    code = auth_code_of(token)
    generated = backend.import_private_key(alias, key, code)
    spec = key_spec_of(generated.public_key)
    entry = CryptoTokenKeyPair.objects.create(
        token=token,
        alias=alias,
        key_algorithm=spec.algorithm,
        key_spec=spec.spec_value,
        public_key_der=public_key_der(generated.public_key),
        subject_key_id=subject_key_identifier(generated.public_key),
        private_data=generated.private_data,
    )
    _emit("CRYPTOTOKEN_IMPORT_KEYPAIR", actor, token, alias=alias, key_spec=str(spec))
    return entry


# Per-process cache of opened keys: (token pk, alias) -> (token version, key handle). The version
# comes from the database row, so deactivation or key changes in another process invalidate it.
_key_cache: dict[tuple[int, str], tuple[int, PrivateKeyTypes]] = {}
_key_cache_lock = threading.Lock()


def get_private_key(token: CryptoToken, alias: str) -> PrivateKeyTypes:
    """A signing handle for ``alias``. The caller has authorized the use (e.g. a CA operation).

    ``token`` must be freshly read from the database, because its activation state is checked here.
    """
    if not token.is_active:
        raise CryptoTokenOfflineError(token.name)
    cache_key = (token.pk, alias)
    hit = _key_cache.get(cache_key)
    if hit and hit[0] == token.version:
        return hit[1]
    entry = key_pair_of(token, alias)
    key = backend_for(token).load_private_key(entry, auth_code_of(token))
    with _key_cache_lock:
        _key_cache[cache_key] = (token.version, key)
    return key


#: SQL of a token row (unqualified columns): whether the token is active, as :attr:`CryptoToken.is_active`.
TOKEN_ACTIVE_SQL = "CASE WHEN auto_activate THEN auth_code_encrypted <> '' ELSE activation_secret <> '' END"
_TOKEN_STATE = f"SELECT version, {TOKEN_ACTIVE_SQL} FROM cryptotokens_cryptotoken WHERE id = %s"  # noqa: S608


def _plain_execute(cur, purpose: str, sql: str, params: Sequence = ()) -> None:
    cur.execute(sql, params)


# How the hot statement below runs: as plain text here; the core installs its runner of statements prepared
# once per database session (pki.db.execute) at start-up, since this layer may not import the core.
_execute_hot: Callable[..., None] = _plain_execute


def use_statement_runner(execute: Callable[..., None]) -> None:
    """Run this app's hot statements through ``execute(cursor, purpose, sql, params)``."""
    global _execute_hot
    _execute_hot = execute


def get_private_key_by_id(token_id: int, alias: str) -> PrivateKeyTypes:
    """Like :func:`get_private_key`, reading only the token's version and activation state when the key
    is already open in this process (the hot path of every signature)."""
    # One narrow prepared statement (the ORM's query building cost more than the round trip here).
    with connection.cursor() as cur:
        _execute_hot(cur, "token_state", _TOKEN_STATE, [token_id])
        state = cur.fetchone()
    if state is None:
        raise KeyPairNotFoundError(f"Crypto token {token_id} does not exist.")
    version, active = state
    hit = _key_cache.get((token_id, alias))
    if hit and hit[0] == version and active:
        return hit[1]
    return get_private_key(CryptoToken.objects.get(pk=token_id), alias)


def cached_private_key(token_id: int, alias: str) -> tuple[PrivateKeyTypes, int] | None:
    """The handle of ``alias`` opened before in this process and the token version it was opened at, without
    reading the database; None when it is not open here. The token may have been deactivated or changed since
    (by any process): a caller that uses the handle must confirm the state in the transaction that stores the
    result (:func:`tokens_unchanged_sql`) and discard the result if it changed."""
    hit = _key_cache.get((token_id, alias))
    return None if hit is None else (hit[1], hit[0])


def tokens_unchanged_sql(versions: set[tuple[int, int]]) -> tuple[str, list]:
    """A boolean SQL expression and its parameters: true when each (token id, version) of ``versions`` is its
    token's current version and the token is active (what :func:`get_private_key_by_id` reads), read by the
    statement that contains it."""
    pairs = sorted(versions)
    rows = ", ".join(["(CAST(%s AS bigint), CAST(%s AS bigint))"] * len(pairs))  # PostgreSQL and SQLite
    sql = (f"(SELECT count(*) FROM cryptotokens_cryptotoken WHERE (id, version) IN (VALUES {rows}) AND "  # noqa: S608
           f"{TOKEN_ACTIVE_SQL}) = %s")
    return sql, [*(v for pair in pairs for v in pair), len(pairs)]


def clear_key_cache() -> None:
    with _key_cache_lock:
        _key_cache.clear()


def _in_use_error(what: str, users: list[str]) -> CryptoTokenError:
    return CryptoTokenError(f"{what} is in use by {', '.join(users)} and cannot be removed.")


def delete_token(actor: Actor, token: CryptoToken) -> None:
    """Delete a token and its key pairs; refused while a CA or key binding uses it."""
    from .usage import users_of

    actor.require(f"/cryptotoken/delete/{token.pk}")
    users = users_of(token)
    if users:
        _emit("CRYPTOTOKEN_DELETE", actor, token, outcome="FAILURE", reason="in use", users=users)
        raise _in_use_error(f"Crypto token '{token.name}'", users)
    # Soft keys go with their rows; HSM and cloud keys stay on the device (as in EJBCA): deleting the
    # mapping must not destroy keys that another installation may still use.
    with transaction.atomic():
        aliases = list(CryptoTokenKeyPair.objects.filter(token=token).values_list("alias", flat=True))
        _emit("CRYPTOTOKEN_DELETE", actor, token, key_pairs=aliases)
        token.delete()


def edit_token(actor: Actor, token: CryptoToken, *, name: str | None = None, auth_code: str | None = None,
               auto_activate: bool | None = None, allow_export: bool | None = None,
               explicit_ecc_parameters: bool | None = None, properties: dict[str, Any] | None = None) -> CryptoToken:
    """Change a token's settings. Remapping an HSM slot (``properties``) needs the same right as creating."""
    actor.require(f"/cryptotoken/modify/{token.pk}")
    backend = backend_for(token)
    if auth_code:
        backend.check_auth_code(auth_code)
    changes: dict[str, Any] = {}
    if name and name != token.name:
        if CryptoToken.objects.filter(name=name).exclude(pk=token.pk).exists():
            raise CryptoTokenError(f"A crypto token named '{name}' already exists.")
        changes["name"] = token.name = name
    for field_name, value in (("allow_export", allow_export), ("explicit_ecc_parameters", explicit_ecc_parameters)):
        if value is not None and value != getattr(token, field_name):
            changes[field_name] = value
            setattr(token, field_name, value)
    if properties is not None and properties != token.properties:
        token.properties = {**token.properties, **properties}
        changes["properties"] = sorted(properties)
        if hasattr(backend, "validate_properties"):
            backend.validate_properties(auth_code or auth_code_of(token))
        _refuse_shared_device(token, backend)
    if auto_activate is not None and auto_activate != token.auto_activate:
        if auto_activate:
            code = auth_code or (auth_code_of(token) if token.is_active else None)
            if code is None:
                raise CryptoTokenError("Give the authentication code to turn on auto-activation.")
            token.auth_code_encrypted = encrypt_secret(code, _code_context(token))
        else:
            # The token stays active until someone deactivates it; only the stored code goes.
            token.activation_secret, token.auth_code_encrypted = token.auth_code_encrypted, ""
        token.auto_activate = auto_activate
        changes["auto_activate"] = auto_activate
    token.version = F("version") + 1
    token.save()
    token.refresh_from_db()
    _emit("CRYPTOTOKEN_EDIT", actor, token, changed=sorted(changes))
    return token


def remove_key_pair(actor: Actor, token: CryptoToken, alias: str) -> None:
    """Remove a key pair from the token; refused while a CA or key binding uses it."""
    from .usage import users_of

    actor.require(f"/cryptotoken/remove_keys/{token.pk}")
    entry = key_pair_of(token, alias)
    users = users_of(token, alias)
    if users:
        _emit("CRYPTOTOKEN_DELETE_KEYPAIR", actor, token, outcome="FAILURE", alias=alias, reason="in use")
        raise _in_use_error(f"Key pair '{alias}'", users)
    backend_for(token).remove_key_pair(entry, auth_code_of(token))
    with transaction.atomic():
        entry.delete()
        CryptoToken.objects.filter(pk=token.pk).update(version=F("version") + 1)
    _emit("CRYPTOTOKEN_DELETE_KEYPAIR", actor, token, alias=alias)


def _signature_matches(key: PrivateKeyTypes, public: Any) -> bool:
    """Whether ``key`` signs a random challenge that ``public`` verifies (the hash follows an EC key's curve, as
    cloud services insist on)."""
    import os

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    challenge = os.urandom(32)
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(key.sign(challenge, padding.PKCS1v15(), hashes.SHA256()), challenge,  # type: ignore[call-arg]
                          padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            digest = {384: hashes.SHA384(), 521: hashes.SHA512()}.get(public.curve.key_size, hashes.SHA256())
            public.verify(key.sign(challenge, ec.ECDSA(digest)), challenge, ec.ECDSA(digest))  # type: ignore[call-arg]
        else:
            public.verify(key.sign(challenge), challenge)  # type: ignore[call-arg]
    except InvalidSignature:
        return False
    return True


def test_key_pair(actor: Actor, token: CryptoToken, alias: str) -> bool:
    """Sign a random challenge with the key and verify it with the stored public key."""
    from cryptography.hazmat.primitives import serialization

    actor.require(f"/cryptotoken/test_keys/{token.pk}")
    entry = key_pair_of(token, alias)
    key = get_private_key(CryptoToken.objects.get(pk=token.pk), alias)
    if not _signature_matches(key, serialization.load_der_public_key(bytes(entry.public_key_der))):
        _emit("CRYPTOTOKEN_TEST_KEYPAIR", actor, token, outcome="FAILURE", alias=alias, reason="signature mismatch")
        raise CryptoTokenError(f"Key pair '{alias}' failed its test: the signature does not match the public key.")
    _emit("CRYPTOTOKEN_TEST_KEYPAIR", actor, token, alias=alias)
    return True


def export_key_pair(actor: Actor, token: CryptoToken, alias: str, password: str) -> bytes:
    """A PKCS#12 of one soft key pair, protected by ``password`` — only when the token allows export."""
    from .backends.soft import encrypt_pkcs12

    actor.require(f"/cryptotoken/view/{token.pk}")
    # Taking a private key away is more than looking at the token: viewers (auditors) may not.
    actor.require(f"/cryptotoken/modify/{token.pk}")
    if not backend_for(token).supports_export:
        raise CryptoTokenError(f"Keys of a {token.token_type} never leave the token.")
    if not token.allow_export:
        _emit("CRYPTOTOKEN_EXPORT_KEYPAIR", actor, token, outcome="FAILURE", alias=alias, reason="export not allowed")
        raise CryptoTokenError(f"Crypto token '{token.name}' does not allow export of private keys.")
    if len(password) < 8:
        raise CryptoTokenError("The export password must have at least 8 characters.")
    key = get_private_key(CryptoToken.objects.get(pk=token.pk), alias)
    data = encrypt_pkcs12(key, alias, password)
    _emit("CRYPTOTOKEN_EXPORT_KEYPAIR", actor, token, alias=alias)
    return data
