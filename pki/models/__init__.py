"""Models of the CA core, split by subdomain."""

from .approvals import Approval, ApprovalProfile, ApprovalRequest, ApprovalSetting
from .audit import AuditChainHead, AuditEvent
from .ca import CACertificate, CertificateAuthority
from .certificates import Certificate
from .crl import CRL
from .oauth import TrustedOAuthProvider
from .profiles import CertificateProfile
from .roles import AccessRule, Role, RoleMember
from .scheduling import ScheduledJob
from .throttle import AuthThrottle
from .users import LocalAccount

__all__ = [
    "AccessRule",
    "Approval",
    "ApprovalProfile",
    "ApprovalRequest",
    "ApprovalSetting",
    "AuditChainHead",
    "AuditEvent",
    "AuthThrottle",
    "CACertificate",
    "CRL",
    "Certificate",
    "CertificateAuthority",
    "CertificateProfile",
    "LocalAccount",
    "Role",
    "RoleMember",
    "ScheduledJob",
    "TrustedOAuthProvider",
]
