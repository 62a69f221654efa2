// RA portal niceties; every page also works without JavaScript.
(function () {
  "use strict";
  // The enrollment pages' certificate type, key source and downloads: static/pki/ra-enroll.js.
  // Close the other menu when one opens.
  document.querySelectorAll(".ra-menu details").forEach(function (d) {
    d.addEventListener("toggle", function () {
      if (!d.open) { return; }
      document.querySelectorAll(".ra-menu details[open]").forEach(function (o) { if (o !== d) { o.open = false; } });
    });
  });
})();
