"""The core's configdump item types: CAs (settings and certificates, never keys), certificate profiles, trusted
OAuth providers (without their client secret) and roles with their access rules and members. Registered by
``PkiConfig.ready``; the framework is :mod:`pki.services.configdump`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.db.models import Q

from cryptotokens.models import CryptoToken

from ..auth.access import Actor
from ..errors import ValidationError
from ..models import CertificateAuthority, CertificateProfile, Role, RoleMember, TrustedOAuthProvider
from . import cas as ca_services
from . import oauth as oauth_services
from . import profiles as profile_services
from . import roles as role_services
from .configdump import ImportContext, ItemType, register, rule_from_dump, rule_to_dump

# --- CAs -----------------------------------------------------------------------------------------------

_CA_DURATIONS = ("crl_period", "crl_overlap", "delta_crl_period")
_CA_EDITABLE = ("description", "validity", "crl_distribution_point", "ocsp_url", "ca_issuers_url",
                "signature_algorithm", "enforce_unique_public_keys", "enforce_unique_dn",
                "enforce_unique_dn_serial_number", *_CA_DURATIONS)


def _pem(der: bytes | None) -> str:
    return x509.load_der_x509_certificate(bytes(der)).public_bytes(Encoding.PEM).decode() if der else ""


def _export_cas(actor: Actor) -> list[dict[str, Any]]:
    out = []
    for ca in CertificateAuthority.objects.select_related("crypto_token", "signed_by", "certificate_profile"):
        if not actor.is_allowed(f"/ca/{ca.pk}"):
            continue
        item: dict[str, Any] = {
            "name": ca.name, "subject_dn": ca.subject_dn, "status": ca.status,
            "crypto_token": ca.crypto_token.name if ca.crypto_token else "", "key_alias": ca.key_alias,
            "signed_by": ca.signed_by.name if ca.signed_by else "",
            "certificate_profile": ca.certificate_profile.name if ca.certificate_profile else "",
            **{f: getattr(ca, f) for f in _CA_EDITABLE if f not in _CA_DURATIONS},
            **{f: int(getattr(ca, f).total_seconds()) for f in _CA_DURATIONS},
            "certificate": _pem(ca.certificate_der),
            "certificate_chain": [_pem(bytes.fromhex(h)) for h in ca.external_chain or []],
        }
        out.append(item)
    return out


def _ca_changes(item: dict[str, Any]) -> dict[str, Any]:
    changes = {}
    for f in _CA_EDITABLE:
        if f not in item:
            continue
        value = item[f]
        if f in _CA_DURATIONS:
            if not isinstance(value, int) or value < 0:
                raise ValidationError(f"{f} is a whole number of seconds.", field=f)
            value = timedelta(seconds=value)
        changes[f] = value
    return changes


def _write_ca(actor: Actor, item: dict[str, Any], existing: bool, ctx: ImportContext) -> None:
    """Existing CA: its settings are updated (not its key, certificate or status). New CA: created on its crypto
    token's key when ``initialize`` is set and that key is here, else imported from its certificate for trust
    only (the dump holds no keys)."""
    name = item["name"]
    changes = _ca_changes(item)
    if existing:
        ca = ca_services.get_ca(name)
        if ca.is_external:
            changes = {k: v for k, v in changes.items() if k == "description"}
        ca_services.edit_ca(actor, ca, **changes)
        return
    token = CryptoToken.objects.filter(name=item.get("crypto_token") or "").first()
    if ctx.initialize and token is not None and item.get("key_alias"):
        signed_by = ca_services.get_ca(item["signed_by"]) if item.get("signed_by") else None
        ca_services.create_ca(actor, ca_services.CASettings(
            name=name, subject_dn=str(item.get("subject_dn") or ""), crypto_token=token,
            key_alias=str(item["key_alias"]), signed_by=signed_by, validity=str(item.get("validity") or "10y"),
            signature_algorithm=item.get("signature_algorithm") or None,
            certificate_profile=item.get("certificate_profile") or None,
            **{k: v for k, v in changes.items() if k in ("crl_period", "crl_overlap", "delta_crl_period",
                                                         "crl_distribution_point", "ocsp_url", "ca_issuers_url",
                                                         "description", "enforce_unique_public_keys",
                                                         "enforce_unique_dn", "enforce_unique_dn_serial_number")},
        ))
        return
    pem = "".join([str(item.get("certificate") or ""), *[str(c) for c in item.get("certificate_chain") or []]])
    if not pem.strip():
        raise ValidationError("a new CA needs its certificate in the dump, or initialize=true with its crypto "
                              "token and key here.", field="certificate")
    ca_services.import_ca(actor, name, pem.encode())
    if item.get("status") != "EXTERNAL":
        ctx.warnings.append(f"CA '{name}' was imported for trust only: a dump carries no keys (use initialize=true "
                            "with the key on a crypto token here to create it as an issuing CA).")


def _ca_references(item: dict[str, Any]) -> list[tuple[str, str, str]]:
    refs = [("CA", str(item.get("signed_by") or ""), "signed_by")]
    if item.get("certificate_profile"):
        refs.append(("CERTPROFILE", str(item["certificate_profile"]), "certificate_profile"))
    return refs


def _ca_name(pk: int) -> str | None:
    return CertificateAuthority.objects.filter(pk=pk).values_list("name", flat=True).first()


def _ca_id(name: str) -> int | None:
    return CertificateAuthority.objects.filter(name=name).values_list("pk", flat=True).first()


# --- certificate profiles ------------------------------------------------------------------------------

def _export_certificate_profiles(actor: Actor) -> list[dict[str, Any]]:
    return [{"name": p.name, **{f: getattr(p, f) for f in profile_services.EDITABLE_FIELDS}}
            for p in CertificateProfile.objects.filter(builtin=False).order_by("name")]


def _write_certificate_profile(actor: Actor, item: dict[str, Any], existing: bool, ctx: ImportContext) -> None:
    current = CertificateProfile.objects.filter(name=item["name"]).first() if existing else None
    values = {k: v for k, v in item.items() if k in profile_services.EDITABLE_FIELDS}
    profile_services.save_profile(actor, item["name"], values, current)


# --- trusted OAuth providers ---------------------------------------------------------------------------

def _export_oauth(actor: Actor) -> list[dict[str, Any]]:
    # The client secret is never exported: re-enter it after an import (a warning says so).
    return [{"name": p.label, **{f: getattr(p, f) for f in oauth_services.FIELDS if f != "label"}}
            for p in TrustedOAuthProvider.objects.order_by("label")]


def _write_oauth(actor: Actor, item: dict[str, Any], existing: bool, ctx: ImportContext) -> None:
    values = {k: v for k, v in item.items() if k in oauth_services.FIELDS}
    values["label"] = item["name"]
    current = TrustedOAuthProvider.objects.filter(label=item["name"]).first() if existing else None
    oauth_services.save_provider(actor, values, current)
    if current is None and values.get("client_id"):
        ctx.warnings.append(f"OAUTHKEY '{item['name']}': set its client secret (never part of a dump).")


# --- roles -----------------------------------------------------------------------------------------------

def _member_out(m: RoleMember) -> dict[str, Any]:
    return {"match_type": m.match_type, "match_value": m.match_value,
            "provider": m.provider.label if m.provider_id else "", "claim": m.claim,
            "issuer_ca": m.issuer_ca.name if m.issuer_ca_id else "", "description": m.description}


def _export_roles(actor: Actor) -> list[dict[str, Any]]:
    out = []
    for role in Role.objects.prefetch_related("rules", "members__provider", "members__issuer_ca").order_by("name"):
        out.append({
            "name": role.name, "description": role.description,
            "access_rules": {rule_to_dump(r.resource): r.allowed for r in role.rules.all()},
            "members": [_member_out(m) for m in role.members.all()],
        })
    return out


def _role_references(item: dict[str, Any]) -> list[tuple[str, str, str]]:
    refs = []
    for m in item.get("members") or []:
        if isinstance(m, dict) and m.get("issuer_ca"):
            refs.append(("CA", str(m["issuer_ca"]), "members"))
        if isinstance(m, dict) and m.get("provider"):
            refs.append(("OAUTHKEY", str(m["provider"]), "members"))
    return refs


def _same_member(m: RoleMember, spec: role_services.MemberSpec) -> bool:
    return (m.match_type == spec.match_type and m.match_value == spec.match_value
            and (m.provider.label if m.provider_id else "") == (getattr(spec.provider, "label", spec.provider) or "")
            and m.issuer_ca_id == (spec.issuer_ca.pk if spec.issuer_ca else None))


def _write_role(actor: Actor, item: dict[str, Any], existing: bool, ctx: ImportContext) -> None:
    """A role's description, its whole rule set, and its members (members in the dump are added; members
    already here are kept: an import never locks an administrator out)."""
    rules = item.get("access_rules") or {}
    members = item.get("members") or []
    if not isinstance(rules, dict) or not isinstance(members, list):
        raise ValidationError("access_rules is a mapping of rule path to true/false, members a list.",
                              field="access_rules")
    role = Role.objects.filter(name=item["name"]).first()
    if role is None:
        role = role_services.create_role(actor, item["name"], str(item.get("description") or ""))
    elif "description" in item:
        role = role_services.edit_role(actor, role, role.name, str(item.get("description") or ""))
    role_services.set_rules(actor, role, {rule_from_dump(str(path)): bool(a) for path, a in rules.items()})
    current = list(role.members.select_related("provider"))
    for raw in members:
        if not isinstance(raw, dict):
            raise ValidationError("Each member is a mapping (match_type, match_value, ...).", field="members")
        issuer = ca_services.get_ca(raw["issuer_ca"]) if raw.get("issuer_ca") else None
        spec = role_services.MemberSpec(
            match_type=str(raw.get("match_type") or ""), match_value=str(raw.get("match_value") or ""),
            provider=str(raw.get("provider") or ""), claim=str(raw.get("claim") or ""), issuer_ca=issuer,
            description=str(raw.get("description") or ""))
        if spec.match_type == "CERTIFICATE_SERIAL":
            spec.match_value = role_services.normalize_serial(spec.match_value)
        if not any(_same_member(m, spec) for m in current):
            role_services.add_member(actor, role, spec)


def register_items() -> None:
    """Declare the core's item types (``PkiConfig.ready``)."""
    register(ItemType(
        name="CA", directory="certification-authorities", label="Certification Authority",
        view_rule="/ca_functionality/view_ca", export=_export_cas, order=10,
        exists=lambda name: CertificateAuthority.objects.filter(name=name).exists(), write=_write_ca,
        references=_ca_references, rule_prefix="/ca/", id_to_name=_ca_name, name_to_id=_ca_id,
    ))
    register(ItemType(
        name="CERTPROFILE", directory="certificate-profiles", label="Certificate Profile",
        view_rule="/ca_functionality/view_certificate_profiles", export=_export_certificate_profiles, order=5,
        exists=lambda name: CertificateProfile.objects.filter(name=name).exists(),
        write=_write_certificate_profile,
    ))
    register(ItemType(
        name="OAUTHKEY", directory="trusted-oauth-providers", label="Trusted OAuth Provider",
        view_rule=oauth_services.RULE, export=_export_oauth, order=60,
        exists=lambda name: TrustedOAuthProvider.objects.filter(Q(label=name)).exists(), write=_write_oauth,
    ))
    register(ItemType(
        name="ROLE", directory="admin-roles", label="Admin Role", view_rule=role_services.VIEW_RULE,
        export=_export_roles, order=90, exists=lambda name: Role.objects.filter(name=name).exists(),
        write=_write_role, references=_role_references,
    ))
