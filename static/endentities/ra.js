// RA portal niceties; every page also works without JavaScript.
(function () {
  "use strict";
  // Certificate type: show the chosen profile's description and load its form right away.
  var chooser = document.getElementById("choose-profile");
  if (chooser) {
    var select = chooser.querySelector("select"), text = document.getElementById("profile-description");
    if (select) {
      select.addEventListener("change", function () {
        var dd = chooser.querySelector('dd[data-profile="' + select.value + '"]');
        if (text) { text.textContent = dd ? dd.textContent : ""; }
        chooser.submit();
      });
    }
  }
  // Key source: show the CSR inputs or the key algorithm, whichever the chosen source needs.
  document.querySelectorAll("fieldset.key-source").forEach(function (box) {
    var csr = box.querySelector(".key-csr"), server = box.querySelector(".key-server");
    function update() {
      var checked = box.querySelector("input[type=radio]:checked");
      var userKey = !checked || checked.value === "1" || checked.value === "csr";
      if (csr) { csr.hidden = !userKey; }
      if (server) { server.hidden = userKey; }
    }
    box.addEventListener("change", update);
    update();
  });
  // Close the other menu when one opens.
  document.querySelectorAll(".ra-menu details").forEach(function (d) {
    d.addEventListener("toggle", function () {
      if (!d.open) { return; }
      document.querySelectorAll(".ra-menu details[open]").forEach(function (o) { if (o !== d) { o.open = false; } });
    });
  });
})();
