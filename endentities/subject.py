"""Subject DN and subject alternative name of an end entity: merge with the profile's defaults, match to
the profile's field instances, normalize, encode, and redact from logs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography import x509
from django.conf import settings

from pki import audit
from pki.errors import ValidationError
from pki.x509.altnames import (
    AltNameError,
    canonical_altname_value,
    escape_altname_value,
    parse_altname_pairs,
    quick_general_name,
)
from pki.x509.dn import DNError, escape_value, name_from_pairs, needs_escape_any, parse_dn_pairs
from pki.x509.fields import DN_RANK
from pki.x509.othernames import SIMError, compute_sim, is_sim_input

from .fields import ALT_NAME_TYPES, DN_TYPES, MAX_ALT_NAMES, FieldType
from .profilerules import (
    TypeRules,
    check_forbidden,
    check_value,
    default_of,
    forbidden_characters,
    has_forbidden,
    match_instances,
)

if TYPE_CHECKING:
    from .models import EndEntityProfile

# Alt-name types whose stored string is re-read from the encoded GeneralName (canonical_altname_value), or
# escaped beyond commas (a directoryName).
_RECODED_KEYS = frozenset({"IPADDRESS", "DIRECTORYNAME", "FASCN", "GUID"})
Pairs = list[list[tuple[str, str]]]  # RDNs in string order, each a list of (attribute key, value)
REDACTED = audit.REDACTED  # one spelling for the core and this app
# Keys of log/audit details that hold a subject name.
SUBJECT_DETAIL_KEYS = frozenset({
    "subject_dn", "subject_alt_name", "subjectDN", "subjectAltName", "subject_altname", "dn", "san", "altname",
    "subject", "alt_name", "issued_subject",
})


def _instances(fields: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [f for f in fields if f.get("type") == key]


def _by_type(fields: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Field instances grouped by type, in profile order (one pass: validation is hot)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for f in fields:
        out.setdefault(f["type"], []).append(f)
    return out


class _ProfileRules:
    """A profile's field instances grouped by type with their checks compiled (:class:`TypeRules`), built once
    per profile instance: validating many end entities against one profile re-read and re-compiled them for
    every value. Rebuilt when the profile is saved (``updated_at``) or its field lists are replaced."""

    __slots__ = ("key", "dn_fields", "alt_fields", "dn_by_type", "alt_by_type", "dn_rules", "alt_rules", "dn_plan")

    def __init__(self, key: tuple, dn_fields: list[dict[str, Any]], alt_fields: list[dict[str, Any]]) -> None:
        self.key = key
        self.dn_fields, self.alt_fields = dn_fields, alt_fields  # held: their ids are part of the key
        self.dn_by_type = _by_type(dn_fields)
        self.alt_by_type = _by_type(alt_fields)
        self.dn_rules = {k: TypeRules(DN_TYPES[k], v) for k, v in self.dn_by_type.items() if k in DN_TYPES}
        self.alt_rules = {k: TypeRules(ALT_NAME_TYPES[k], v) for k, v in self.alt_by_type.items()
                          if k in ALT_NAME_TYPES}
        # (type key, its rules or None for a type EJBCA has no name for), in profile order
        self.dn_plan = [(k, self.dn_rules.get(k)) for k in self.dn_by_type]


def _rules(profile: EndEntityProfile) -> _ProfileRules:
    dn_fields, alt_fields = profile.subject_dn_fields or [], profile.subject_alt_name_fields or []
    key = (profile.updated_at, id(dn_fields), len(dn_fields), id(alt_fields), len(alt_fields))
    cached = getattr(profile, "_ee_rules", None)
    if cached is None or cached.key != key:
        cached = _ProfileRules(key, dn_fields, alt_fields)
        profile._ee_rules = cached  # type: ignore[attr-defined]
    return cached


# --- merge -------------------------------------------------------------------------------------------------

def _merge_pairs(profile: EndEntityProfile, rdns: Pairs) -> Pairs:
    """Add the profile's default values to a parsed DN (EJBCA's "allow merge DN").

    Per attribute type: with no value given, every non-empty default is added; with as many values as the
    profile has empty instances of the type, the defaults keep their instances and the given values fill
    the empty ones in order ("OU=Org1,OU=Org2,OU=,OU=" + "OU=Org3,OU=Org4" -> Org1, Org2, Org3, Org4);
    with more values than that, the given values are the whole of the type."""
    out: Pairs = [list(rdn) for rdn in rdns]
    seen: list[str] = []
    for inst in profile.subject_dn_fields:
        if inst["type"] not in seen:
            seen.append(inst["type"])
    for key in seen:
        instances = _instances(profile.subject_dn_fields, key)
        defaults = [default_of(i) for i in instances]
        if not any(defaults):
            continue
        given = [v for rdn in out for k, v in rdn if k == key and v]
        free = sum(1 for d in defaults if not d)
        if given and len(given) > free:
            continue
        if any(len(rdn) > 1 and any(k == key for k, _ in rdn) for rdn in out):
            if given:  # values inside a multi-valued RDN stay as they are, without defaults around them
                continue
            merged = [d for d in defaults if d]
        else:
            it = iter(given)
            merged = [d if d else next(it, "") for d in defaults]
            merged = [v for v in merged if v] + list(it)
            out = [rdn for rdn in out if rdn[0][0] != key]
        out.extend([(key, v)] for v in merged)
    return out


def merge_dn_with_profile_defaults(profile: EndEntityProfile, subject_dn: str) -> str:
    """``subject_dn`` merged with the profile's default values, in EJBCA's attribute order:
    profile defaults OU=OrgUnit + "CN=Username,O=Org,C=SE" -> "CN=Username,OU=OrgUnit,O=Org,C=SE"."""
    try:
        rdns = parse_dn_pairs(subject_dn)
    except DNError as exc:
        raise ValidationError(str(exc), field="subject_dn") from None
    return format_pairs(_sorted(_merge_pairs(profile, rdns)))


# --- subject DN --------------------------------------------------------------------------------------------

def _sorted(rdns: Pairs) -> Pairs:
    """EJBCA's attribute order (stable within a type); unknown OIDs after the known attributes."""
    rest = len(DN_RANK)
    return sorted(rdns, key=lambda rdn: DN_RANK.get(rdn[0][0], rest))


