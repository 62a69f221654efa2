"""certmonger's daemon (Debian ``certmonger``, its ``scep-submit`` helper, OpenSSL underneath) against a real
server: a wrong challenge is CA_REJECTED (it could not read FAILURE replies without eContent and said
CA_UNREACHABLE), the right one is MONITORING with a certificate openssl verifies, and on an approval alias
the request waits in CA_WORKING (a readable PENDING) and its next poll fetches the certificate once approved.

certmonger runs on a private D-Bus session with its state in the test's directory; ``getcert -s`` talks to
it. It is given the CA certificate (``-N``) and the CA name (``-i``): a root CA's GetCACert is the bare
certificate, which certmonger takes as the encryption certificate only, so it needs the root to verify
replies, as with any SCEP server.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .live import RA_SECRET, ROOT, LiveScepServer

# One server for the module (both tests' certmonger requests use their own names), so one worker runs both.
pytestmark = [pytest.mark.multiprocess, pytest.mark.xdist_group("certmonger")]

APPROVE = ("from pki.auth.access import Actor; from pki.models.approvals import ApprovalRequest as A; "
           "from protocols.scep import approvals; "
           "approvals.decide(Actor.system_actor('approver'), A.objects.get().pk, approve=True)")
REQUIRE = ("from pki.auth.access import Actor; from pki.models import CertificateAuthority as C; "
           "from protocols.scep import approvals; approvals.set_required(Actor.system_actor('t'), "
           "ca=C.objects.get(name='ScepCA'), required=%r)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    for tool in ("certmonger", "getcert", "dbus-run-session"):
        if not shutil.which(tool):
            raise AssertionError(f"{tool} is not installed (scripts/install-test-deps.sh installs it)")
    with LiveScepServer(tmp_path_factory.mktemp("certmonger-server"), workers=1, threads=4) as srv:
        yield srv


def run_certmonger(tmp, script: str, timeout: int = 240) -> str:
    """Run ``script`` (bash, may call ``getcert -s``) inside a private certmonger on a private D-Bus."""
    home = tmp / "cm"
    env = {**os.environ, "HOME": str(home)}
    for name in ("requests", "cas", "local", "tmp", "config"):
        (home / name).mkdir(parents=True, exist_ok=True)
        env[f"CERTMONGER_{name.upper()}_DIR" if name != "local" else "CERTMONGER_LOCAL_CA_DIR"] = str(home / name)
    env["CERTMONGER_SYSTEM_LOCK_FILE"] = str(home / "lock")
    (tmp / "run.sh").write_text("set -u\n" + script)
    proc = subprocess.run(["dbus-run-session", "--", "certmonger", "-s", "-n", "-B", "-c", f"bash {tmp}/run.sh"],
                          env=env, capture_output=True, text=True, timeout=timeout)
    return proc.stdout


def add_ca(server, tmp) -> str:
    url = server.url("ra-devices")
    der = urllib.request.urlopen(url + "?operation=GetCACert&message=ScepCA", timeout=10).read()  # noqa: S310
    (tmp / "ca.pem").write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    return f"getcert add-scep-ca -s -c pki -i ScepCA -N {tmp}/ca.pem -u {url} >/dev/null\nsleep 1\n"


def wait_for(cert: str, states: str, seconds: int = 60) -> str:
    """bash: poll ``getcert list`` for ``cert`` until its status is one of ``states`` (a case pattern)."""
    # Each alternative in *...*: "*A|B|C*" would leave B to match the whole line only, and wait out every second.
    pattern = "|".join(f"*{state}*" for state in states.split("|"))
    return (f"for i in $(seq 1 {seconds}); do s=$(getcert list -s -f {cert} | grep 'status:'); "
            f"case \"$s\" in {pattern}) break;; esac; sleep 1; done; echo \"RESULT $s\"\n")


def test_wrong_challenge_is_rejected_and_the_right_one_issues(server, tmp_path, openssl):
    script = add_ca(server, tmp_path)
    script += (f"getcert request -s -c pki -k {tmp_path}/k1.pem -f {tmp_path}/c1.pem -N CN=cm-wrong,O=Test "
               f"-L wrongsecret >/dev/null\n")
    script += wait_for(f"{tmp_path}/c1.pem", "CA_REJECTED|MONITORING|CA_UNREACHABLE")
    script += (f"getcert request -s -c pki -k {tmp_path}/k2.pem -f {tmp_path}/c2.pem -N CN=cm-right,O=Test "
               f"-L {RA_SECRET} >/dev/null\n")
    script += wait_for(f"{tmp_path}/c2.pem", "CA_REJECTED|MONITORING|CA_UNREACHABLE")
    results = [line for line in run_certmonger(tmp_path, script).splitlines() if line.startswith("RESULT")]
    assert len(results) == 2, results
    assert "CA_REJECTED" in results[0]
    assert "MONITORING" in results[1]
    cert = x509.load_pem_x509_certificate((tmp_path / "c2.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "cm-right"
    openssl("verify", "-CAfile", tmp_path / "ca.pem", tmp_path / "c2.pem")


@pytest.fixture
def approval_required(server):
    """Approval on the shared server's CA for one test, detached after it."""
    server.manage("shell", "-c", REQUIRE % True)
    yield
    server.manage("shell", "-c", REQUIRE % False)


def test_approval_waits_in_ca_working_then_issues(server, approval_required, tmp_path):
    approve = " ".join(shlex.quote(a) for a in [sys.executable, "manage.py", "shell", "-c", APPROVE])
    env = " ".join(f"{k}={shlex.quote(server.env[k])}" for k in ("DATABASE_URL", "PKI_MASTER_KEY", "PKI_VAR_DIR"))
    cert = f"{tmp_path}/c3.pem"
    script = add_ca(server, tmp_path)
    script += (f"getcert request -s -c pki -k {tmp_path}/k3.pem -f {cert} -N CN=cm-approve,O=Test "
               f"-L {RA_SECRET} >/dev/null\n")
    script += wait_for(cert, "CA_WORKING|CA_REJECTED|MONITORING|CA_UNREACHABLE")
    script += f"(cd {shlex.quote(str(ROOT))} && env {env} {approve})\n"
    # certmonger polls a waiting request (GetCertInitial) on its own schedule, hours apart; refresh makes it
    # poll now. No new request is sent: the poll itself fetches the approved certificate.
    script += "getcert refresh -s -a >/dev/null\n"
    script += wait_for(cert, "MONITORING|CA_REJECTED|CA_UNREACHABLE")
    results = [line for line in run_certmonger(tmp_path, script).splitlines() if line.startswith("RESULT")]
    assert len(results) == 2, results
    assert "CA_WORKING" in results[0]
    assert "MONITORING" in results[1]
    issued = x509.load_pem_x509_certificate((tmp_path / "c3.pem").read_bytes())
    assert issued.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "cm-approve"
