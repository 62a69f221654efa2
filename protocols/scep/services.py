"""SCEP alias configuration: add, edit, remove, upload and dump (EJBCA's ``config scep`` and the
"SCEP Configuration" page). Every change needs ``/system_functionality/edit_systemconfiguration`` and
is audited in its transaction. The protocol operations are in :mod:`protocols.scep.operations`.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from cryptotokens.choices import KeyAlgorithm
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from cryptotokens.secrets import encrypt_secret
from endentities.models import EndEntityProfile
from pki import audit
from pki.auth.access import Actor
from pki.errors import ConflictError, NotFoundError, ValidationError
from pki.models import CertificateAuthority, CertificateProfile

from . import config
from .challenge import secret
from .models import NameGenerationScheme, OperationMode, ScepAlias, validate_alias_name
from .validators import load_validator_class

RULE = "/system_functionality/edit_systemconfiguration"
SECRET_FIELDS = ("ra_auth_password", "intune_app_key", "intune_proxy_pass")
# Settings given as names of other objects, resolved here.
REFERENCES: dict[str, tuple[type, str]] = {
    "default_ca": (CertificateAuthority, "CA"),
    "ra_default_ca": (CertificateAuthority, "CA"),
    "ra_certificate_profile": (CertificateProfile, "certificate profile"),
    "ra_end_entity_profile": (EndEntityProfile, "end entity profile"),
    "ra_crypto_token": (CryptoToken, "crypto token"),
}
PLAIN_FIELDS = (
    "enabled", "operation_mode", "include_ca", "return_ca_chain", "allow_legacy_digest", "allow_des",
    "max_body_size", "ra_name_generation_scheme", "ra_name_generation_parameters", "ra_name_generation_prefix",
    "ra_name_generation_postfix", "client_certificate_renewal", "allow_client_certificate_renewal_with_old_key",
    "ra_key_alias", "challenge_validator", "use_intune",
)
EDITABLE = frozenset(PLAIN_FIELDS) | frozenset(REFERENCES) | frozenset(SECRET_FIELDS) | {"intune_settings"}


def check_name(name: str) -> str:
    """The alias name, or a ValidationError naming the rule."""
    try:
        validate_alias_name(name)
    except DjangoValidationError as exc:
        raise ValidationError(exc.messages[0], field="name") from None
    return name


def get_alias(name: str) -> ScepAlias:
    """An alias by name (NotFoundError for an invalid or unknown name)."""
    try:
        check_name(name)
        return ScepAlias.objects.select_related(
            "default_ca", "ra_default_ca", "ra_certificate_profile", "ra_end_entity_profile", "ra_crypto_token",
        ).get(name=name)
    except (ValidationError, ScepAlias.DoesNotExist):
        raise NotFoundError(f"SCEP alias '{name}' does not exist.") from None


def list_aliases() -> list[ScepAlias]:
    return list(ScepAlias.objects.select_related("default_ca", "ra_default_ca"))


def _resolve(field: str, value: Any) -> Any:
    if value in (None, "") or (field == "ra_default_ca" and str(value) == "ProfileDefault"):
        return None
    model, label = REFERENCES[field]
    if isinstance(value, model):
        return value
    obj = model.objects.filter(name=str(value)).first()
    if obj is None:
        raise ValidationError(f"No {label} named '{value}'.", field=field)
    return obj


def _apply(alias: ScepAlias, changes: dict[str, Any]) -> list[str]:
    """Set ``changes`` on ``alias`` (not saved); returns the changed setting names (secrets by name only)."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationError(f"Unknown SCEP alias setting(s): {', '.join(sorted(unknown))}.")
    changed = []
    for field, value in changes.items():
        if field in REFERENCES:
            setattr(alias, field, _resolve(field, value))
        elif field in SECRET_FIELDS:
            value = str(value or "")
            setattr(alias, field, encrypt_secret(value, alias.secret_context(field)) if value else "")
        elif field == "intune_settings":
            alias.intune_settings = {**(alias.intune_settings or {}), **dict(value or {})}
        else:
            setattr(alias, field, value)
        changed.append(field)
    _validate(alias)
    return changed


def _validate(alias: ScepAlias) -> None:
    if alias.operation_mode not in OperationMode.values:
        raise ValidationError("The operation mode is ca or ra.", field="operation_mode")
    if alias.ra_name_generation_scheme not in NameGenerationScheme.values:
        raise ValidationError("The name generation scheme is DN, RANDOM, FIXED or USERNAME.",
                              field="ra_name_generation_scheme")
    if alias.ra_name_generation_scheme == NameGenerationScheme.FIXED and not alias.ra_name_generation_parameters:
        raise ValidationError("The FIXED scheme needs the name as its parameter.",
                              field="ra_name_generation_parameters")
    if not isinstance(alias.max_body_size, int) or alias.max_body_size < 1024:
        raise ValidationError("The maximum body size is at least 1024 bytes.", field="max_body_size")
    if bool(alias.ra_crypto_token_id) != bool(alias.ra_key_alias):
        raise ValidationError("An RA key needs both a crypto token and a key alias.", field="ra_key_alias")
    if alias.ra_crypto_token_id and not CryptoTokenKeyPair.objects.filter(
            token_id=alias.ra_crypto_token_id, alias=alias.ra_key_alias).exists():
        raise ValidationError(f"No key pair '{alias.ra_key_alias}' on the RA crypto token.", field="ra_key_alias")
    if alias.challenge_validator:
        load_validator_class(alias.challenge_validator)  # raises ValidationError when it cannot be loaded
    _check_workable(alias)


