"""Key binding services: create, edit, delete, activate/disable, CSR, issue, import, renew (their uses: credentials).

Every operation checks ``/internalkeybinding/view|modify|delete`` (the caller's token and CA rules too,
where it uses them) and is audited. Certificates come from ``pki.issuance.issue`` (the one pipeline) or
are imported; either way the binding's certificate constraints hold:

- Authentication: keyUsage digitalSignature (and keyEncipherment for an RSA key), extendedKeyUsage clientAuth;
- OCSP: keyUsage digitalSignature, extendedKeyUsage OCSPSigning, issued by the CA it answers for (a local CA);
- never a CA certificate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.conf import settings as django_settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from cryptotokens import services as tokens
from cryptotokens.backends.base import key_spec_of
from cryptotokens.errors import CryptoTokenError
from cryptotokens.models import CryptoToken
from cryptotokens.services import get_private_key_by_id
from pki import audit
from pki.auth.access import Actor
from pki.errors import ConflictError, NotFoundError, ValidationError, as_pki_error
from pki.issuance import IssuanceHooks, IssuanceRequest, issue
from pki.models import Certificate, CertificateAuthority, CertificateProfile
from pki.x509.algorithms import check_key_matches, default_signature_algorithm, signature_algorithm
from pki.x509.dn import DNError, format_dn, parse_dn

from . import tls
from .choices import BindingStatus, BindingType, CertificateState
from .credentials import (  # noqa: F401 (the binding's uses, re-exported for callers of services)
    SOFT_TOKEN,
    authentication_binding_choices,
    bindings_using_token,
    client_assertion,
    credentials_pem,
    ssl_context_for,
)
from .models import InternalKeyBinding, KeyBindingCertificate

logger = logging.getLogger("keybindings")

VIEW, MODIFY, DELETE = "/internalkeybinding/view", "/internalkeybinding/modify", "/internalkeybinding/delete"

# provider(binding) -> what uses it, e.g. ["crypto token 'kv' (Azure Key Vault login)"]; the layers above
# (SCEP's Intune validator, the peer connectors) register theirs, so this app never imports them.
BindingUser = Callable[[InternalKeyBinding], list[str]]
_users: list[BindingUser] = []


def register_binding_user(provider: BindingUser) -> None:
    """Add a provider of "who uses this binding" (asked before a delete)."""
    if provider not in _users:
        _users.append(provider)


def _record(event: str, actor: Actor, binding: InternalKeyBinding, **details: Any) -> None:
    audit.record(event, actor.name, object_type="keybinding", object_id=binding.pk,
                 details={"name": binding.name, **details}, in_transaction=True)


def _refused(event: str, actor: Actor, binding: InternalKeyBinding | None, reason: str, **details: Any) -> None:
    audit.record_failure(event, actor.name, reason, object_type="keybinding",
                         object_id=binding.pk if binding and binding.pk else "",
                         details={"name": binding.name if binding else "", **details})
    logger.info("Key binding %s refused for %s: %s", event, actor.name, reason)


# --- reading -------------------------------------------------------------------------------------------


def list_bindings(actor: Actor, binding_type: str | None = None):
    """Bindings the caller may view (optionally of one type), with their token and certificate."""
    actor.require(VIEW)
    qs = InternalKeyBinding.objects.select_related("crypto_token", "certificate", "certificate__ca")
    return qs.filter(binding_type=binding_type) if binding_type else qs


def get_binding(actor: Actor, ref: str | int) -> InternalKeyBinding:
    """A binding by id or name (NotFoundError otherwise), once the caller may view bindings."""
    actor.require(VIEW)
    qs = InternalKeyBinding.objects.select_related("crypto_token", "certificate", "certificate__ca")
    text = str(ref).strip()
    if "\x00" in text or len(text) > 255:  # PostgreSQL cannot even compare such a text: no binding has it
        raise NotFoundError(f"Key binding '{text[:64]}' does not exist.")
    binding = qs.filter(name=text).first()
    if binding is None and text.isascii() and text.isdigit() and len(text) < 19:
        binding = qs.filter(pk=int(text)).first()
    if binding is None:
        raise NotFoundError(f"Key binding '{text}' does not exist.")
    return binding


def certificate_status(binding: InternalKeyBinding, now: datetime | None = None) -> dict[str, Any]:
    """The certificate's state, its days to expiry, serial, issuer and validity."""
    cert = binding.certificate
    return {
        "state": binding.certificate_state(now),
        "days_to_expiry": binding.days_to_expiry(now),
        "serial": cert.serial if cert else "",
        "issuer_dn": cert.issuer_dn if cert else "",
        "subject_dn": cert.subject_dn if cert else "",
        "not_after": cert.not_after if cert else None,
    }


