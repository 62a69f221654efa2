"""Pure X.509 helpers in EJBCA's syntax: no Django, no database. Bytes and values in, values out."""

from .algorithms import SignatureAlgorithm, signature_algorithm  # noqa: F401
from .dn import DNError, format_dn, parse_dn  # noqa: F401
from .validity import ValidityError, parse_validity  # noqa: F401
