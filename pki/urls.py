from django.urls import include, path

urlpatterns = [
    path("", include("pki.views.oauth_urls")),  # first: its /logout/ also ends the OAuth provider's session
    path("", include("pki.views.urls")),
    path("", include("pki.views.roles_urls")),
    path("", include("pki.views.users_urls")),  # local users, the own account page, the start page (/start/)
    path("", include("pki.api.operations_urls")),  # EJBCA's v1 ca_management, configdump, expire, importcrl, ...
    path("", include("pki.api.urls")),
    path("", include("endentities.urls")),  # EJBCA's REST /v1/endentity and pkcs10enroll/enrollkeystore
    path("", include("cryptotokens.urls")),
    path("", include("keybindings.urls")),  # remote authenticators and OCSP responders: REST and admin pages
    path("", include("protocols.scep.urls")),  # SCEP endpoints and the SCEP admin pages
    path("", include("protocols.ocsp.urls")),  # the OCSP responder
    path("", include("peers.urls")),  # peers: /peers/v1/ (RA/VA side), /api/v1/peers/, the Peer Systems page
    path("", include("endentities.ui_urls")),  # end entity admin pages and the RA portal (/ra/)
]

handler404 = "pki.api.errors.not_found"
