// Create crypto token: show only the fields of the chosen token type (without JavaScript every group stays
// visible, titled).
(function () {
  "use strict";
  var type = document.getElementById("id_token_type");
  if (!type) { return; }
  function update() {
    document.querySelectorAll(".backend-fields").forEach(function (box) {
      box.style.display = box.dataset.backend === type.value ? "" : "none";
    });
  }
  type.addEventListener("change", update);
  update();
})();
