"""Extensions carrying an organization's regulatory identity: the ETSI PSD2 QC statement (ETSI TS 119 495)
and the CA/B Forum Organization Identifier (EV Guidelines 9.8.2)."""

from __future__ import annotations

import re

from asn1crypto import core
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

QC_STATEMENTS_OID = "1.3.6.1.5.5.7.1.3"
PSD2_STATEMENT_OID = "0.4.0.19495.2"
CABF_ORGANIZATION_IDENTIFIER_OID = "2.23.140.3.1"

# TPP roles of a payment service provider and their OIDs (ETSI TS 119 495 5.1).
PSD2_ROLES: dict[str, str] = {
    "PSP_AS": "0.4.0.19495.1.1",  # account servicing
    "PSP_PI": "0.4.0.19495.1.2",  # payment initiation
    "PSP_AI": "0.4.0.19495.1.3",  # account information
    "PSP_IC": "0.4.0.19495.1.4",  # issuing of card-based payment instruments
}


class QCError(ValueError):
    """Values these extensions cannot carry."""


class RoleOfPSP(core.Sequence):
    _fields = [("role_of_psp_oid", core.ObjectIdentifier), ("role_of_psp_name", core.UTF8String)]


class RolesOfPSP(core.SequenceOf):
    _child_spec = RoleOfPSP


class PSD2QcType(core.Sequence):
    _fields = [("roles_of_psp", RolesOfPSP), ("nca_name", core.UTF8String), ("nca_id", core.UTF8String)]


class QCStatement(core.Sequence):
    _fields = [("statement_id", core.ObjectIdentifier), ("statement_info", core.Any, {"optional": True})]


class QCStatements(core.SequenceOf):
    _child_spec = QCStatement


class CABFOrganizationIdentifier(core.Sequence):
    """SEQUENCE { registrationSchemeIdentifier PrintableString (SIZE(3)), registrationCountry PrintableString
    (SIZE(2)), registrationStateOrProvince [0] IMPLICIT PrintableString OPTIONAL, registrationReference
    UTF8String }."""

    _fields = [
        ("registration_scheme_identifier", core.PrintableString),
        ("registration_country", core.PrintableString),
        ("registration_state_or_province", core.PrintableString, {"implicit": 0, "optional": True}),
        ("registration_reference", core.UTF8String),
    ]


def psd2_qc_type(nca_name: str, nca_id: str, roles: list[str]) -> bytes:
    """DER of PSD2QcType."""
    if not nca_name.strip() or not nca_id.strip():
        raise QCError("The PSD2 QC statement needs an NCA name and an NCA id")
    if len(nca_name) > 256 or len(nca_id) > 256:
        raise QCError("The PSD2 NCA name and NCA id are at most 256 characters")
    if not roles:
        raise QCError("The PSD2 QC statement needs at least one TPP role")
    unknown = [r for r in roles if r not in PSD2_ROLES]
    if unknown:
        raise QCError(f"Unknown PSD2 role(s) {', '.join(unknown)} (use {', '.join(PSD2_ROLES)})")
    return PSD2QcType({
        "roles_of_psp": [{"role_of_psp_oid": PSD2_ROLES[r], "role_of_psp_name": r} for r in roles],
        "nca_name": nca_name.strip(),
        "nca_id": nca_id.strip(),
    }).dump()


def psd2_qc_statements_extension(nca_name: str, nca_id: str, roles: list[str]) -> x509.Extension:
    """The QCStatements extension holding the PSD2 statement (not critical)."""
    statement = QCStatement({"statement_id": PSD2_STATEMENT_OID,
                             "statement_info": core.Any.load(psd2_qc_type(nca_name, nca_id, roles))})
    der = QCStatements([statement]).dump()
    oid = ObjectIdentifier(QC_STATEMENTS_OID)
    return x509.Extension(oid, False, x509.UnrecognizedExtension(oid, der))


_CABF_RE = re.compile(r"^([A-Z]{3})([A-Z]{2})(?:\+([A-Za-z0-9]{1,128}))?-(.+)$")


def parse_cabf_organization_identifier(value: str) -> dict[str, str | None]:
    """``NTRGB-12345678``, ``NTRUS+CA-12345678``, ``VATDE-123456789``, ``PSDBE-NBB-1234.567.890``: scheme (3
    letters), country (2), optional ``+state``, then '-' and the reference (the rest, '-' included)."""
    m = _CABF_RE.match(value.strip())
    if not m:
        raise QCError(
            f"'{value}' is not a CA/B Forum organization identifier: SSSCC[+ST]-reference, e.g. NTRGB-12345678"
        )
    scheme, country, state, reference = m.groups()
    return {"scheme": scheme, "country": country, "state": state, "reference": reference}


def cabf_organization_identifier(value: str) -> bytes:
    """DER of CABFOrganizationIdentifier for the string form."""
    parts = parse_cabf_organization_identifier(value)
    fields = {"registration_scheme_identifier": parts["scheme"], "registration_country": parts["country"],
              "registration_reference": parts["reference"]}
    if parts["state"]:
        fields["registration_state_or_province"] = parts["state"]
    return CABFOrganizationIdentifier(fields).dump()


def cabf_organization_identifier_extension(value: str) -> x509.Extension:
    """The id-CABFOrganizationIdentifier extension (not critical)."""
    oid = ObjectIdentifier(CABF_ORGANIZATION_IDENTIFIER_OID)
    return x509.Extension(oid, False, x509.UnrecognizedExtension(oid, cabf_organization_identifier(value)))
