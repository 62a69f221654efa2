// "Add a row" for custom extensions: copies the last blank row with the next formset index. Without
// JavaScript the button stays hidden and the form still has its fixed blank rows.
(function () {
  "use strict";
  var button = document.getElementById("add-ext"), total = document.getElementById("id_ext-TOTAL_FORMS");
  if (!button || !total) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var n = parseInt(total.value, 10);
    var rows = document.querySelectorAll("#ext-table tr.ext-row"), last = rows[rows.length - 1];
    var copy = last.cloneNode(true);
    copy.querySelectorAll("input, select").forEach(function (el) {
      el.name = el.name.replace(/^ext-\d+-/, "ext-" + n + "-");
      el.id = el.id.replace(/^id_ext-\d+-/, "id_ext-" + n + "-");
      if (el.type === "checkbox") { el.checked = false; }
      else if (el.tagName === "SELECT") { el.selectedIndex = 0; }
      else { el.value = ""; }
    });
    last.parentNode.appendChild(copy);
    total.value = n + 1;
    copy.querySelector("input").focus();
  });
})();
