"""Validating an end entity against its end entity profile (every interface calls this one function).

``validate_end_entity(profile, data)`` checks an :class:`EndEntityInput` against every rule of the profile
and returns a :class:`ValidatedEndEntity`: the normalized DN and alt-name strings (as stored on the end
entity), their ``cryptography`` forms, the extra extensions for ``IssuanceRequest.extra_extensions``, the
resolved CA and certificate profile, the validity and the per-entity options. Any refusal is a
``pki.errors.ValidationError`` whose ``field`` names the input field and whose message names the rule.
"""

from __future__ import annotations

import math
import string
from typing import TYPE_CHECKING

from pki.errors import ValidationError
from pki.randomtext import random_text

from .choices import TokenType
from .extended import resolve_ca_and_profile, validate_extended
from .inputs import EndEntityInput, ValidatedEndEntity  # noqa: F401  (re-exported: the contract of this module)
from .subject import (  # noqa: F401  (re-exported: the contract of this module)
    common_name_of,
    merge_dn_with_profile_defaults,
    redact_details,
    redact_subject,
    validate_alt_names,
    validate_subject_dn,
    validate_subject_dn_pairs,
)

if TYPE_CHECKING:
    from .models import EndEntityProfile

# EJBCA estimates a typed password's alphabet at 72 characters: a-z, A-Z, 0-9 and 10 more printable ones.
PASSWORD_ALPHABET_SIZE = 72
# Generated passwords and usernames use letters and digits without look-alikes (0/O, 1/l/I).
_GENERATED_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")


# --- passwords and usernames -------------------------------------------------------------------------------

def password_strength_bits(password: str, alphabet_size: int = PASSWORD_ALPHABET_SIZE) -> int:
    """EJBCA's strength estimate: floor(length x log2(alphabet size)); "foobar123" scores 55 bits."""
    return math.floor(len(password) * math.log2(alphabet_size))


def check_password(profile: EndEntityProfile, password: str | None, *, generated: bool = False) -> None:
    """Refuse a missing password when the profile requires one, and a typed password weaker than the
    profile's minimum bit strength (generated passwords are made long enough)."""
    if not password:
        if profile.password_required and not profile.password_auto_generate:
            raise ValidationError("A password (enrollment code) is required by the end entity profile.",
                                  field="password")
        return
    minimum = profile.password_min_strength_bits or 0
    if not generated and minimum:
        bits = password_strength_bits(password)
        if bits < minimum:
            needed = math.ceil(minimum / math.log2(PASSWORD_ALPHABET_SIZE))
            raise ValidationError(
                f"The password is too weak: {bits} bits, the end entity profile requires at least {minimum} bits "
                f"({needed} characters or more).", field="password",
            )


def generate_password(profile: EndEntityProfile, length: int = 16) -> str:
    """A random password, long enough for the profile's minimum strength over the generator's alphabet."""
    bits_per_char = math.log2(len(_GENERATED_ALPHABET))
    length = max(length, math.ceil((profile.password_min_strength_bits or 0) / bits_per_char))
    return random_text(_GENERATED_ALPHABET, length)


def generate_username(profile: EndEntityProfile, length: int = 12) -> str:
    """``profile.username_prefix`` + random characters. Uniqueness is the database's (EndEntity.username is
    unique): a caller retries on the rare collision."""
    return profile.username_prefix + random_text(_GENERATED_ALPHABET, length)


def resolve_username(profile: EndEntityProfile, username: str) -> str:
    """The username to store: given, or generated when the profile auto-generates and none is given."""
    from .profilerules import check_forbidden

    username = (username or "").strip()
    if not username:
        if profile.username_auto_generate:
            return generate_username(profile)
        raise ValidationError("A username is required.", field="username")
    check_forbidden(username, "The username", "username")
    return username


# --- e-mail ------------------------------------------------------------------------------------------------