# --- checks shared by create and edit ------------------------------------------------------------------


def check_trusted(entries: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Trusted server certificate entries as stored: {"ca_id": <local CA id>, "serial": "<hex or empty>"}."""
    out: list[dict[str, Any]] = []
    for entry in entries or []:
        if not isinstance(entry, dict):
            raise ValidationError("A trusted entry is {'ca': <CA name or id>, 'serial': <hex or empty>}.",
                                  field="trusted_certificates")
        ref = entry.get("ca_id", entry.get("ca"))
        ca = _known_ca(ref)
        serial = str(entry.get("serial") or "").strip().lower().removeprefix("0x")
        if serial:
            try:
                serial = format(int(serial, 16), "x")
            except ValueError:
                raise ValidationError(f"'{entry.get('serial')}' is not a hexadecimal certificate serial number.",
                                      field="trusted_certificates") from None
        item = {"ca_id": ca.pk, "serial": serial}
        if item not in out:
            out.append(item)
    return out


def _known_ca(ref: Any) -> CertificateAuthority:
    text = str(ref if ref is not None else "").strip()
    ca = CertificateAuthority.objects.filter(name=text).first()
    if ca is None and text.isascii() and text.isdigit() and len(text) < 19:
        ca = CertificateAuthority.objects.filter(pk=int(text)).first()
    if ca is None or not ca.certificate_der:
        raise ValidationError(f"No CA '{text}' with a certificate is known here.", field="trusted_certificates")
    return ca


def _check_sigalg(name: str, token: CryptoToken, alias: str) -> str:
    if not name:
        return ""
    try:
        alg = signature_algorithm(name)
        entry = tokens.key_pair_of(token, alias)
        check_key_matches(alg, serialization.load_der_public_key(bytes(entry.public_key_der)))
    except ValueError as exc:
        raise ValidationError(str(exc), field="signature_algorithm") from None
    return alg.name


def _token(actor: Actor, ref: CryptoToken | str | int) -> CryptoToken:
    if isinstance(ref, CryptoToken):
        token = ref
    else:
        text = str(ref).strip()
        token = CryptoToken.objects.filter(name=text).first()
        if token is None and text.isascii() and text.isdigit() and len(text) < 19:
            token = CryptoToken.objects.filter(pk=int(text)).first()
        if token is None:
            raise NotFoundError(f"Crypto token '{text}' does not exist.", field="crypto_token")
    actor.require(f"/cryptotoken/use/{token.pk}")
    return token


def _key_name(binding_name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in binding_name)[:200] or "keybinding"


def _generate(actor: Actor, token: CryptoToken, alias: str, key_spec: str) -> str:
    try:
        tokens.generate_key_pair(actor, token, alias, key_spec)
    except CryptoTokenError as exc:
        raise as_pki_error(exc) from None
    return alias


# --- create, edit, delete, status -----------------------------------------------------------------------


def create_binding(actor: Actor, *, name: str, binding_type: str, crypto_token: CryptoToken | str | int,
                   key_pair_alias: str = "", key_spec: str = "", signature_algorithm: str = "",
                   trusted_certificates: Iterable[dict[str, Any]] | None = None,
                   protocol_and_cipher_suites: Iterable[str] | None = None,
                   status: str = BindingStatus.DISABLED) -> InternalKeyBinding:
    """A new binding on an existing key (``key_pair_alias``) or on a key generated now (``key_spec``).

    A new binding has no certificate yet, so it starts disabled: issue or import one, then activate it."""
    actor.require(MODIFY)
    name = (name or "").strip()
    if not name or len(name) > 255:
        raise ValidationError("A name of 1 to 255 characters is required.", field="name")
    if binding_type not in BindingType.values:
        raise ValidationError(f"Unknown key binding type '{binding_type}' (AuthenticationKeyBinding or "
                              "OcspKeyBinding).", field="binding_type")
    if status not in BindingStatus.values:
        raise ValidationError(f"Unknown status '{status}' (ACTIVE or DISABLED).", field="status")
    if status == BindingStatus.ACTIVE:
        raise ValidationError("A new key binding has no certificate yet and cannot be active.", field="status")
    if InternalKeyBinding.objects.filter(name=name).exists():
        raise ConflictError(f"A key binding named '{name}' already exists.", field="name")
    token = _token(actor, crypto_token)
    trusted = check_trusted(trusted_certificates)
    suites = tls.validate_entries(protocol_and_cipher_suites or [])
    if key_spec and not key_pair_alias:
        key_pair_alias = _key_name(name)
    if not key_pair_alias:
        raise ValidationError("Choose a key pair of the token, or a key specification to generate one.",
                              field="key_pair_alias")
    generated = None
    if key_spec:
        _generate(actor, token, key_pair_alias, key_spec)
        generated = tokens.key_pair_of(token, key_pair_alias)
    else:
        try:
            tokens.key_pair_of(token, key_pair_alias)
        except CryptoTokenError as exc:
            raise ValidationError(str(exc), field="key_pair_alias") from None
    try:
        sigalg = _check_sigalg(signature_algorithm, token, key_pair_alias)
        binding = InternalKeyBinding(name=name, binding_type=binding_type, status=status, crypto_token=token,
                                     key_pair_alias=key_pair_alias, signature_algorithm=sigalg,
                                     trusted_certificates=trusted, protocol_and_cipher_suites=suites)
        with transaction.atomic():
            binding.save()
            _record("INTERNALKEYBINDING_CREATE", actor, binding, type=binding_type, token=token.name,
                    alias=key_pair_alias, generated_key=generated is not None)
    except (ValidationError, IntegrityError) as exc:
        if generated is not None:  # a key made for this binding goes with the refused binding
            tokens.discard_key_pair(token, generated)
        if isinstance(exc, IntegrityError):
            raise ConflictError(f"A key binding named '{name}' already exists.", field="name") from None
        raise
    return binding


EDITABLE = ("name", "signature_algorithm", "next_key_pair_alias", "trusted_certificates",
            "protocol_and_cipher_suites")


def edit_binding(actor: Actor, binding: InternalKeyBinding, **changes: Any) -> InternalKeyBinding:
    """Change the name, signature algorithm, next key, trusted entries or protocol/cipher pairs."""
    actor.require(MODIFY)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationError(f"Cannot change {', '.join(sorted(unknown))} of a key binding.")
    changed: list[str] = []
    if changes.get("name") is not None:
        name = str(changes["name"]).strip()
        if not name or len(name) > 255:
            raise ValidationError("A name of 1 to 255 characters is required.", field="name")
        if name != binding.name:
            if InternalKeyBinding.objects.filter(name=name).exclude(pk=binding.pk).exists():
                raise ConflictError(f"A key binding named '{name}' already exists.", field="name")
            binding.name = name
            changed.append("name")
    if changes.get("signature_algorithm") is not None:
        binding.signature_algorithm = _check_sigalg(changes["signature_algorithm"], binding.crypto_token,
                                                    binding.key_pair_alias)
        changed.append("signature_algorithm")
    if changes.get("next_key_pair_alias") is not None:
        alias = str(changes["next_key_pair_alias"]).strip()
        if alias:
            if alias == binding.key_pair_alias:
                raise ValidationError("The next key must differ from the current key.", field="next_key_pair_alias")
            try:
                tokens.key_pair_of(binding.crypto_token, alias)
            except CryptoTokenError as exc:
                raise ValidationError(str(exc), field="next_key_pair_alias") from None
        binding.next_key_pair_alias = alias
        changed.append("next_key_pair_alias")
    if changes.get("trusted_certificates") is not None:
        binding.trusted_certificates = check_trusted(changes["trusted_certificates"])
        changed.append("trusted_certificates")
    if changes.get("protocol_and_cipher_suites") is not None:
        binding.protocol_and_cipher_suites = tls.validate_entries(changes["protocol_and_cipher_suites"])
        changed.append("protocol_and_cipher_suites")
    try:
        with transaction.atomic():
            binding.save()
            _record("INTERNALKEYBINDING_EDIT", actor, binding, changed=changed)
    except IntegrityError:
        raise ConflictError(f"A key binding named '{binding.name}' already exists.", field="name") from None
    return binding


def users_of(binding: InternalKeyBinding) -> list[str]:
    """What uses the binding: Azure Key Vault token logins and every registered provider (SCEP Intune, peers)."""
    found = [f"crypto token '{t}' (Azure Key Vault certificate login)"
             for t in CryptoToken.objects.filter(properties__authentication="KEY_BINDING",
                                                 properties__key_binding=binding.name)
             .values_list("name", flat=True)]
    for provider in _users:
        found.extend(provider(binding))
    return found


def delete_binding(actor: Actor, binding: InternalKeyBinding) -> None:
    """Delete a binding (its key stays on the token); refused while something uses it, naming the user."""
    actor.require(DELETE)
    users = users_of(binding)
    if users:
        reason = f"Key binding '{binding.name}' is in use by {', '.join(users)} and cannot be deleted."
        _refused("INTERNALKEYBINDING_DELETE", actor, binding, reason, users=users)
        raise ConflictError(reason)
    with transaction.atomic():
        _record("INTERNALKEYBINDING_DELETE", actor, binding, alias=binding.key_pair_alias)
        binding.delete()


def set_status(actor: Actor, binding: InternalKeyBinding, status: str) -> InternalKeyBinding:
    """Activate or disable; a binding whose certificate is missing, expired, not yet valid or revoked stays off."""
    actor.require(MODIFY)
    status = str(status).strip().upper()
    if status not in BindingStatus.values:
        raise ValidationError(f"Unknown status '{status}' (ACTIVE or DISABLED).", field="status")
    if status == BindingStatus.ACTIVE:
        binding.certificate = Certificate.objects.filter(pk=binding.certificate_id).first()
        state = binding.certificate_state()
        if state != CertificateState.VALID:
            why = {CertificateState.NONE: "has no certificate", CertificateState.EXPIRED: "has an expired certificate",
                   CertificateState.NOT_YET_VALID: "has a certificate that is not valid yet",
                   CertificateState.REVOKED: "has a revoked certificate"}[state]
            reason = f"Key binding '{binding.name}' {why} and cannot be activated."
            _refused("INTERNALKEYBINDING_EDIT", actor, binding, reason, status=status)
            raise ValidationError(reason, field="status")
    with transaction.atomic():
        InternalKeyBinding.objects.filter(pk=binding.pk).update(status=status, updated_at=timezone.now())
        binding.status = status
        _record("INTERNALKEYBINDING_EDIT", actor, binding, status=status)
    return binding


# --- keys and certificates ------------------------------------------------------------------------------


def _public_key(binding: InternalKeyBinding, alias: str):
    entry = tokens.key_pair_of(binding.crypto_token, alias)
    return serialization.load_der_public_key(bytes(entry.public_key_der))


def generate_next_key(actor: Actor, binding: InternalKeyBinding, key_spec: str = "") -> str:
    """Generate the next key pair (same specification as the current key unless given) and remember it."""
    actor.require(MODIFY)
    spec = key_spec or str(key_spec_of(_public_key(binding, binding.key_pair_alias)))
    alias = f"{_key_name(binding.name)}-{timezone.now():%Y%m%d%H%M%S%f}"
    _generate(actor, binding.crypto_token, alias, spec)
    with transaction.atomic():
        InternalKeyBinding.objects.filter(pk=binding.pk).update(next_key_pair_alias=alias, updated_at=timezone.now())
        binding.next_key_pair_alias = alias
        _record("INTERNALKEYBINDING_EDIT", actor, binding, next_key_pair_alias=alias, key_spec=spec)
    return alias


def _alias_for(binding: InternalKeyBinding, next_key: bool) -> str:
    if not next_key:
        return binding.key_pair_alias
    if not binding.next_key_pair_alias:
        raise ValidationError(f"Key binding '{binding.name}' has no next key: generate one first.",
                              field="next_key_pair_alias")
    return binding.next_key_pair_alias


def _subject(binding: InternalKeyBinding, subject_dn: str | None) -> x509.Name:
    dn = subject_dn or (binding.certificate.subject_dn if binding.certificate else f"CN={binding.name}")
    try:
        return parse_dn(dn)
    except (DNError, ValueError) as exc:
        raise ValidationError(str(exc), field="subject_dn") from None


def generate_csr(actor: Actor, binding: InternalKeyBinding, *, next_key: bool = False,
                 subject_dn: str | None = None) -> bytes:
    """A PEM PKCS#10 request for the current (or next) key, signed by the key handle on its token."""
    actor.require(MODIFY)
    alias = _alias_for(binding, next_key)
    try:
        key = get_private_key_by_id(binding.crypto_token_id, alias)
    except CryptoTokenError as exc:
        raise as_pki_error(exc) from None
    public = _public_key(binding, alias)
    alg = signature_algorithm(binding.signature_algorithm or default_signature_algorithm(public))
    builder = x509.CertificateSigningRequestBuilder().subject_name(_subject(binding, subject_dn))
    csr = builder.sign(key, **alg.builder_kwargs())
    with transaction.atomic():
        _record("INTERNALKEYBINDING_GENCSR", actor, binding, alias=alias)
    return csr.public_bytes(serialization.Encoding.PEM)


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _ekus(cert: x509.Certificate) -> set:
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def constraint_violation(binding_type: str, cert: x509.Certificate, *, ocsp_ca: CertificateAuthority | None = None
                         ) -> str | None:
    """The first certificate constraint ``cert`` breaks for a binding of ``binding_type``, named; None if it
    satisfies them. For OCSP, ``ocsp_ca`` is the CA the certificate claims to answer for (its issuer)."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            return "the certificate is a CA certificate (basicConstraints cA=true); a key binding needs an end entity"
    except x509.ExtensionNotFound:
        pass
    ku = _key_usage(cert)
    ekus = _ekus(cert)
    if ku is None or not ku.digital_signature:
        return "keyUsage digitalSignature is required"
    if binding_type == BindingType.AUTHENTICATION:
        if isinstance(cert.public_key(), rsa.RSAPublicKey) and not ku.key_encipherment:
            return "keyUsage keyEncipherment is required for an RSA key"
        if ExtendedKeyUsageOID.CLIENT_AUTH not in ekus:
            return "extendedKeyUsage clientAuth is required"
        return None
    if ExtendedKeyUsageOID.OCSP_SIGNING not in ekus:
        return "extendedKeyUsage OCSPSigning is required"
    # A VA node (PKI_NODE_ROLE=va) answers for the external CAs its CA pushes there, with certificates they issued.
    va_node = getattr(django_settings, "PKI_NODE_ROLE", "ca") == "va"
    if ocsp_ca is None or (ocsp_ca.is_external and not va_node):
        return "an OCSP responder certificate must be issued by the local CA it answers for"
    return None


def _check_constraints(binding: InternalKeyBinding, cert: x509.Certificate, ca: CertificateAuthority) -> None:
    violation = constraint_violation(binding.binding_type, cert, ocsp_ca=ca)
    if violation:
        label = BindingType(binding.binding_type).label
        raise ValidationError(f"Certificate constraint not met for {label} key binding '{binding.name}': "
                              f"{violation}.", field="certificate")


def _install(binding: InternalKeyBinding, row: Certificate, alias: str) -> list[str]:
    """Inside a transaction: ``row`` becomes the binding's certificate for key ``alias``; the previous one goes
    to the history. Returns the changed field names."""
    locked = InternalKeyBinding.objects.select_for_update().get(pk=binding.pk)
    if locked.certificate_id and locked.certificate_id != row.pk:
        KeyBindingCertificate.objects.create(binding=locked, certificate_id=locked.certificate_id,
                                             key_pair_alias=locked.key_pair_alias)
    fields = ["certificate", "updated_at"]
    locked.certificate = row
    if alias != locked.key_pair_alias:  # the next key was certified: it becomes the current key
        locked.key_pair_alias = alias
        locked.next_key_pair_alias = ""
        fields += ["key_pair_alias", "next_key_pair_alias"]
    locked.save(update_fields=fields)
    binding.certificate, binding.key_pair_alias, binding.next_key_pair_alias = (
        row, locked.key_pair_alias, locked.next_key_pair_alias)
    return fields


def issue_certificate(actor: Actor, binding: InternalKeyBinding, *, ca: CertificateAuthority,
                      profile: CertificateProfile, subject_dn: str | None = None, validity: str | None = None,
                      next_key: bool = False) -> Certificate:
    """Certify the current (or next) key from a local CA with ``profile``, through ``pki.issuance.issue``.

    The constraints are checked on the certificate the pipeline built, inside its transaction: a certificate
    that breaks one is not stored (and the refusal is audited by the pipeline)."""
    actor.require(MODIFY)
    alias = _alias_for(binding, next_key)
    public = _public_key(binding, alias)
    if binding.is_ocsp and ca.is_external:
        raise ValidationError("An OCSP responder certificate must come from the local CA it answers for.",
                              field="ca")

    def on_stored(req: IssuanceRequest, row: Certificate) -> None:
        _check_constraints(binding, x509.load_der_x509_certificate(bytes(row.der)), ca)
        _install(binding, row, alias)
        _record("INTERNALKEYBINDING_CERTIFICATE", actor, binding, serial=row.serial, ca=ca.name, alias=alias)

    subject = format_dn(_subject(binding, subject_dn))
    result = issue(IssuanceRequest(ca=ca, actor=actor, profile=profile, public_key=public, subject_dn=subject,
                                   validity=validity or None, username=f"keybinding:{binding.name}"[:255],
                                   hooks=IssuanceHooks(on_stored=on_stored),
                                   audit_details={"keybinding": binding.name}))
    return result.row


def _issuer_ca(cert: x509.Certificate) -> CertificateAuthority | None:
    """The known CA whose certificate signed ``cert``."""
    return CertificateAuthority.objects.signer_of(cert)


def _load_certificate(data: bytes | str) -> x509.Certificate:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
    try:
        if b"-----BEGIN CERTIFICATE-----" in raw:
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        raise ValidationError("Not a PEM or DER X.509 certificate.", field="certificate") from None


def import_certificate(actor: Actor, binding: InternalKeyBinding, data: bytes | str) -> Certificate:
    """Import a certificate issued elsewhere for the current or next key (it must match one of them).

    Its issuer must be a CA known here (import it first as an external CA): the certificate is kept with the
    other issued certificates, so its revocation status can be followed."""
    actor.require(MODIFY)
    cert = _load_certificate(data)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    alias = None
    for candidate in filter(None, (binding.key_pair_alias, binding.next_key_pair_alias)):
        if bytes(tokens.key_pair_of(binding.crypto_token, candidate).public_key_der) == spki:
            alias = candidate
    if alias is None:
        reason = "The certificate does not match the binding's current or next key."
        _refused("INTERNALKEYBINDING_CERTIFICATE", actor, binding, reason)
        raise ValidationError(reason, field="certificate")
    ca = _issuer_ca(cert)
    if ca is None:
        reason = f"The certificate's issuer '{cert.issuer.rfc4514_string()}' is not a CA known here: import it first."
        _refused("INTERNALKEYBINDING_CERTIFICATE", actor, binding, reason)
        raise ValidationError(reason, field="certificate")
    try:
        _check_constraints(binding, cert, ca)
    except ValidationError as exc:
        _refused("INTERNALKEYBINDING_CERTIFICATE", actor, binding, exc.message)
        raise
    now = timezone.now()
    if cert.not_valid_after_utc <= now:
        raise ValidationError("The certificate has expired.", field="certificate")
    der = cert.public_bytes(serialization.Encoding.DER)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    with transaction.atomic():
        row = Certificate.objects.filter(fingerprint_sha256=fingerprint).first()
        if row is None:
            from pki.uniqueness import public_key_sha256

            row = Certificate.objects.create(
                ca=ca, serial=format(cert.serial_number, "x"), fingerprint_sha256=fingerprint,
                subject_dn=format_dn(cert.subject), issuer_dn=format_dn(cert.issuer),
                not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, der=der,
                username=f"keybinding:{binding.name}"[:255], key_algorithm=str(key_spec_of(cert.public_key())),
                public_key_sha256=public_key_sha256(cert.public_key()))
        _install(binding, row, alias)
        _record("INTERNALKEYBINDING_CERTIFICATE", actor, binding, serial=row.serial, ca=ca.name, alias=alias,
                imported=True)
    return row


def renew(actor: Actor, binding: InternalKeyBinding, *, ca: CertificateAuthority | None = None,
          profile: CertificateProfile | None = None, key_spec: str = "") -> Certificate:
    """Generate the next key, certify it (by default from the same CA with the same profile as the current
    certificate), switch next -> current; the old certificate stays in the history."""
    actor.require(MODIFY)
    current = binding.certificate
    ca = ca or (current.ca if current else None)
    profile = profile or (current.certificate_profile if current else None)
    if ca is None or profile is None:
        raise ValidationError("Choose the CA and certificate profile to renew with (the binding's certificate "
                              "names none).", field="ca")
    if not binding.next_key_pair_alias:
        generate_next_key(actor, binding, key_spec)
    return issue_certificate(actor, binding, ca=ca, profile=profile, next_key=True)


def export_certificate(actor: Actor, binding: InternalKeyBinding) -> bytes:
    """The binding's certificate, PEM."""
    actor.require(VIEW)
    if binding.certificate is None:
        raise NotFoundError(f"Key binding '{binding.name}' has no certificate.")
    return binding.certificate.certificate.public_bytes(serialization.Encoding.PEM)


def history(binding: InternalKeyBinding) -> list[KeyBindingCertificate]:
    return list(binding.history.select_related("certificate"))
