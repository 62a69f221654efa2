"""Peers models: outgoing connectors and carried-request records on the CA; the work queue, incoming peers and
pushed protocol data on the RA."""

from .connector import CarriedRequest, PeerConnector
from .pushed import PushedCrl, PushedRevocation, PushState
from .work import IncomingPeer, PeerWorkItem, PushedScepAlias

__all__ = ["CarriedRequest", "IncomingPeer", "PeerConnector", "PeerWorkItem", "PushState", "PushedCrl",
           "PushedRevocation", "PushedScepAlias"]