def format_pairs(rdns: Pairs) -> str:
    """An EJBCA DN string from parsed pairs (empty values dropped)."""
    if all(len(rdn) == 1 for rdn in rdns):
        values = [rdn[0][1] for rdn in rdns]
        if not needs_escape_any(values):  # the usual DN: nothing to escape, no value to look at one by one
            return ",".join([f"{k}={v}" for (k, v), in rdns if v])
    parts = []
    for rdn in rdns:
        if len(rdn) == 1:
            k, v = rdn[0]
            if v:
                parts.append(f"{k}={escape_value(v, k)}")
            continue
        attrs = [f"{k}={escape_value(v, k)}" for k, v in rdn if v]
        if attrs:
            parts.append("+".join(attrs))
    return ",".join(parts)


def validate_subject_dn(profile: EndEntityProfile, subject_dn: str, *, merge: bool = False) -> tuple[str, x509.Name]:
    """Check a DN string against the profile; returns the normalized string and its ``x509.Name``."""
    text, name, _ = validate_subject_dn_pairs(profile, subject_dn, merge=merge)
    return text, name


def common_name_of(rdns: Pairs) -> str:
    """The first CN of parsed pairs ("" when none)."""
    return next((v for rdn in rdns for k, v in rdn if k == "CN"), "")


