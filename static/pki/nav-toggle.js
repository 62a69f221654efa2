// Phones and tablets: the side menu folds away behind the header's Menu button. Without JavaScript the button
// stays hidden and the menu is simply shown above the page, as before (the body class below turns folding on).
(function () {
  "use strict";
  var button = document.querySelector("button.nav-toggle");
  var nav = document.getElementById("side-nav");
  if (!button || !nav) { return; }
  document.body.classList.add("nav-collapsible");
  function setOpen(open) {
    document.body.classList.toggle("nav-open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }
  button.addEventListener("click", function () {
    setOpen(button.getAttribute("aria-expanded") !== "true");
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
      setOpen(false);
      button.focus();
    }
  });
})();
