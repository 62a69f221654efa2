// Form helpers shared by every form page; each form still works without JavaScript.
(function () {
  "use strict";

  // Error summary: move the focus to it, so a screen reader reads every problem; a link in it focuses its input.
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[href^='#']");
      if (!link) { return; }
      var target = document.getElementById(link.getAttribute("href").slice(1));
      if (!target) { return; }
      event.preventDefault();
      target.closest("details:not([open])") && (target.closest("details").open = true);
      target.scrollIntoView({block: "center"});
      target.focus();
    });
  }

  // Key pair alias (CA creation): a pick-list of the chosen token's keys plus "Generate a new key pair".
  // The form keeps posting key_source + key_alias, so the server sees what it sees without JavaScript.
  document.querySelectorAll("input[data-key-alias]").forEach(function (alias) {
    var form = alias.form, token = form && form.querySelector("select[name=crypto_token]");
    var list = document.getElementById(alias.getAttribute("list"));
    var radios = form ? form.querySelectorAll("input[name=key_source]") : [];
    if (!token || !list || !radios.length) { return; }
    var keys = Array.prototype.map.call(list.options, function (o) {
      return {alias: o.value, label: o.textContent, token: o.getAttribute("data-token")};
    });
    var wrap = alias.closest(".field"), sourceWrap = radios[0].closest(".field");
    var spec = form.querySelector("[name=key_spec]"), specWrap = spec && spec.closest(".field");
    var pick = document.createElement("select");
    pick.id = "id_key_pick";
    var label = document.createElement("label");
    label.htmlFor = pick.id;
    label.textContent = "Key pair";
    var field = document.createElement("div");
    field.className = "field key-pick";
    field.appendChild(label);
    field.appendChild(pick);
    sourceWrap.parentNode.insertBefore(field, sourceWrap);
    sourceWrap.hidden = true;
    var typedAlias = source() === "generate" ? alias.value : "";

    function source() {
      var checked = form.querySelector("input[name=key_source]:checked");
      return checked ? checked.value : "generate";
    }
    function setSource(value) {
      radios.forEach(function (r) { r.checked = r.value === value; });
    }
    function fill() {
      var keep = source() === "existing" ? alias.value : "";
      pick.textContent = "";
      var gen = new Option("Generate a new key pair (alias below)", "");
      pick.appendChild(gen);
      keys.filter(function (k) { return k.token === token.value; }).forEach(function (k) {
        var o = new Option(k.alias + " — " + k.label, k.alias);
        o.selected = k.alias === keep;
        pick.appendChild(o);
      });
      if (keep && pick.value !== keep) { pick.value = ""; }
      update();
    }
    function update() {
      var existing = pick.value !== "";
      setSource(existing ? "existing" : "generate");
      alias.value = existing ? pick.value : typedAlias;
      wrap.hidden = existing;
      if (specWrap) { specWrap.hidden = existing; }
    }
    alias.addEventListener("input", function () { typedAlias = alias.value; });
    pick.addEventListener("change", update);
    token.addEventListener("change", fill);
    fill();
  });
})();
