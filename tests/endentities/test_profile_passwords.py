"""Username, password (enrollment code) and e-mail rules of end entity profiles (seed tables)."""

import pytest

from endentities.validation import (
    check_password,
    generate_password,
    generate_username,
    password_strength_bits,
    resolve_email,
    resolve_username,
)
from pki.errors import ValidationError
from tests.endentities.profile_support import make_profile


@pytest.mark.parametrize(
    ("password", "bits"),
    [
        ("foobar123", 55),  # the seed: floor(6.17 * 9) = floor(55.53)
        ("", 0),
        ("a", 6),
        ("12345678", 49),
        ("0123456789", 61),
        ("x" * 20, 123),
    ],
)
def test_password_strength(password, bits):
    assert password_strength_bits(password) == bits


@pytest.mark.parametrize(
    ("minimum", "password", "ok"),
    [
        (55, "abcdefgh", False),  # 8 characters: 49 bits
        (55, "abcdefghi", True),  # 9 characters: 55 bits
        (55, "foobar123", True),
        (0, "a", True),
        (100, "a" * 16, False),  # 98 bits
        (100, "a" * 17, True),  # 104 bits
    ],
)
def test_minimum_bit_strength(minimum, password, ok):
    profile = make_profile(password_min_strength_bits=minimum)
    if ok:
        check_password(profile, password)
    else:
        with pytest.raises(ValidationError) as exc:
            check_password(profile, password)
        assert exc.value.field == "password"
        assert f"at least {minimum} bits" in exc.value.message


def test_generated_passwords_are_strong_enough_and_skip_the_estimate():
    profile = make_profile(password_min_strength_bits=200, password_auto_generate=True)
    pw = generate_password(profile)
    assert len(pw) >= 35  # 200 bits over a 57-character alphabet
    check_password(profile, pw, generated=True)
    assert generate_password(profile) != pw


@pytest.mark.parametrize(
    ("required", "auto", "ok"),
    [(True, False, False), (True, True, True), (False, False, True)],
)
def test_missing_password(required, auto, ok):
    profile = make_profile(password_required=required, password_auto_generate=auto)
    if ok:
        check_password(profile, None)
    else:
        with pytest.raises(ValidationError, match="password .* is required") as exc:
            check_password(profile, None)
        assert exc.value.field == "password"


def test_username_manual_or_generated_with_prefix():
    manual = make_profile()
    assert resolve_username(manual, " alice ") == "alice"
    with pytest.raises(ValidationError) as exc:
        resolve_username(manual, "")
    assert exc.value.field == "username"
    auto = make_profile(username_auto_generate=True, username_prefix="dev-")
    names = {resolve_username(auto, "") for _ in range(50)}
    assert len(names) == 50 and all(n.startswith("dev-") and len(n) == 16 for n in names)
    assert generate_username(auto).startswith("dev-")
    assert resolve_username(auto, "given") == "given"


@pytest.mark.parametrize("char", [";", "!", "%", "$", "~", "?", "`"])
def test_username_forbidden_characters(char):
    with pytest.raises(ValidationError, match="forbidden character") as exc:
        resolve_username(make_profile(), f"user{char}x")
    assert exc.value.field == "username"


@pytest.mark.parametrize(
    ("options", "given", "expected"),
    [
        ({}, "a@example.com", "a@example.com"),
        ({}, "", ""),
        ({"email_required": True}, "", "ERR:required"),
        ({"email_use": False}, "a@example.com", "ERR:does not use"),
        ({"email_use": False}, "", ""),
        ({"email_domain": "example.com"}, "alice", "alice@example.com"),  # the default domain completes it
        ({"email_domain": "example.com"}, "alice@other.org", "alice@other.org"),  # modifiable
        ({"email_domain": "example.com", "email_modifiable": False}, "alice", "alice@example.com"),
        ({"email_domain": "example.com", "email_modifiable": False}, "alice@other.org", "ERR:not modifiable"),
        ({}, "alice", "ERR:not an e-mail"),
        ({}, "a$b@example.com", "ERR:forbidden"),
    ],
)
def test_email_rules(options, given, expected):
    profile = make_profile(**options)
    if expected.startswith("ERR:"):
        with pytest.raises(ValidationError) as exc:
            resolve_email(profile, given)
        assert exc.value.field == "email" and expected[4:] in exc.value.message
    else:
        assert resolve_email(profile, given) == expected
