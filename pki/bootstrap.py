"""First start: the demo PKI every fresh installation gets (idempotent).

Apps add their own steps with :func:`register_step` in ``AppConfig.ready`` (the end entity app adds
the EMPTY profile), so the core never imports the layers above it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from cryptotokens import services as token_services
from cryptotokens.models import CryptoToken

from .auth.access import Actor
from .choices import MemberMatch
from .models import CertificateAuthority, Role, RoleMember
from .public_urls import default_ocsp_url
from .services.cas import CASettings, create_ca
from .services.profiles import ensure_builtin_profiles

MANAGEMENT_CA = "ManagementCA"
MANAGEMENT_TOKEN = "ManagementCA"
RA_ROLE = "RA Administrator"

DEFAULT_ROLES: dict[str, tuple[str, list[tuple[str, bool]]]] = {
    "Super Administrator Role": ("Full access to everything", [("/", True)]),
    # Every CA but ManagementCA (init adds a deny for it): ManagementCA issues administrator credentials, and
    # an RA operator who may issue from it could give itself an administrator's certificate.
    RA_ROLE: (
        "Enrolls, finds and revokes end entities and certificates (every CA but ManagementCA)",
        [
            ("/administrator", True),
            ("/ra_functionality", True),
            ("/endentityprofilesrules", True),
            ("/ca", True),
            ("/ca_functionality/view_ca", True),
            ("/ca_functionality/view_certificate", True),
            ("/ca_functionality/create_certificate", True),
            ("/ca_functionality/view_end_entity_profiles", True),
            ("/ca_functionality/use_username", True),  # the RA portal's "Use Username" enrollment
        ],
    ),
    "Auditor": (
        "Reads the audit log and views CAs, profiles and certificates",
        [
            ("/administrator", True),
            ("/audit/view", True),
            ("/ca", True),
            ("/ca_functionality/view_ca", True),
            ("/ca_functionality/view_certificate", True),
            ("/ca_functionality/view_certificate_profiles", True),
            ("/cryptotoken/view", True),
            ("/internalkeybinding/view", True),
            ("/ca_functionality/view_end_entity_profiles", True),
            ("/ra_functionality/view_end_entity", True),
            ("/ra_functionality/view_end_entity_history", True),
            ("/endentityprofilesrules", True),  # creating/editing still needs the /ra_functionality rule
            ("/system_functionality/view_administrator_privileges", True),
        ],
    ),
}


@dataclass
class BootstrapResult:
    created: list[str] = field(default_factory=list)
    admin_username: str = ""
    admin_password: str | None = None  # only when the admin was created now
    superadmin_password: str | None = None  # of var/superadmin.p12, only when it was made now


BootstrapStep = Callable[[BootstrapResult], None]
_steps: list[tuple[int, BootstrapStep]] = []


def register_step(step: BootstrapStep, order: int = 100) -> None:
    if all(s is not step for _, s in _steps):
        _steps.append((order, step))


def _profiles(result: BootstrapResult) -> None:
    ensure_builtin_profiles()


def _roles(result: BootstrapResult) -> None:
    """The default roles; a newly created RA Administrator role is denied ManagementCA. Roles that exist are
    left as the operator made them (an existing RA role is not changed, and nothing is re-added to it)."""
    from .services.roles import ensure_default_roles

    defaults = dict(DEFAULT_ROLES)
    management = CertificateAuthority.objects.filter(name=MANAGEMENT_CA).values_list("pk", flat=True).first()
    if management is not None:
        description, rules = defaults[RA_ROLE]
        defaults[RA_ROLE] = (description, [*rules, (f"/ca/{management}", False)])
    result.created += [f"role {name}" for name in ensure_default_roles(defaults)]


def _admin(result: BootstrapResult) -> None:
    username = os.environ.get("PKI_ADMIN_USER", "admin")
    User = get_user_model()
    result.admin_username = username
    if not User.objects.filter(username=username).exists():
        password = os.environ.get("PKI_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_user(username=username, password=password, is_staff=True)
        result.admin_password = password
        result.created.append(f"admin {username}")
    role = Role.objects.get(name="Super Administrator Role")
    RoleMember.objects.get_or_create(
        role=role, match_type=MemberMatch.LOCAL_USER, match_value=username,
        defaults={"description": "bootstrap administrator"},
    )


def _management_ca(result: BootstrapResult) -> None:
    if CertificateAuthority.objects.filter(name=MANAGEMENT_CA).exists():
        return
    actor = Actor.system_actor("init")
    token = CryptoToken.objects.filter(name=MANAGEMENT_TOKEN).first()
    if token is None:
        token = token_services.create_token(
            actor, name=MANAGEMENT_TOKEN, token_type="SoftCryptoToken",
            auth_code=secrets.token_urlsafe(24), auto_activate=True,
        )
        result.created.append(f"crypto token {MANAGEMENT_TOKEN}")
    base = settings.PKI_BASE_URL.rstrip("/")
    create_ca(actor, CASettings(
        name=MANAGEMENT_CA,
        subject_dn=os.environ.get("PKI_MANAGEMENT_CA_DN", "CN=ManagementCA,O=PKI Demo,C=SE"),
        crypto_token=token, key_alias="signKey", key_spec="RSA3072", validity="10y",
        signature_algorithm="SHA256WithRSA", crl_period=timedelta(days=1), crl_overlap=timedelta(minutes=10),
        crl_distribution_point=f"{base}/crl/{MANAGEMENT_CA}.crl", ca_issuers_url=f"{base}/ca/{MANAGEMENT_CA}.crt",
        ocsp_url=default_ocsp_url(),
        description="Management CA created at first start", is_default=True,
    ))
    result.created.append(f"CA {MANAGEMENT_CA}")


def _listener_credentials(result: BootstrapResult) -> None:
    """The HTTPS listener's server certificate and the superadmin.p12 (pki.admin_credentials)."""
    from .admin_credentials import ensure_credentials

    made = ensure_credentials()
    result.created += made.created
    result.superadmin_password = made.superadmin_password


register_step(_profiles, order=10)
register_step(_management_ca, order=15)  # before the roles: the RA role is denied it by id
register_step(_roles, order=20)
register_step(_admin, order=30)
register_step(_listener_credentials, order=40)  # after the roles: the P12's certificate joins the superadmins


def run() -> BootstrapResult:
    """Run every registered step in order, in one transaction."""
    result = BootstrapResult()
    with transaction.atomic():
        for _, step in sorted(_steps, key=lambda s: s[0]):
            step(result)
    return result
