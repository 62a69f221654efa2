"""End entity validations per second: ``validate_end_entity`` for a profile with 20 DN fields and 10 alt
names (target >= 5,000/s on one core).

Each call does the whole validation of one end entity: username and password strength, e-mail, CA and
certificate profile (ids read once per profile instance, as a service holding the profile does), token
type, DN parsing + matching to 20 field instances (regexes, non-modifiable values, a drop-down) + EJBCA
order + ``x509.Name``, 10 alt names parsed, matched and encoded (OtherNames included), and the extended
information. Run: ``../.venv/bin/python ee_validation.py --seconds 5`` (``--smoke`` in CI: a fraction of a
second, checks that it runs and prints its figure).
"""

from __future__ import annotations

import argparse
import time

from _setup import load, setup_django, table


def build(root_ca_name: str = "BenchEEVal"):
    from cryptotokens import services as token_services
    from endentities.models import EndEntityProfile
    from pki.auth.access import Actor
    from pki.models import CertificateProfile
    from pki.services.cas import CASettings, create_ca
    from pki.services.profiles import ensure_builtin_profiles

    ensure_builtin_profiles()
    actor = Actor.system_actor("bench")
    token = token_services.create_token(actor, name="BenchToken", token_type="SoftCryptoToken", auth_code="foo123",
                                        auto_activate=True)
    ca = create_ca(actor, CASettings(name=root_ca_name, subject_dn="CN=Bench,O=Bench,C=SE", crypto_token=token,
                                     key_alias="signKey", key_spec="P-256"))
    cp = CertificateProfile.objects.get(name="ENDUSER")

    def f(t, value="", **kw):
        return {"type": t, "value": value, "required": kw.get("required", False),
                "modifiable": kw.get("modifiable", True), "validation": kw.get("validation", "")}

    dn_fields = [
        f("CN", required=True, validation=r"[A-Za-z0-9 .-]{1,64}"), f("SN", validation="[0-9]+"),
        f("GIVENNAME"), f("SURNAME"), f("T"), f("UID"), f("E", validation=r"[a-z0-9._-]+@example\.com"),
        f("OU", "Engineering", required=True, modifiable=False), f("OU"), f("OU"), f("OU"),
        f("O", "Example AB;Example Inc", modifiable=False), f("L", validation="^.{1,10}$"), f("ST"),
        f("C", "SE", required=True), f("DC"), f("DC"), f("STREET"), f("POSTALCODE", validation="[0-9 ]+"),
        f("ORGANIZATIONIDENTIFIER"),
    ]
    alt_fields = [
        {**f("DNSNAME"), "use_entity_cn": False}, f("DNSNAME", validation=r"(?i)([a-z0-9-]+\.)?example\.com"),
        f("DNSNAME"), f("RFC822NAME"), f("IPADDRESS"), f("IPADDRESS"), f("URI"), f("UPN"),
        f("PERMANENTIDENTIFIER"), f("KRB5PRINCIPAL"),
    ]
    assert len(dn_fields) == 20 and len(alt_fields) == 10
    profile = EndEntityProfile.objects.create(
        name="Bench20x10", default_ca=ca, default_certificate_profile=cp, subject_dn_fields=dn_fields,
        subject_alt_name_fields=alt_fields, password_min_strength_bits=55, email_domain="example.com",
    )
    profile.available_certificate_profiles.add(cp)
    return profile, ca, cp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--smoke", action="store_true", help="a fraction of a second: check that it runs")
    args = parser.parse_args()
    people = 1_000 if args.smoke else 50_000
    if args.smoke:
        args.seconds = 0.3
    setup_django("pki_bench_eeval")
    from endentities.validation import EndEntityInput, validate_end_entity

    profile, ca, cp = build()
    def person(i: int) -> EndEntityInput:
        # Per-person values differ on every call (name, serial number, UID, e-mail, host names, addresses),
        # the organization's repeat (O, OU, L, ST, C, DC, street): as in a real enrollment stream, so the
        # caches of name parts cannot make the figure better than it is.
        return EndEntityInput(
            username=f"bench{i}", password="foobar1234",
            subject_dn=(f"CN=Alice Example {i},SN={1000000 + i},GIVENNAME=Alice,SURNAME=Example{i},T=Engineer,"
                        f"UID=alice{i},E=alice{i}@example.com,OU=Engineering,OU=Platform,OU=,OU=PKI,O=Example AB,"
                        "L=Stockholm,ST=Stockholm,C=SE,DC=example,DC=com,STREET=Main Street 1,POSTALCODE=111 22,"
                        "ORGANIZATIONIDENTIFIER=VATSE-5566778899"),
            subject_alt_name=(f"DNSNAME=alice{i}.example.com, DNSNAME=www{i}.example.com, DNSNAME=api.example.com, "
                              f"RFC822NAME=alice{i}@example.com, IPADDRESS=192.0.{i // 250 % 250}.{i % 250 + 1}, "
                              f"IPADDRESS=2001:db8::{i % 65535:x}, URI=https://example.com/alice{i}, "
                              f"UPN=alice{i}@corp.example.com, PERMANENTIDENTIFIER={12345 + i}/1.2.3.4, "
                              f"KRB5PRINCIPAL=alice{i}@EXAMPLE.COM"),
            email=f"alice{i}", ca=ca, certificate_profile=cp,
        )

    inputs = [person(i) for i in range(people)]
    v = validate_end_entity(profile, inputs[0])  # warm up (regex cache, available ids)
    assert len(v.alt_names) == 10 and v.subject_dn.count(",") == 18
    n = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    deadline = start + args.seconds
    while time.perf_counter() < deadline:
        for data in inputs[n % (people - 100):n % (people - 100) + 100]:
            validate_end_entity(profile, data)
        n += 100
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    # Per CPU-second is the one-core figure on a shared machine; per wall-second moves with the load.
    print(table([("20 DN fields + 10 alt names", n, f"{elapsed:.2f}", f"{n / elapsed:,.0f}", f"{n / cpu:,.0f}",
                  "5,000", load())],
                ("profile", "validations", "seconds", "per wall s", "per CPU s", "target", "load")))


if __name__ == "__main__":
    main()
