from django.apps import AppConfig


class PeersConfig(AppConfig):
    name = "peers"
    verbose_name = "Peer systems (CA, RA and VA nodes)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from keybindings.services import register_binding_user
        from pki.auth.resources import register_resources
        from protocols.scep.views import register_node_forwarder

        from .choices import INCOMING_RULE, MODIFY_RULE, VIEW_RULE
        from .services import connectors_using

        register_resources("Peers", [
            ("/peer", "All peer rules"),
            (VIEW_RULE, "View peer systems"),
            (MODIFY_RULE, "Add, edit and remove peer connectors"),
            (INCOMING_RULE, "RA/VA: connect in as a CA connector and pull waiting work"),
            ("/peer/carry", "CA: carry requests of every kind from an RA"),
            ("/peer/carry/scep", "CA: carry SCEP requests from an RA"),
            ("/peer/carry/rest", "CA: carry REST calls from an RA (run as the caller, by the caller's rules)"),
            ("/peer/carry/portal", "CA: carry RA portal pages from an RA (run as the operator's certificate)"),
        ], order=75)
        from django.contrib.auth.signals import user_logged_in

        from .portal_ra import forget_on_local_login

        # A login to an RA's own pages ends the RA portal session its browser held (peers.portal_ra).
        user_logged_in.connect(forget_on_local_login, dispatch_uid="peers.portal_ra.forget_on_local_login")
        # A key binding a connector uses cannot be deleted.
        register_binding_user(connectors_using)
        if getattr(settings, "PKI_NODE_ROLE", "ca") == "ra":
            from .scep_ra import forward_scep

            # On an RA the SCEP endpoint answers from pushed data or carries the request to the CA.
            register_node_forwarder(forward_scep)
