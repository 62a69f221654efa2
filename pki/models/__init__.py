"""Models of the CA core, split by subdomain."""

from .audit import AuditChainHead, AuditEvent
from .ca import CACertificate, CertificateAuthority
from .certificates import Certificate
from .crl import CRL
from .oauth import TrustedOAuthProvider
from .profiles import CertificateProfile
from .roles import AccessRule, Role, RoleMember
from .scheduling import ScheduledJob
from .throttle import AuthThrottle

__all__ = [
    "AccessRule",
    "AuditChainHead",
    "AuditEvent",
    "AuthThrottle",
    "CACertificate",
    "CRL",
    "Certificate",
    "CertificateAuthority",
    "CertificateProfile",
    "Role",
    "RoleMember",
    "ScheduledJob",
    "TrustedOAuthProvider",
]
