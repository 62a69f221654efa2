"""EJBCA's SCEP properties: parsing, the alias's keys, dumping (pure), and ``config scep`` on the database."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pki.errors import ValidationError
from protocols.scep import config

# The seed's example: only the lines of the uploaded alias count.
SEED_EXAMPLE = """\
scep.operationmode = ca
uploaded.includeca = true
"""


@pytest.mark.parametrize("text, expected", [
    ("a.b = c", {"a.b": "c"}),
    ("a.b=c", {"a.b": "c"}),
    ("a.b: c", {"a.b": "c"}),
    ("a.b c", {"a.b": "c"}),
    ("# comment\n! other\n\na = 1", {"a": "1"}),
    ("a = one \\\n    two", {"a": "one two"}),
    ("a = x\na = y", {"a": "y"}),
    ("a\\ b = c\\u00e9", {"a b": "cé"}),
    ("a =", {"a": ""}),
])
def test_parse_properties(text, expected):
    assert config.parse_properties(text) == expected


@pytest.mark.parametrize("text, alias, expected", [
    (SEED_EXAMPLE, "scep", {"operation_mode": "ca"}),
    (SEED_EXAMPLE, "uploaded", {"include_ca": True}),
    (SEED_EXAMPLE, "other", {}),
    ("scep.operationmode = RA", "scep", {"operation_mode": "ra"}),
    ("scep.ra.createOrEditUser = true", "scep", {"operation_mode": "ra"}),   # the legacy key
    ("scep.ra.createOrEditUser = false", "scep", {"operation_mode": "ca"}),
    ("a.includeca=false\na.returnCaChainInGetCaCert=true", "a", {"include_ca": False, "return_ca_chain": True}),
    ("a.allowLegacyDigestAlgorithm = TRUE", "a", {"allow_legacy_digest": True}),
    ("a.ra.certificateProfile=ENDUSER\na.ra.entityProfile=EMPTY\na.ra.defaultCA=ManagementCA", "a",
     {"ra_certificate_profile": "ENDUSER", "ra_end_entity_profile": "EMPTY", "ra_default_ca": "ManagementCA"}),
    ("a.ra.authPwd = foo123", "a", {"ra_auth_password": "foo123"}),
    ("a.ra.authPwd = none", "a", {"ra_auth_password": ""}),
    ("a.ra.authPwd = ******", "a", {}),                                          # the dump's mask keeps the secret
    ("a.ra.namegenerationscheme = fixed\na.ra.namegenerationparameters = router", "a",
     {"ra_name_generation_scheme": "FIXED", "ra_name_generation_parameters": "router"}),
    ("a.ra.namegenerationprefix = ${RANDOM}-\na.ra.namegenerationpostfix = -x", "a",
     {"ra_name_generation_prefix": "${RANDOM}-", "ra_name_generation_postfix": "-x"}),
    ("a.clientCertificateRenewal = true\na.clientCertificateRenewalWithOldKey = true", "a",
     {"client_certificate_renewal": True, "allow_client_certificate_renewal_with_old_key": True}),
    ("a.allowClientCertificateRenewaWithOldKey = true", "a",                    # EJBCA's GUI spelling
     {"allow_client_certificate_renewal_with_old_key": True}),
    ("a.useIntune = true\na.intuneTenant = contoso\na.intuneAadAppId = app", "a",
     {"use_intune": True, "intune_settings": {"tenant": "contoso", "app_id": "app"}}),
    ("a.maxBodySize = 131072\na.allowDes = yes", "a", {"max_body_size": 131072, "allow_des": True}),
    ("a.unknownKey = 1", "a", {}),
])
def test_alias_settings_table(text, alias, expected):
    # (not "settings": that name is pytest-django's fixture, which the autouse _own_var_dir fixture uses)
    values = config.alias_properties(config.parse_properties(text), alias)
    assert config.settings_from_properties(values)[0] == expected


@pytest.mark.parametrize("text, field", [
    ("a.operationmode = both", "operationmode"),
    ("a.includeca = maybe", "includeca"),
    ("a.ra.namegenerationscheme = LDAP", "ra.namegenerationscheme"),
    ("a.maxBodySize = -1", "maxBodySize"),
])
def test_bad_values_name_the_key(text, field):
    with pytest.raises(ValidationError) as exc:
        config.settings_from_properties(config.alias_properties(config.parse_properties(text), "a"))
    assert exc.value.field == field


def test_dump_round_trips():
    values = {"operation_mode": "ra", "include_ca": False, "ra_auth_password": True, "ra_default_ca": "CA1",
              "ra_name_generation_scheme": "DN", "intune_settings": {"tenant": "t"}}
    text = config.dump_properties("myalias", values)
    assert "myalias.operationmode=ra\n" in text
    assert "myalias.ra.authPwd=******\n" in text   # secrets never leave
    assert "myalias.intuneTenant=t\n" in text
    back, ignored = config.settings_from_properties(config.alias_properties(config.parse_properties(text), "myalias"))
    assert ignored == []
    assert back["operation_mode"] == "ra" and back["include_ca"] is False and "ra_auth_password" not in back


# --- ``python manage.py config scep ...`` ------------------------------------------------------------------------

def _run(*args) -> str:
    out = io.StringIO()
    call_command("config", "scep", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_config_scep_commands(tmp_path, builtin_profiles):
    from endentities.services import ensure_empty_profile
    from pki.models import AuditEvent
    from protocols.scep.models import ScepAlias
    from protocols.scep.services import secret

    ensure_empty_profile()
    path = tmp_path / "scep.properties"
    path.write_text(SEED_EXAMPLE)
    out = _run("uploadfile", "--alias", "scep", "--file", str(path))
    assert "scep.operationmode" in out
    alias = ScepAlias.objects.get(name="scep")
    assert alias.operation_mode == "ca" and alias.include_ca is True  # EJBCA's default for includeca
    assert _run("uploadfile", "--alias", "nothere", "--file", str(path)).startswith("No SCEP configuration")
    assert not ScepAlias.objects.filter(name="nothere").exists()

    path.write_text("ra1.operationmode=ra\nra1.ra.authPwd=s3cret\nra1.ra.certificateProfile=ENDUSER\n"
                    "ra1.ra.entityProfile=EMPTY\nra1.includeca=false\n")
    _run("uploadfile", "--alias", "ra1", "--file", str(path))
    ra1 = ScepAlias.objects.get(name="ra1")
    assert ra1.ra_mode and not ra1.include_ca
    assert ra1.ra_auth_password.startswith("enc1:") and secret(ra1, "ra_auth_password") == "s3cret"
    dump = _run("dumpalias", "--alias", "ra1")
    assert "ra1.ra.authPwd=******" in dump and "s3cret" not in dump
    assert "ra1.operationmode=ra" in dump and "ra1.ra.certificateProfile=ENDUSER" in dump
    # Uploading the dump back keeps the secret.
    path.write_text(dump)
    _run("uploadfile", "--alias", "ra1", "--file", str(path))
    assert secret(ScepAlias.objects.get(name="ra1"), "ra_auth_password") == "s3cret"

    _run("addalias", "--alias", "extra-1")
    assert _run("listalias").split() == ["extra-1", "ra1", "scep"]
    _run("renamealias", "--oldalias", "ra1", "--newalias", "ra2")
    assert secret(ScepAlias.objects.get(name="ra2"), "ra_auth_password") == "s3cret"
    _run("removealias", "--alias", "extra-1")
    assert _run("listalias").split() == ["ra2", "scep"]
    assert AuditEvent.objects.filter(event_type__startswith="SCEP_ALIAS_").count() >= 6

    with pytest.raises(CommandError, match="does not exist"):
        _run("removealias", "--alias", "extra-1")
    with pytest.raises(CommandError, match="already exists"):
        _run("addalias", "--alias", "scep")
    with pytest.raises(CommandError, match="letters, digits"):
        _run("addalias", "--alias", "bad alias")
    path.write_text("bad.ra.certificateProfile=NOPE\n")
    with pytest.raises(CommandError, match="NOPE"):
        _run("uploadfile", "--alias", "bad", "--file", str(path))
    assert not ScepAlias.objects.filter(name="bad").exists()  # a refused file changes nothing
