"""The data an end entity validation takes and gives: :class:`EndEntityInput` (what an interface asks for)
and :class:`ValidatedEndEntity` (what is to be stored and issued).

Their own module, below both ``validation`` (the whole check) and ``extended`` (the extended information
part of it), so that neither has to import the other to name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509

from .choices import TokenType

if TYPE_CHECKING:
    from pki.models import CertificateAuthority, CertificateProfile


@dataclass
class EndEntityInput:
    """What an interface (REST, RA portal, admin UI, CLI, protocol) asks for. Strings in EJBCA syntax.

    ``ca`` and ``certificate_profile`` may be a model instance, a name or a primary key; ``None`` takes the
    profile's default. Options left ``None`` take the profile's default."""

    username: str = ""
    password: str | None = None
    subject_dn: str = ""
    subject_alt_name: str = ""
    email: str = ""
    ca: CertificateAuthority | str | int | None = None
    certificate_profile: CertificateProfile | str | int | None = None
    token_type: TokenType | int | str | None = None
    # Extended information.
    validity_start: str = ""  # "2026-12-01 10:00" (UTC unless an offset is given) or relative "days:hours:minutes"
    validity_end: str = ""
    custom_extension_data: str = ""  # Java properties text: "1.2.3.4.value=Hello"
    revocation_reason: int | str | None = None  # after issuance, e.g. 6 or "certificateHold"
    psd2_nca_name: str = ""
    psd2_nca_id: str = ""
    psd2_roles: list[str] = field(default_factory=list)  # PSP_AS, PSP_PI, PSP_AI, PSP_IC
    cabf_organization_identifier: str = ""  # e.g. "NTRGB-12345678"
    allowed_requests: int | None = None
    max_failed_logins: int | None = None
    key_recoverable: bool | None = None
    send_notification: bool | None = None
    clear_password: bool | None = None
    # Set only by a protocol that authenticated the request itself (SCEP RA mode's shared secret or validator),
    # never from a caller's input: the end entity gets no enrollment code even where the profile requires one.
    ra_authenticated: bool = False


@dataclass
class ValidatedEndEntity:
    """The end entity as it is to be stored and issued to."""

    username: str
    password: str | None
    password_generated: bool
    subject_dn: str  # normalized EJBCA string, EJBCA attribute order, placeholders dropped
    subject: x509.Name
    subject_alt_name: str  # normalized EJBCA string (SIM in its stored hashOID::authorityRandom::PEPSI form)
    alt_names: list[x509.GeneralName]
    email: str
    ca: CertificateAuthority
    certificate_profile: CertificateProfile
    token_type: TokenType
    not_before: datetime | None = None  # only when the certificate profile allows validity override
    not_after: datetime | None = None
    validity_start: str = ""  # as stored (extended information)
    validity_end: str = ""
    custom_extension_values: dict[str, str] = field(default_factory=dict)  # IssuanceRequest.custom_extension_values
    extra_extensions: list[x509.Extension] = field(default_factory=list)  # IssuanceRequest.extra_extensions
    revocation_reason: int | None = None
    allowed_requests: int = 1
    max_failed_logins: int = -1
    key_recoverable: bool = False
    send_notification: bool = False
    clear_password: bool = False
    extended: dict[str, Any] = field(default_factory=dict)  # JSON-able extended information to store

    @property
    def san_extension(self) -> x509.SubjectAlternativeName | None:
        return x509.SubjectAlternativeName(self.alt_names) if self.alt_names else None

    def issuance_kwargs(self) -> dict[str, Any]:
        """The fields of ``pki.issuance.IssuanceRequest`` this end entity decides (add actor, csr/public key,
        hooks): CA, certificate profile, subject, alt names, validity, extensions, username."""
        return {
            "ca": self.ca, "profile": self.certificate_profile, "username": self.username,
            "subject_dn": self.subject_dn, "subject_alt_name": self.subject_alt_name,
            "not_before": self.not_before, "not_after": self.not_after,
            "extra_extensions": list(self.extra_extensions),
            "custom_extension_values": dict(self.custom_extension_values),
        }
