// Asks before submitting a button marked data-confirm (the form still works without JavaScript).
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.getAttribute("data-confirm"))) { event.preventDefault(); }
});
