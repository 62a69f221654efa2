// The member form shows only the fields its "Match on" choice uses (provider and claim for OAuth, the
// issuing CA for client certificates). Without JavaScript every field stays visible and the server
// ignores the ones the choice does not use.
(function () {
  "use strict";
  var type = document.getElementById("id_match_type");
  if (!type) { return; }
  var uses = {
    LOCAL_USER: [],
    OAUTH_CLAIM: ["id_provider", "id_claim"],
    CERTIFICATE_SERIAL: ["id_issuer_ca"],
    CERTIFICATE_CN: ["id_issuer_ca"]
  };
  var optional = ["id_provider", "id_claim", "id_issuer_ca"];
  function update() {
    var shown = uses[type.value] || optional;
    optional.forEach(function (id) {
      var input = document.getElementById(id), field = input && input.closest(".field");
      if (field) { field.hidden = shown.indexOf(id) < 0; }
    });
  }
  // Warnings (shown to everyone without JavaScript): CN matching for CN members, mutable claims for OAuth.
  var claim = document.getElementById("id_claim");
  var warnings = Array.prototype.slice.call(document.querySelectorAll("[data-for-match]"));
  function warn() {
    warnings.forEach(function (p) {
      var claims = p.getAttribute("data-for-claims");
      p.hidden = p.getAttribute("data-for-match") !== type.value ||
        (claims !== null && (!claim || claims.split(" ").indexOf(claim.value) < 0));
    });
  }
  type.addEventListener("change", update);
  type.addEventListener("change", warn);
  if (claim) { claim.addEventListener("change", warn); }
  update();
  warn();
})();