def validate_subject_dn_pairs(profile: EndEntityProfile, subject_dn: str, *,
                              merge: bool = False) -> tuple[str, x509.Name, Pairs]:
    """:func:`validate_subject_dn`, also returning the normalized pairs."""
    try:
        rdns = parse_dn_pairs(subject_dn or "")
    except DNError as exc:
        raise ValidationError(str(exc), field="subject_dn") from None
    if any(len(rdn) > 1 for rdn in rdns) and not (profile.allow_multi_value_rdns or profile.any_dn):
        raise ValidationError(
            "Multi-valued RDNs ('+') are not allowed by the end entity profile.", field="subject_dn"
        )
    bad = forbidden_characters()
    if has_forbidden(subject_dn, bad):  # then find the value, to name its field
        for rdn in rdns:
            for key, value in rdn:
                check_forbidden(value, f"Subject DN field '{key}'", "subject_dn", bad)
    if merge:
        rdns = _merge_pairs(profile, rdns)
    values: dict[str, list[str]] = {}
    for rdn in rdns:
        for key, value in rdn:
            values.setdefault(key, []).append(value)
    rules = _rules(profile)
    by_type = rules.dn_by_type
    reverse = profile.reverse_field_checks
    if not profile.any_dn:  # the profile's types in its order, then the given types it has no field for
        for key, type_rules in rules.dn_plan:
            given = values.pop(key, [])
            if type_rules is None:  # a dotted OID EJBCA has no name for
                raise ValidationError(f"Subject DN attribute {key} is not allowed by the end entity profile.",
                                      field="subject_dn")
            type_rules.check(given, reverse, "subject_dn")
        for key, given in values.items():
            ftype = DN_TYPES.get(key)
            if ftype is None:
                raise ValidationError(f"Subject DN attribute {key} is not allowed by the end entity profile.",
                                      field="subject_dn")
            match_instances(ftype, [], given, reverse=reverse, field="subject_dn")
    else:  # any DN: every known attribute in its built-in format, required fields present
        for key in dict.fromkeys([*by_type, *values]):
            ftype = DN_TYPES.get(key)
            if ftype is None:  # a dotted OID EJBCA has no name for
                continue
            given = values.get(key, [])
            for value in given:
                if value:
                    check_value(ftype, None, value, "subject_dn")
            for inst in by_type.get(key, []):
                if inst.get("required") and not any(given):
                    raise ValidationError(f"Subject DN field '{ftype.ejbca_name}' must exist.", field="subject_dn")
    # placeholders ("OU=") dropped; single-valued RDNs (nearly all) kept as they are
    rdns = _sorted([rdn if len(rdn) == 1 else [(k, v) for k, v in rdn if v]
                    for rdn in rdns if rdn[0][1] or any(v for _, v in rdn)])
    try:
        name = name_from_pairs(rdns)
    except DNError as exc:
        raise ValidationError(str(exc), field="subject_dn") from None
    return format_pairs(rdns), name, rdns


# --- subject alternative name ------------------------------------------------------------------------------

def _fill_entity_values(instances: list[dict[str, Any]], given: list[str], option: str, entity_value: str,
                        ftype: FieldType) -> list[str]:
    """Put the end entity's e-mail (RFC822NAME) or CN (DNSNAME) into the instances that use it; the given
    values fill the other instances in order (a given copy of the entity value is taken as that instance's)."""
    slots = [i for i, inst in enumerate(instances) if inst.get(option)]
    if not slots or not entity_value:
        return list(given)
    rest = list(given)
    for _ in slots:
        if entity_value in rest:
            rest.remove(entity_value)
    values: list[str] = []
    it = iter(rest)
    for idx in range(len(instances)):
        values.append(entity_value if idx in slots else next(it, ""))
    values.extend(it)  # more than the profile has room for: match_instances refuses them
    while values and not values[-1]:
        values.pop()
    return values


def _complete_email(inst: dict[str, Any] | None, value: str) -> str:
    """A local part alone takes the domain set as the RFC822NAME field's default."""
    if "@" in value or inst is None:
        return value
    domain = default_of(inst)
    if domain and "@" not in domain.lstrip("@"):
        return f"{value}@{domain.lstrip('@')}"
    return value