def _is_ca_key(token_id: int, key_alias: str) -> str | None:
    """The name of the CA whose current or rollover signing key is ``key_alias`` on that token, if any."""
    from django.db.models import Q

    return (CertificateAuthority.objects.filter(crypto_token_id=token_id)
            .filter(Q(key_alias=key_alias) | Q(rollover_key_alias=key_alias)).values_list("name", flat=True).first())


def _check_workable(alias: ScepAlias) -> None:
    """Refuse an alias that cannot work as configured (it would be saved, then fail every request)."""
    ra = alias.operation_mode == OperationMode.RA or alias.use_intune
    if ra and alias.enabled and not (alias.ra_auth_password or alias.challenge_validator or alias.use_intune):
        # (A disabled one may wait for its secret: a configdump import brings none.)
        raise ValidationError("An RA-mode alias needs an RA shared secret (ra.authPwd) or a challenge validator: "
                              "without one it would issue a certificate to anyone who asks.",
                              field="ra_auth_password")
    pair = None
    if alias.ra_crypto_token_id:
        pair = CryptoTokenKeyPair.objects.filter(token_id=alias.ra_crypto_token_id, alias=alias.ra_key_alias).first()
        owner = _is_ca_key(alias.ra_crypto_token_id, alias.ra_key_alias)
        if owner is not None:
            raise ValidationError(f"Key pair '{alias.ra_key_alias}' is the signing key of CA '{owner}': the RA key "
                                  "must be a key pair of its own (SCEP decrypts with it).", field="ra_key_alias")
        if pair is not None and pair.key_algorithm != KeyAlgorithm.RSA:
            raise ValidationError(f"RA key pair '{alias.ra_key_alias}' is {pair.key_algorithm}: SCEP encrypts "
                                  "requests to the RA key, which must be RSA.", field="ra_key_alias")
    if ra and pair is None:
        # The alias's own RA CA. ("ProfileDefault" takes the end entity profile's default CA, which may change
        # after the alias is saved: not judged here.)
        ca = alias.ra_default_ca
        cert = ca.certificate if ca is not None else None
        if cert is not None and not isinstance(cert.public_key(), rsa.RSAPublicKey):
            raise ValidationError(f"CA '{ca.name}' has no RSA key, and SCEP decrypts requests with the CA's key: "
                                  "give the alias an RSA RA key pair (RA crypto token and key alias), or choose "
                                  "an RSA CA.", field="ra_key_alias")


def _defaults() -> dict[str, Any]:
    """EJBCA's defaults for a new alias: RA mode would use ENDUSER and EMPTY."""
    return {
        "ra_certificate_profile": CertificateProfile.objects.filter(name="ENDUSER").first(),
        "ra_end_entity_profile": EndEntityProfile.objects.filter(name="EMPTY").first(),
    }


def _audit_values(changed: list[str], alias: ScepAlias) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in changed:
        if field in SECRET_FIELDS:
            out[field] = "(changed)"
        elif field in REFERENCES:
            out[field] = str(getattr(alias, field) or "")
        else:
            out[field] = getattr(alias, field)
    return out


def add_alias(actor: Actor, name: str, **settings: Any) -> ScepAlias:
    """Create an alias with EJBCA's defaults, then ``settings``."""
    actor.require(RULE)
    check_name(name)
    alias = ScepAlias(name=name, **{k: v for k, v in _defaults().items() if k not in settings})
    changed = _apply(alias, settings)
    try:
        with transaction.atomic():
            alias.save()
            audit.record("SCEP_ALIAS_ADD", actor.name, object_type="scep_alias", object_id=name,
                         details=_audit_values(changed, alias), in_transaction=True)
    except IntegrityError:
        raise ConflictError(f"SCEP alias '{name}' already exists.", field="name") from None
    return alias


def edit_alias(actor: Actor, alias: ScepAlias | str, **changes: Any) -> ScepAlias:
    """Change settings of an alias (secrets: the new plaintext, '' to clear, absent to keep)."""
    actor.require(RULE)
    name = alias.name if isinstance(alias, ScepAlias) else alias
    with transaction.atomic():
        locked = ScepAlias.objects.select_for_update().filter(name=name).first()
        if locked is None:
            raise NotFoundError(f"SCEP alias '{name}' does not exist.")
        changed = _apply(locked, changes)
        locked.save()
        audit.record("SCEP_ALIAS_EDIT", actor.name, object_type="scep_alias", object_id=name,
                     details=_audit_values(changed, locked), in_transaction=True)
    return locked


