"""``manage.py ra ...`` with EJBCA's CLI arguments."""

from __future__ import annotations

import shlex
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from endentities.choices import EndEntityStatus, TokenType
from endentities.models import EndEntity
from endentities.services.passwords import check_password, decrypt_clear_password
from pki.choices import CertificateStatus
from pki.models import AuditEvent, Certificate


def ra(line: str) -> str:
    out = StringIO()
    call_command("ra", *shlex.split(line), stdout=out)
    return out.getvalue()


@pytest.fixture
def management_ca(ca_factory):
    return ca_factory("ManagementCA", subject_dn="CN=ManagementCA,O=Test,C=SE")


def test_addendentity_exactly_as_ejbca(management_ca):
    out = ra('addendentity --username=user --password=foo123 --dn="CN=User Usersson" --caname=ManagementCA '
             '--type=1 --token=USERGENERATED')
    assert "'user' added" in out
    ee = EndEntity.objects.get(username="user")
    assert ee.subject_dn == "CN=User Usersson" and ee.ca == management_ca
    assert ee.status == EndEntityStatus.NEW and ee.token_type == TokenType.USERGENERATED
    assert ee.end_entity_profile.name == "EMPTY" and ee.certificate_profile.name == "ENDUSER"
    assert check_password("foo123", ee.password_hash)


def test_addendentity_all_options(management_ca):
    ra('addendentity --username srv --password foo123 --dn "CN=srv.example,O=Org,C=SE" --caname ManagementCA '
       '--type 1 --token P12 --altname "dNSName=srv.example,rfc822Name=ops@example.com" --email ops@example.com '
       '--certprofile ENDUSER --eeprofile EMPTY')
    ee = EndEntity.objects.get(username="srv")
    assert ee.token_type == TokenType.P12 and not ee.send_notification
    assert "srv.example" in ee.subject_alt_name and ee.email == "ops@example.com"


@pytest.mark.parametrize("line, message", [
    ("addendentity --username u --password p --dn CN=u --caname NoSuchCA", "NoSuchCA"),
    ("addendentity --username u --password p --dn CN=u --caname ManagementCA --token FLOPPY", "FLOPPY"),
    ("addendentity --username u --password p --dn CN=u --caname ManagementCA --type 0", "--type"),
    # 256 = send notification, which the EMPTY profile does not use
    ("addendentity --username u --password p --dn CN=u --caname ManagementCA --type 257", "notification"),
    ("addendentity --username u --password p --dn CN=u --caname ManagementCA --eeprofile Nope", "Nope"),
    ("addendentity --username u --password p --dn CN=u --caname ManagementCA --certprofile Nope", "Nope"),
])
def test_addendentity_refusals_change_nothing(management_ca, line, message):
    with pytest.raises(CommandError) as exc:
        ra(line)
    assert message in str(exc.value)
    assert not EndEntity.objects.exists()


def test_status_password_find_list_revoke_delete(management_ca, csr_factory, tmp_path):
    ra('addendentity --username=user --password=foo123 --dn="CN=User" --caname=ManagementCA --type=1 '
       '--token=USERGENERATED')
    csr, _ = csr_factory("CN=User")
    from cryptography.hazmat.primitives.serialization import Encoding

    (tmp_path / "req.pem").write_bytes(csr.public_bytes(Encoding.PEM))
    out = ra(f"enroll --username user --password foo123 --csr {tmp_path / 'req.pem'} -o {tmp_path / 'c.pem'}")
    assert "Issued serial" in out and EndEntity.objects.get(username="user").status == EndEntityStatus.GENERATED

    assert "40 (GENERATED)" in ra("findendentity --username user")
    ra("setendentitystatus --username user -S 10")
    assert EndEntity.objects.get(username="user").status == EndEntityStatus.NEW
    ra("setendentitystatus user 40")  # EJBCA's positional form
    assert EndEntity.objects.get(username="user").status == EndEntityStatus.GENERATED
    ra("setpwd --username user --password bar456")
    assert check_password("bar456", EndEntity.objects.get(username="user").password_hash)
    ra("setclearpwd user baz789")  # EJBCA's EMPTY profile allows clear-text password storage
    assert decrypt_clear_password("user", EndEntity.objects.get(username="user").clear_password) == "baz789"

    listing = ra("listendentities")
    assert "End Entity: user" in listing and "1 end entities." in listing
    assert "0 end entities." in ra("listendentities -S 10")

    ra("revokeendentity --username user -r 1")
    ee = EndEntity.objects.get(username="user")
    assert ee.status == EndEntityStatus.REVOKED
    assert Certificate.objects.get(username="user").status == CertificateStatus.REVOKED

    ra("delendentity --username user -force")
    assert not EndEntity.objects.filter(username="user").exists()
    with pytest.raises(CommandError, match="does not exist"):
        ra("findendentity --username user")
    assert AuditEvent.objects.filter(event_type="RA_DELETEENDENTITY", actor="cli").exists()


def test_setclearpwd_on_profile_that_keeps_it(management_ca):
    from endentities.models import EndEntityProfile

    EndEntityProfile.objects.create(name="Batch", clear_password_use=True, any_dn=True,
                                    subject_dn_fields=[{"type": "CN"}], default_ca=management_ca)
    from pki.models import CertificateProfile

    p = EndEntityProfile.objects.get(name="Batch")
    p.available_certificate_profiles.set([CertificateProfile.objects.get(name="ENDUSER")])
    p.default_certificate_profile = CertificateProfile.objects.get(name="ENDUSER")
    p.save()
    ra('addendentity --username=b --password=foo123 --dn="CN=b" --caname=ManagementCA --eeprofile Batch')
    ra("setclearpwd --username b --password newpass")
    assert decrypt_clear_password("b", EndEntity.objects.get(username="b").clear_password) == "newpass"


@pytest.mark.parametrize("line", ["setendentitystatus --username ghost -S 10", "revokeendentity ghost",
                                  "delendentity ghost -force", "setpwd ghost pw", "findendentity ghost"])
def test_unknown_username(db, line):
    with pytest.raises(CommandError, match="ghost"):
        ra(line)


def test_missing_username(db):
    with pytest.raises(CommandError, match="--username"):
        ra("findendentity")
