"""Choices of the peers app: node roles, connector states, work item states and the kinds of carried work."""

from django.db import models


class NodeRole(models.TextChoices):
    CA = "ca", "CA"
    RA = "ra", "RA"
    VA = "va", "VA"


class ConnectorState(models.TextChoices):
    DISCONNECTED = "disconnected", "Disconnected"
    CONNECTING = "connecting", "Connecting"
    CONNECTED = "connected", "Connected"
    FAILING = "failing", "Failing (retrying with back-off)"


class WorkStatus(models.TextChoices):
    WAITING = "waiting", "Waiting for the CA"
    LEASED = "leased", "Leased by a CA connector"
    DONE = "done", "Answered"
    EXPIRED = "expired", "Given up (the requester's timeout passed before the CA leased it)"


class WorkKind(models.TextChoices):
    """What an RA may ask its CA to do; each kind needs the rule ``/peer/carry/<kind>`` on the CA."""

    SCEP_PKIOPERATION = "scep.pkioperation", "SCEP PKIOperation"
    SCEP_GET = "scep.get", "SCEP GetCACaps/GetCACert/GetCACertChain/GetNextCACert not pushed yet"
    # REST calls at the RA's /ejbca/ejbca-rest-api/v1/ (pkcs10enroll, enrollkeystore, end entities, certificates).
    REST_CALL = "rest.call", "REST API call"
    # RA portal pages (/ra/...): Make New Request, Use Username, search, view, revoke, download.
    PORTAL_PAGE = "portal.page", "RA portal page"


#: The access rule a connector's certificate must hold on the CA to carry work of a kind.
CARRY_RULE = "/peer/carry/{family}"
VIEW_RULE = "/peer/view"
MODIFY_RULE = "/peer/modify"
#: On an RA: who may connect in and pull work (EJBCA's "Incoming Peer Connections").
INCOMING_RULE = "/peer/incoming"


def carry_rule(kind: str) -> str:
    """``/peer/carry/scep`` for ``scep.pkioperation`` and ``scep.get``: the rule is per protocol."""
    return CARRY_RULE.format(family=kind.split(".", 1)[0])