def rename_alias(actor: Actor, old: str, new: str) -> ScepAlias:
    actor.require(RULE)
    check_name(new)
    try:
        with transaction.atomic():
            alias = ScepAlias.objects.select_for_update().filter(name=old).first()
            if alias is None:
                raise NotFoundError(f"SCEP alias '{old}' does not exist.")
            # Secrets are bound to the alias name: re-encrypt them under the new one.
            plain = {f: secret(alias, f) for f in SECRET_FIELDS}
            alias.name = new
            for f, v in plain.items():
                setattr(alias, f, encrypt_secret(v, alias.secret_context(f)) if v else "")
            alias.save()
            audit.record("SCEP_ALIAS_RENAME", actor.name, object_type="scep_alias", object_id=new,
                         details={"old": old}, in_transaction=True)
    except IntegrityError:
        raise ConflictError(f"SCEP alias '{new}' already exists.", field="name") from None
    return alias


def remove_alias(actor: Actor, name: str) -> None:
    actor.require(RULE)
    with transaction.atomic():
        deleted, _ = ScepAlias.objects.filter(name=name).delete()
        if not deleted:
            raise NotFoundError(f"SCEP alias '{name}' does not exist.")
        audit.record("SCEP_ALIAS_REMOVE", actor.name, object_type="scep_alias", object_id=name,
                     in_transaction=True)


def upload_properties(actor: Actor, name: str, text: str) -> tuple[ScepAlias | None, list[str]]:
    """Read ``<name>.<key>`` lines of a properties file into alias ``name`` (created if missing).

    Returns (alias, the keys read); (None, []) when the file has no line for this alias, as EJBCA then
    leaves everything unchanged. A bad value refuses the whole file.
    """
    actor.require(RULE)
    check_name(name)
    values = config.alias_properties(config.parse_properties(text), name)
    settings, ignored = config.settings_from_properties(values)
    read = [k for k in values if k not in ignored]
    if not settings:
        return None, []
    with transaction.atomic():
        exists = ScepAlias.objects.filter(name=name).exists()
        alias = edit_alias(actor, name, **settings) if exists else add_alias(actor, name, **settings)
    return alias, read


def alias_values(alias: ScepAlias) -> dict[str, Any]:
    """The alias's settings by setting name, references as names (for dumps and forms)."""
    values: dict[str, Any] = {f: getattr(alias, f) for f in PLAIN_FIELDS}
    for field in REFERENCES:
        obj = getattr(alias, field)
        values[field] = obj.name if obj is not None else ""
    for field in SECRET_FIELDS:
        values[field] = bool(getattr(alias, field))
    values["intune_settings"] = dict(alias.intune_settings or {})
    return values


def dump_alias(name: str) -> str:
    """EJBCA's ``dumpalias``: the alias as ``<alias>.<key>=value`` lines (secrets masked)."""
    alias = get_alias(name)
    return config.dump_properties(alias.name, alias_values(alias))


def issue_ra_certificate(actor: Actor, name: str, subject_dn: str | None = None,
                         profile: str = "ENDUSER") -> ScepAlias:
    """Issue the certificate of the alias's RA key pair from the alias's CA (through the issuance pipeline),
    so clients encrypt to the RA key and trust its replies. Needs the RA key on the alias."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    from pki.issuance import IssuanceRequest, issue
    from pki.services.profiles import get_profile

    from .operations import alias_default_ca

    actor.require(RULE)
    alias = get_alias(name)
    if not alias.ra_crypto_token_id:
        raise ValidationError("The alias has no RA key pair.", field="ra_key_alias")
    ca = alias_default_ca(alias)
    if ca is None:
        raise ValidationError("The alias has no CA to issue the RA certificate.", field="ra_default_ca")
    pair = CryptoTokenKeyPair.objects.get(token_id=alias.ra_crypto_token_id, alias=alias.ra_key_alias)
    issued = issue(IssuanceRequest(
        ca=ca, actor=actor, profile=get_profile(profile), public_key=load_der_public_key(bytes(pair.public_key_der)),
        subject_dn=subject_dn or f"CN=SCEP RA {alias.name}", username=f"scep-ra:{alias.name}",
    ))
    with transaction.atomic():
        ScepAlias.objects.filter(pk=alias.pk).update(ra_certificate_der=issued.row.der)
        audit.record("SCEP_ALIAS_EDIT", actor.name, object_type="scep_alias", object_id=alias.name,
                     details={"ra_certificate": issued.row.serial}, in_transaction=True)
    alias.ra_certificate_der = issued.row.der
    return alias


def settings_default_ca_name() -> str:
    """``PKI_SCEP_DEFAULT_CA`` (EJBCA's ``scep.defaultca``): the CA of CA-mode requests that name none."""
    return getattr(django_settings, "PKI_SCEP_DEFAULT_CA", "") or ""
