"""The app layers of ARCHITECTURE.md hold: the import-linter contracts in pyproject.toml are kept, and each of
them would break if one of the imports it exists to stop came back (the circles this project had, an app
importing a higher one, a pure module reaching Django)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_lint_imports_keeps_every_contract():
    """`lint-imports` (what `make test` and CI run through this test) reports every contract kept."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"import contracts broken:\n{done.stdout}\n{done.stderr}"
    assert "0 broken" in done.stdout


@pytest.fixture(scope="module")
def contracts():
    """(graph of this code, {contract id: contract}) as lint-imports builds them from pyproject.toml."""
    import grimp
    from importlinter import api
    from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
    from importlinter.contracts.forbidden import ForbiddenContract
    from importlinter.contracts.independence import IndependenceContract
    from importlinter.contracts.layers import LayersContract

    classes = {"layers": LayersContract, "forbidden": ForbiddenContract, "independence": IndependenceContract,
               "acyclic_siblings": AcyclicSiblingsContract}
    config = api.read_configuration(str(ROOT / "pyproject.toml"))
    session = config["session_options"]
    graph = grimp.build_graph(*session["root_packages"], include_external_packages=True, cache_dir=None)
    by_id = {
        options["id"]: classes[options["type"]](name=options["name"], session_options=session,
                                                 contract_options=options)
        for options in config["contracts_options"]
    }
    return graph, by_id


# (contract id, importer, imported): an import the contract must refuse. The first six are the circles the code
# had (each of them closes one again, the other direction being in the code today).
REFUSED_IMPORTS = [
    ("no-circles", "endentities.extended", "endentities.validation"),
    ("no-circles", "pki.auth.access", "pki.auth.oauth"),
    ("no-circles", "protocols.scep.approvals", "protocols.scep.enrollment"),
    ("no-circles", "protocols.scep.validators", "protocols.scep.services"),
    ("no-circles", "protocols.scep.intune", "protocols.scep.validators"),
    ("no-circles", "protocols.scep.messages.types", "protocols.scep.messages.pkimessage"),
    # A lower app importing a higher one, and the two pairs of neighbours that must not know each other.
    ("app-layers", "cryptotokens.views", "pki.services.cas"),
    ("app-layers", "cryptotokens.api", "pki.models"),
    ("app-layers", "pki.issuance", "endentities.models"),
    ("app-layers", "pki.models", "keybindings.models"),
    ("app-layers", "endentities.services", "protocols.scep.models"),
    ("app-layers", "endentities.validation", "keybindings.models"),
    ("app-layers", "keybindings.services", "endentities.models"),
    ("app-layers", "protocols.ocsp.services", "protocols.scep.models"),
    # The token domain may not use even the shared web helpers, nor the core's statement runner directly.
    ("token-domain", "cryptotokens.services", "pki.errors"),
    ("token-domain", "cryptotokens.services", "pki.db"),
    ("token-domain", "cryptotokens.backends.soft", "pki.auth.access"),
    # Pure layers: no Django (so no database), no app.
    ("pure", "pki.x509.dn", "django"),
    ("pure", "protocols.scep.messages.envelope", "pki.models"),
    ("pure", "protocols.ocsp.messages", "cryptotokens.models"),
]


@pytest.mark.parametrize(("contract_id", "importer", "imported"), REFUSED_IMPORTS,
                         ids=[f"{c}:{a}->{b}" for c, a, b in REFUSED_IMPORTS])
def test_contract_refuses_the_import(contracts, contract_id, importer, imported):
    graph, by_id = contracts
    contract = by_id[contract_id]
    assert importer in graph.modules and (imported in graph.modules or "." not in imported)
    assert contract.check(copy.deepcopy(graph), verbose=False).kept, "kept on the code as it is"
    broken = copy.deepcopy(graph)
    broken.add_import(importer=importer, imported=imported, line_number=1, line_contents="import (test)")
    assert not contract.check(broken, verbose=False).kept


# --- the callables a lower layer reaches up through are wired at start-up (PkiConfig.ready) ---------------------

@pytest.mark.django_db
def test_token_state_runs_as_the_cores_prepared_statement(soft_token_factory):
    """The hot token-state read of cryptotokens goes through pki.db's runner (prepared once per session), which
    the token layer may not import: without the registration it would run as plain text."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cryptotokens import services
    from cryptotokens.services import _TOKEN_STATE
    from pki import db

    token = soft_token_factory()
    services.generate_key_pair(services_actor(), token, "signKey", "P-256")
    services.clear_key_cache()
    with CaptureQueriesContext(connection) as queries:
        services.get_private_key_by_id(token.pk, "signKey")
    name = db.statement_name("token_state", _TOKEN_STATE)
    assert any(f"EXECUTE {name}" in q["sql"] for q in queries.captured_queries)


def services_actor():
    from pki.auth.access import Actor

    return Actor.system_actor("test")


@pytest.mark.django_db
def test_oidc_account_without_session_is_an_oauth_caller_not_a_local_user(rf, django_user_model):
    """actor_for_request asks the OAuth authenticator (registered, since access may not import oauth) before the
    Django user: an OIDC account with no login session data gets no roles, even where a local-user role member
    has its name."""
    from pki.auth.access import actor_for_request
    from pki.auth.oauth import OIDC_USERNAME_PREFIX

    user = django_user_model.objects.create_user(username=f"{OIDC_USERNAME_PREFIX}alice")
    user.set_unusable_password()
    request = rf.get("/")
    request.user = user
    request.session = {}
    who = actor_for_request(request)
    assert who.kind == "oauth" and who.roles == []
