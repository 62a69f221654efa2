"""gunicorn settings shared by every way the project starts gunicorn: ``gunicorn -c python:pki.gunicorn_conf``.

``make run`` (scripts/serve.py), docker-compose.yml, the Dockerfile and deploy/systemd/pki-web.service all load
this module, so the request limits live here once. Everything that starts gunicorn puts nginx in front of it
(deploy/nginx/): nginx holds slow clients and buffers whole request bodies before gunicorn sees a byte, and it
bounds request lines and headers with ``large_client_header_buffers`` (tests/deploy/test_serving.py checks those
files against :data:`SCEP_GET_REQUEST_LINE`).

Why the request line is unlimited here: certmonger sends every PKIOperation by GET, the whole message base64-
and URL-encoded in the query string, and an alias accepts messages up to its ``maxBodySize`` (64 KiB by
default). gunicorn's default limit (4094) refuses a 5 kB renewal with 414, and its largest finite limit (8190)
fits only about 6 kB of message. 0 (unlimited) is the only gunicorn value that fits; the bound is nginx's, in
front. gunicorn itself must therefore never listen where clients reach it directly; ``scripts/serve.py``,
when it has to run without nginx, overrides the limit with :data:`EXPOSED_LIMIT_REQUEST_LINE` and says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from protocols.scep.messages.pkimessage import MAX_MESSAGE_SIZE

THREADS = 4
# An RA node holds every request it carries to the CA (a device's SCEP enrollment, a REST call) open in a gunicorn
# thread until the CA's answer comes, and the CA connector's lease and answer calls need threads of their own: with
# 2 x 4, eight devices enrolling at once would hold all eight, and the answers that free them would queue behind
# them until the requests time out. The threads mostly wait (on PostgreSQL NOTIFY), so an RA gets 4x more.
RA_THREADS = 16


def default_threads(environ: Mapping[str, str] | None = None) -> int:
    """Threads per gunicorn worker for this node's role (PKI_NODE_ROLE): what every launcher gets unless its command
    line says ``--threads`` (make run, compose, the Dockerfile and the systemd unit leave it to this)."""
    env = os.environ if environ is None else environ
    return RA_THREADS if (env.get("PKI_NODE_ROLE") or "ca").strip().lower() == "ra" else THREADS


def scep_get_request_line(max_body_size: int) -> int:
    """The longest request line of a GET PKIOperation whose message has ``max_body_size`` bytes.

    Base64 takes 4 bytes per 3; URL-encoding turns each ``+``, ``/`` and ``=`` into three bytes, and nothing
    stops a message's base64 from being all of them, so three times the base64 length is the bound that holds
    whatever the bytes. 1 KiB more for the method, the path (alias), ``operation=PKIOperation&message=`` and
    the HTTP version.
    """
    base64_length = 4 * -(-max_body_size // 3)
    return 3 * base64_length + 1024


# The SCEP alias default maxBodySize (protocols.scep.models.DEFAULT_MAX_BODY_SIZE is this same constant).
SCEP_GET_REQUEST_LINE = scep_get_request_line(MAX_MESSAGE_SIZE)
# gunicorn's largest finite limit: what it accepts when clients reach it with no nginx in front.
EXPOSED_LIMIT_REQUEST_LINE = 8190

# 0 = unlimited: only nginx reaches gunicorn, and nginx refuses lines over SCEP_GET_REQUEST_LINE (see above).
limit_request_line = 0
# A header line may carry as much (a Referer naming a GET PKIOperation URL); nginx bounds it the same way.
limit_request_field_size = SCEP_GET_REQUEST_LINE
threads = default_threads()
