"""A shell script written for EJBCA's ``ejbca.sh`` runs unchanged against this project (issue 14).

The script below uses only ``ejbca.sh`` command forms (create a crypto token and a key, create a CA on it, add an
end entity, createcert, revoke, create a CRL, add a role member) plus openssl. ``ejbca.sh`` on PATH is
scripts/ejbca.sh, which runs manage.py; the database is a fresh PostgreSQL database after ``migrate`` and ``init``.
What the script did is then read from that database: rows, not printed words.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from tests.protocols.scep.live import LiveScepServer
from tests.support.templatedb import create_database

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.multiprocess]

SCRIPT = r"""#!/bin/bash
set -euo pipefail
ejbca.sh cryptotoken create --token IssuingToken --pin foo123 --autoactivate true --type SoftCryptoToken
ejbca.sh cryptotoken generatekey --token IssuingToken --alias signKey --keyspec 2048
ejbca.sh cryptotoken generatekey --token IssuingToken --alias testKey --keyspec secp256r1
ejbca.sh cryptotoken testkey --token IssuingToken --alias testKey
ejbca.sh cryptotoken listkeys --token IssuingToken
ejbca.sh ca init --caname IssuingCA --dn "CN=Issuing CA,O=Example,C=SE" --tokenName IssuingToken \
    --tokenPass foo123 --keyspec 2048 --keytype RSA -v 3650 --policy null -s SHA256WithRSA \
    --signedby ManagementCA --existingkey signKey
ejbca.sh ca listcas
ejbca.sh ra addendentity --username alice --password foo123 --dn "CN=Alice,O=Example,C=SE" \
    --caname IssuingCA --type 1 --token USERGENERATED --certprofile ENDUSER --eeprofile EMPTY
openssl req -new -newkey rsa:2048 -nodes -keyout alice.key -subj "/CN=Alice" -out alice.csr 2>/dev/null
ejbca.sh createcert --username alice --password foo123 -c alice.csr -f alice.pem
SERIAL=$(openssl x509 -in alice.pem -noout -serial | cut -d= -f2)
ejbca.sh ra revokecert --dn "CN=Issuing CA,O=Example,C=SE" -s "$SERIAL" -r 1
ejbca.sh ca createcrl --caname IssuingCA
ejbca.sh ca getcrl --caname IssuingCA -f issuing.crl
ejbca.sh ca getcacert --caname IssuingCA -f issuing.der -der
ejbca.sh roles addrolemember --role "Super Administrator Role" --caname IssuingCA --with WITH_SERIALNUMBER \
    --value "$SERIAL"
echo "$SERIAL" > serial.txt
"""


class FreshDatabase(LiveScepServer):
    """LiveScepServer's own PostgreSQL database and environment, migrated (a copy of the suite's migrated template)
    and initialized; no server."""

    def start(self) -> FreshDatabase:
        create_database(self.db_name)
        self.manage("init")
        return self


@pytest.fixture
def installation(tmp_path):
    assert shutil.which("openssl"), "openssl is needed (Debian package openssl)"
    with FreshDatabase(tmp_path) as db:
        yield db


def test_an_ejbca_sh_script_runs_unchanged(installation, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ejbca.sh").symlink_to(ROOT / "scripts" / "ejbca.sh")
    work = tmp_path / "work"
    work.mkdir()
    (work / "script.sh").write_text(SCRIPT)
    env = {**installation.env, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PKI_PYTHON": os.sys.executable}
    out = subprocess.run(["bash", "script.sh"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    assert "foo123" not in out.stdout  # the codes given on the command line are never echoed

    serial = (work / "serial.txt").read_text().strip().lower().lstrip("0")
    q = installation.query
    assert q("SELECT t.auto_activate FROM cryptotokens_cryptotoken t WHERE t.name = 'IssuingToken'") == [(True,)]
    ca = q("SELECT c.id, c.key_alias, s.name FROM pki_certificateauthority c "
           "JOIN pki_certificateauthority s ON s.id = c.signed_by_id WHERE c.name = 'IssuingCA'")
    assert [row[1:] for row in ca] == [("signKey", "ManagementCA")]
    assert q("SELECT status, revocation_reason, username FROM pki_certificate WHERE serial = %s", (serial,)) == [
        ("REVOKED", 1, "alice")]
    crl = x509.load_der_x509_crl((work / "issuing.crl").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    assert x509.load_der_x509_certificate((work / "issuing.der").read_bytes()).subject.rfc4514_string() == \
        "CN=Issuing CA,O=Example,C=SE"
    assert q("SELECT m.match_type FROM pki_rolemember m JOIN pki_role r ON r.id = m.role_id "
             "WHERE r.name = 'Super Administrator Role' AND m.match_value = %s AND m.issuer_ca_id = %s",
             (serial, ca[0][0])) == [("CERTIFICATE_SERIAL",)]
    # Every action is in the audit log under the command line's name.
    events = {row[0] for row in q("SELECT event_type FROM pki_auditevent WHERE actor = 'cli'")}
    assert {"CRYPTOTOKEN_CREATE", "CA_CREATION", "CERT_REVOKED", "CRL_CREATION"} <= events, events