def resolve_email(profile: EndEntityProfile, email: str) -> str:
    """The end entity e-mail: ``use`` / ``required`` / default domain / ``modifiable`` (bound to the domain)."""
    from .profilerules import check_forbidden

    email = (email or "").strip()
    domain = profile.email_domain.strip().lstrip("@")
    if not profile.email_use:
        if email:
            raise ValidationError("The end entity profile does not use an e-mail address.", field="email")
        return ""
    if not email:
        if profile.email_required:
            raise ValidationError("An e-mail address is required by the end entity profile.", field="email")
        return ""
    if "@" not in email:
        if not domain:
            raise ValidationError(f"'{email}' is not an e-mail address.", field="email")
        email = f"{email}@{domain}"
    local, _, host = email.rpartition("@")
    if not local or not host:
        raise ValidationError(f"'{email}' is not an e-mail address.", field="email")
    if not profile.email_modifiable and domain and host.lower() != domain.lower():
        raise ValidationError(
            f"The e-mail domain is not modifiable: the address must end with @{domain}.", field="email"
        )
    check_forbidden(email, "The e-mail address", "email")
    return email


# --- the whole end entity ----------------------------------------------------------------------------------

def validate_end_entity(
    profile: EndEntityProfile, data: EndEntityInput, *, merge_dn: bool | None = None, keep_password: bool = False
) -> ValidatedEndEntity:
    """Check ``data`` against every rule of ``profile``; see the module docstring.

    ``merge_dn`` overrides the profile's "allow merge DN" (None: the profile decides). ``keep_password``: an
    edit that leaves the stored password as it is when ``data.password`` is empty (no password required,
    none generated; the result's password is None)."""
    username = resolve_username(profile, data.username)
    password = data.password or None
    generated = False
    if password is None and not keep_password and profile.password_auto_generate:
        password, generated = generate_password(profile), True
    if password is not None or not keep_password:  # a kept password met the rules when it was set
        check_password(profile, password, generated=generated)
    email = resolve_email(profile, data.email)
    ca, cert_profile = resolve_ca_and_profile(profile, data.ca, data.certificate_profile)
    token_type = resolve_token_type(profile, data.token_type)
    merge = profile.allow_merge_dn if merge_dn is None else merge_dn
    subject_dn, subject, rdns = validate_subject_dn_pairs(profile, data.subject_dn, merge=merge)
    san_string, alt_names = validate_alt_names(profile, data.subject_alt_name, email=email, cn=common_name_of(rdns))
    if len(subject) == 0 and not alt_names:
        raise ValidationError("A subject DN or a subject alternative name is required.", field="subject_dn")
    result = ValidatedEndEntity(
        username=username, password=password, password_generated=generated, subject_dn=subject_dn,
        subject=subject, subject_alt_name=san_string, alt_names=alt_names, email=email, ca=ca,
        certificate_profile=cert_profile, token_type=token_type,
    )
    validate_extended(profile, data, result)
    return result


def profile_rule_errors(profile: EndEntityProfile, data: EndEntityInput, *, keep_password: bool = False,
                        skip: frozenset[str] = frozenset()) -> list[ValidationError]:
    """The refusals of the profile's rules on each part of ``data`` that can be checked on its own (password,
    e-mail, subject DN, alt names), so a form can name every broken rule at once instead of the first one.
    ``skip`` leaves out parts (``password``, ``email``, ``subject_dn``, ``subject_alt_name``) the form already
    refuses. :func:`validate_end_entity` stays the check that decides."""
    errors: list[ValidationError] = []

    def attempt(part: str, check):
        if part in skip:
            return None
        try:
            return check()
        except ValidationError as exc:
            errors.append(exc)
            return None

    password = data.password or None
    if password is not None or not (keep_password or profile.password_auto_generate):
        attempt("password", lambda: check_password(profile, password))
    email = attempt("email", lambda: resolve_email(profile, data.email))
    checked = attempt("subject_dn", lambda: validate_subject_dn_pairs(profile, data.subject_dn,
                                                                      merge=profile.allow_merge_dn))
    cn = common_name_of(checked[2]) if checked else ""
    attempt("subject_alt_name", lambda: validate_alt_names(profile, data.subject_alt_name, email=email or "", cn=cn))
    return errors


def resolve_token_type(profile: EndEntityProfile, value: TokenType | int | str | None) -> TokenType:
    """The token type: given (code or name) or the profile's default; it must be available in the profile."""
    if value is None or value == "":
        token = TokenType(profile.default_token_type)
    else:
        try:
            token = TokenType.parse(value)
        except ValueError as exc:
            raise ValidationError(str(exc), field="token_type") from None
    available = {int(t) for t in (profile.available_token_types or [])}
    if available and int(token) not in available:
        names = ", ".join(TokenType(t).name for t in sorted(available))
        raise ValidationError(
            f"Token type {token.name} is not available in the end entity profile (available: {names}).",
            field="token_type",
        )
    return token