def validate_alt_names(profile: EndEntityProfile, subject_alt_name: str, *, email: str = "",
                       subject: x509.Name | None = None, cn: str | None = None) -> tuple[str, list[x509.GeneralName]]:
    """Check an alt-name string against the profile; returns the normalized string (SIM parameters replaced
    by the computed SIM) and the ``GeneralName`` list. The CN for "use entity CN" is ``cn``, or read from
    ``subject``."""
    try:
        pairs = parse_altname_pairs(subject_alt_name or "")
    except AltNameError as exc:
        raise ValidationError(str(exc), field="subject_alt_name") from None
    values: dict[str, list[str]] = {}
    bad = forbidden_characters()
    check = has_forbidden(subject_alt_name or "", bad)
    for key, value in pairs:
        if check and key != "URI":  # URIs legitimately hold '?', '%', '~' and '$'
            check_forbidden(value, f"Subject alternative name field '{key}'", "subject_alt_name", bad)
        values.setdefault(key, []).append(value)
    rules = _rules(profile)
    by_type = rules.alt_by_type
    if cn is None:
        cn = ""
        if subject is not None:
            attrs = subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            cn = str(attrs[0].value) if attrs else ""
    out: list[tuple[str, str]] = []
    for key in dict.fromkeys([*by_type, *values]):
        ftype = ALT_NAME_TYPES[key]
        instances = by_type.get(key, [])
        given = values.get(key, [])
        if key == "RFC822NAME" and email:
            given = _fill_entity_values(instances, given, "use_entity_email", email, ftype)
        if key == "DNSNAME" and cn:
            given = _fill_entity_values(instances, given, "use_entity_cn", cn, ftype)
        if key == "RFC822NAME":
            given = [_complete_email(instances[i] if i < len(instances) else None, v) if v else v
                     for i, v in enumerate(given)]
        if key == "SUBJECTIDENTIFICATIONMETHOD":
            try:
                given = [compute_sim(v) if v and is_sim_input(v) else v for v in given]
            except SIMError as exc:
                raise ValidationError(str(exc), field="subject_alt_name") from None
        if profile.any_dn:
            kept = [v for v in given if v]
            for v in kept:
                check_value(ftype, None, v, "subject_alt_name")
            if any(i.get("required") for i in instances) and not kept:
                raise ValidationError(f"Subject alternative name field '{key}' must exist.", field="subject_alt_name")
        else:
            type_rules = rules.alt_rules.get(key)
            if type_rules is None:
                kept = match_instances(ftype, instances, given, reverse=profile.reverse_field_checks,
                                       field="subject_alt_name")
            else:
                kept = type_rules.check(given, profile.reverse_field_checks, "subject_alt_name")
        out.extend((key, v) for v in kept)
    if len(out) > MAX_ALT_NAMES:
        raise ValidationError(
            f"At most {MAX_ALT_NAMES} subject alternative names are allowed ({len(out)} given).",
            field="subject_alt_name",
        )
    names: list[x509.GeneralName] = []
    texts: list[str] = []
    for key, value in out:
        try:
            gn = quick_general_name(key, value)
        except AltNameError as exc:
            raise ValidationError(str(exc), field="subject_alt_name") from None
        names.append(gn)
        # The stored string is the canonical form of what gets encoded (IPv6 compressed, FASC-N content hex);
        # the other types are stored as given, and only a directoryName needs more than its commas escaped.
        if key in _RECODED_KEYS:
            value = escape_altname_value(key, canonical_altname_value(key, value, gn))
        elif "," in value:
            value = value.replace(",", "\\,")
        texts.append(f"{key}={value}")
    return ", ".join(texts), names


# --- log redaction -----------------------------------------------------------------------------------------

def needs_redaction(profile: EndEntityProfile | bool | None) -> bool:
    """Redact when the profile asks for it, or system-wide (setting ``PKI_REDACT_SUBJECT_NAMES``)."""
    if getattr(settings, "PKI_REDACT_SUBJECT_NAMES", False):
        return True
    if isinstance(profile, bool) or profile is None:
        return bool(profile)
    return bool(profile.redact_subject)


def redact_subject(value: str | None, profile: EndEntityProfile | bool | None) -> str | None:
    """``value`` (a subject DN or alt name) for a log line or audit detail: REDACTED when redaction applies."""
    if value and needs_redaction(profile):
        return REDACTED
    return value


def redact_details(details: dict[str, Any], profile: EndEntityProfile | bool | None) -> dict[str, Any]:
    """A copy of audit/log ``details`` with every subject-name key redacted when redaction applies."""
    if not needs_redaction(profile):
        return details
    return {k: (REDACTED if k in SUBJECT_DETAIL_KEYS and v else v) for k, v in details.items()}


def redaction_for_username(username: str) -> bool:
    """Whether the end entity ``username``'s subject names stay out of logs (registered with pki.audit, so
    that revocations through the CA core, which knows no profiles, honour the profile too)."""
    if getattr(settings, "PKI_REDACT_SUBJECT_NAMES", False):
        return True
    from .models import EndEntity

    return EndEntity.objects.filter(username=username, end_entity_profile__redact_subject=True).exists()
