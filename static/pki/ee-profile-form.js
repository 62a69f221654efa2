// End entity profile editor. Without JavaScript it is one long form: the section links jump down the page, and
// "Add"/"Remove" of a field submit the form, which comes back with the list changed (nothing saved). With it:
// - the sections become tabs (a section with an error is marked; the error summary's links open theirs);
// - "Add"/"Remove" ask the server for the changed list (the same submit, by fetch) and replace only that list,
//   so nothing else on the page moves or is lost; the server stays the one validator;
// - a default value with several choices ("SE;NO;DK": a drop-down for the end entity) is edited as a list.
(function () {
  "use strict";
  var form = document.getElementById("ee-profile-form");
  if (!form) { return; }
  var links = form.querySelectorAll(".section-tabs a[data-section]");
  var sections = form.querySelectorAll("section.ee-section");

  function show(id, focus) {
    sections.forEach(function (s) { s.hidden = s.id !== "section-" + id; });
    links.forEach(function (a) {
      if (a.getAttribute("data-section") === id) { a.setAttribute("aria-current", "true"); }
      else { a.removeAttribute("aria-current"); }
    });
    if (focus) {
      var heading = document.getElementById("section-" + id + "-title");
      heading.tabIndex = -1;
      heading.focus();
    }
  }
  function sectionOf(el) {
    var s = el && el.closest("section.ee-section");
    return s ? s.id.replace(/^section-/, "") : null;
  }
  function markErrors() {
    links.forEach(function (a) {
      var s = document.getElementById("section-" + a.getAttribute("data-section"));
      a.classList.toggle("has-error", !!s.querySelector(".errorlist, .has-error"));
    });
  }
  links.forEach(function (a) {
    a.addEventListener("click", function (event) {
      event.preventDefault();
      show(a.getAttribute("data-section"), true);
    });
  });
  // A link to an input (the error summary) opens the input's section first; capture runs before forms.js.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    if (!link || link.hasAttribute("data-section")) { return; }
    var id = sectionOf(document.getElementById(link.getAttribute("href").slice(1)));
    if (id) { show(id, false); }
  }, true);
  markErrors();
  var firstError = form.querySelector("section.ee-section .errorlist, section.ee-section .has-error");
  show(sectionOf(firstError) || (sections[0] && sections[0].id.replace(/^section-/, "")), false);

  // Default values as a list of choices.
  function choiceEditor(input) {
    if (input.getAttribute("data-choices")) { return; }
    input.setAttribute("data-choices", "1");
    var cell = input.parentNode, list = document.createElement("ul"), add = document.createElement("button");
    var toggle = document.createElement("button");
    list.className = "choice-list";
    add.type = toggle.type = "button";
    add.className = toggle.className = "secondary small-button";
    add.textContent = "Add choice";
    toggle.textContent = "Several choices";
    toggle.title = "Give several values: the end entity chooses one from a drop-down";
    var name = input.getAttribute("aria-label") || "Default value";
    function sync() {
      input.value = Array.prototype.map.call(list.querySelectorAll("input"), function (i) { return i.value.trim(); })
        .filter(function (v) { return v !== ""; }).join(";");
    }
    function row(value) {
      var li = document.createElement("li"), box = document.createElement("input"), del = document.createElement("button");
      box.type = "text";
      box.value = value;
      box.setAttribute("aria-label", "Choice of " + name);
      box.addEventListener("input", sync);
      del.type = "button";
      del.className = "secondary small-button";
      del.textContent = "Remove";
      del.setAttribute("aria-label", "Remove choice " + (value || "(empty)"));
      del.addEventListener("click", function () {
        var next = li.nextElementSibling || li.previousElementSibling;
        li.remove();
        sync();
        if (!list.children.length) { listMode(false); input.focus(); return; }
        next.querySelector("input").focus();
      });
      li.appendChild(box);
      li.appendChild(del);
      list.appendChild(li);
      return box;
    }
    function listMode(on) {
      list.hidden = add.hidden = !on;
      input.hidden = toggle.hidden = on;
      if (on) {
        list.textContent = "";
        input.value.split(";").forEach(function (v) { row(v.trim()); });
      }
    }
    add.addEventListener("click", function () { row("").focus(); });
    toggle.addEventListener("click", function () {
      listMode(true);
      row("").focus();
    });
    cell.appendChild(list);
    cell.appendChild(add);
    cell.appendChild(toggle);
    listMode(input.value.indexOf(";") >= 0);
  }
  function choiceEditors(root) {
    root.querySelectorAll("table.field-instances input[name$='-value']").forEach(choiceEditor);
  }
  choiceEditors(form);

  // Add and remove field instances without reloading the page.
  function plainSubmit(op) {  // what the button does without JavaScript
    var hidden = document.createElement("input");
    hidden.type = "hidden";
    hidden.name = "op";
    hidden.value = op;
    form.appendChild(hidden);
    form.submit();
  }
  form.addEventListener("click", function (event) {
    var button = event.target.closest("button[name=op]");
    if (!button || !window.fetch) { return; }
    var op = button.value, which = op.split("-")[1], box = document.getElementById(which + "-fields");
    if (!box) { return; }
    event.preventDefault();
    var body = new FormData(form);
    body.append("op", op);
    box.setAttribute("aria-busy", "true");
    fetch(form.getAttribute("action") || window.location.href, {method: "POST", body: body, credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(which + "-fields");
        if (!fresh) { plainSubmit(op); return; }
        fresh = document.importNode(fresh, true);
        var refused = doc.querySelector("ul.messages li.error");
        if (refused) {
          var note = document.createElement("p");
          note.className = "errorlist";
          note.setAttribute("role", "alert");
          note.textContent = refused.textContent;
          fresh.querySelector(".add-field").before(note);
        }
        box.replaceWith(fresh);
        choiceEditors(fresh);
        markErrors();
        var rows = fresh.querySelectorAll("tr.instance");
        if (op.indexOf("add-") === 0 && !refused && rows.length) {
          rows[rows.length - 1].querySelector("input:not([type=hidden])").focus();
        } else {
          fresh.querySelector("select[name$=add-type]").focus();
        }
      })
      .catch(function () { plainSubmit(op); });
  });
})();
