// RA enrollment pages (Make New Request, Use Username). Without JavaScript every step is a plain submit and the
// server decides everything; with it:
// - choosing the certificate type loads that type's form in place, keeping what was typed;
// - a pasted or chosen CSR pre-fills the subject DN and alt-name inputs (the server parses it: ra-csr-subject);
// - a download (keystore or certificate) stays on the page, which then says what was issued and offers the
//   same file again.
(function () {
  "use strict";

  // Key source: show the CSR inputs or the key algorithm, whichever the chosen source needs.
  function keySources(root) {
    root.querySelectorAll("fieldset.key-source").forEach(function (box) {
      var checked = box.querySelector("input[type=radio]:checked");
      var userKey = !checked || checked.value === "1" || checked.value === "csr";
      var csr = box.querySelector(".key-csr"), server = box.querySelector(".key-server");
      if (csr) { csr.hidden = !userKey; }
      if (server) { server.hidden = userKey; }
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.closest("fieldset.key-source")) { keySources(document); }
  });
  keySources(document);

  function labelOf(el) {
    var label = el.id && document.querySelector('label[for="' + el.id + '"]');
    return label ? label.textContent.replace(/\*|\(required\)/g, "").trim() : "";
  }

  // What the user typed in a form: by input name, and by label for the DN/alt-name inputs, whose names
  // (dn_0, san_1) depend on the certificate type.
  function typed(form) {
    var byName = {}, byLabel = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.type === "hidden" || el.type === "file" || el.disabled || el.type === "submit") { return; }
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) { return; }
      if (el.type === "radio" || el.type === "checkbox") { byName[el.name + "=" + el.value] = true; return; }
      if (el.value === "" || el.value === el.defaultValue) { return; }
      byName[el.name] = el.value;
      if (/^(dn|san)_\d+$/.test(el.name)) { byLabel[el.name.slice(0, 3) + labelOf(el)] = el.value; }
    });
    return {byName: byName, byLabel: byLabel};
  }

  function restore(form, saved) {
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.type === "hidden" || el.type === "file" || el.disabled) { return; }
      if (el.type === "radio" || el.type === "checkbox") {
        if (saved.byName[el.name + "=" + el.value]) { el.checked = true; }
        return;
      }
      var value = saved.byName[el.name];
      if (/^(dn|san)_\d+$/.test(el.name)) {
        var byLabel = saved.byLabel[el.name.slice(0, 3) + labelOf(el)];
        value = byLabel !== undefined ? byLabel : undefined;
      }
      if (value === undefined) { return; }
      if (el.tagName === "SELECT" && !Array.prototype.some.call(el.options, function (o) { return o.value === value; })) {
        return;
      }
      el.value = value;
    });
  }

  // Certificate type: fetch the page of the chosen type and put its form in place of this one.
  document.addEventListener("change", function (event) {
    var chooser = event.target.closest("#choose-profile"), select = event.target;
    if (!chooser || select.tagName !== "SELECT") { return; }
    var url = window.location.pathname + "?profile=" + encodeURIComponent(select.value);
    var text = document.getElementById("profile-description");
    var dd = chooser.querySelector('dd[data-profile="' + select.value + '"]');
    if (text) { text.textContent = dd ? dd.textContent : ""; }
    var old = document.getElementById("enroll-form");
    var saved = old ? typed(old.querySelector("form")) : {byName: {}, byLabel: {}};
    chooser.setAttribute("aria-busy", "true");
    fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}}).then(function (r) {
      return r.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("enroll-form");
      if (!fresh) { window.location.assign(url); return; }
      fresh = document.importNode(fresh, true);
      if (old) { old.replaceWith(fresh); } else { chooser.after(fresh); }
      restore(fresh.querySelector("form"), saved);
      keySources(fresh);
      history.replaceState(null, "", url);  // the form posts to the page's address, which names the type
      var button = chooser.querySelector("button[type=submit]");
      if (button) { button.textContent = "Change"; }
    }).catch(function () { window.location.assign(url); }).finally(function () {
      chooser.removeAttribute("aria-busy");
    });
  });

  // A CSR pre-fills the subject: the server reads it and names the inputs it fills.
  var timer = null;
  function prefill(holder, form, body) {
    var note = form.querySelector(".csr-note");
    if (!note) {
      note = document.createElement("p");
      note.className = "csr-note helptext";
      note.setAttribute("role", "status");
      var box = form.querySelector("[name$=csr_pem]");
      box.closest(".field").appendChild(note);
    }
    body.append("profile", holder.getAttribute("data-profile"));
    body.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    fetch(holder.getAttribute("data-csr-url"), {method: "POST", body: body, credentials: "same-origin"})
      .then(function (r) { return r.json().then(function (data) { return {ok: r.ok, data: data}; }); })
      .then(function (answer) {
        if (!answer.ok) { note.textContent = answer.data.error || "The request could not be read."; return; }
        var filled = 0;
        Object.keys(answer.data.fields).forEach(function (name) {
          var el = form.elements[name], value = answer.data.fields[name];
          if (!el || el.disabled || el.type === "hidden") { return; }
          if (el.value !== "" && el.value !== el.getAttribute("data-prefilled") && el.value !== el.defaultValue) { return; }
          if (el.tagName === "SELECT" && !Array.prototype.some.call(el.options, function (o) { return o.value === value; })) {
            return;
          }
          el.value = value;
          el.setAttribute("data-prefilled", value);
          filled += 1;
        });
        note.textContent = "From the request: " + (answer.data.subject_dn || "(empty subject)") +
          (answer.data.alt_names ? "; alt names " + answer.data.alt_names : "") +
          (filled ? " — filled " + filled + (filled === 1 ? " field." : " fields.") : ".");
      }).catch(function () { note.textContent = ""; });
  }
  document.addEventListener("input", function (event) {
    var holder = event.target.closest("#enroll-form");
    if (!holder || !/csr_pem$/.test(event.target.name)) { return; }
    clearTimeout(timer);
    var text = event.target.value.trim(), form = event.target.form;
    if (text.indexOf("-----END") < 0) { return; }
    timer = setTimeout(function () {
      var body = new FormData();
      body.append("csr", text);
      prefill(holder, form, body);
    }, 250);
  });
  document.addEventListener("change", function (event) {
    var holder = event.target.closest("#enroll-form");
    if (!holder || !/csr_file$/.test(event.target.name) || !event.target.files.length) { return; }
    var body = new FormData();
    body.append("csr_file", event.target.files[0]);
    prefill(holder, event.target.form, body);
  });

  // Downloads stay on the page: say what was issued and offer the file again.
  function filename(disposition) {
    var m = /filename="([^"]+)"/.exec(disposition || "");
    return m ? m[1] : "download";
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-download") || !window.fetch || !window.URL) { return; }
    // Make New Request with a CSR goes on to the certificate's page (with its downloads): a plain submit.
    var token = form.querySelector("input[name='key-token_type']:checked");
    if (token && token.value === "1") { return; }
    event.preventDefault();
    var button = form.querySelector("button[type=submit]:not(.default-submit)");
    if (button) { button.disabled = true; }
    fetch(form.getAttribute("action") || window.location.href, {method: "POST", body: new FormData(form),
                                                                 credentials: "same-origin"})
      .then(function (r) {
        var disposition = r.headers.get("Content-Disposition") || "";
        if (r.ok && disposition.indexOf("attachment") === 0) {
          return r.blob().then(function (blob) { issued(form, blob, filename(disposition), r.headers); });
        }
        return r.text().then(function (html) {
          // a redirect (a request stored for approval) was followed: show that page, with its message
          if (r.redirected) { history.pushState(null, "", r.url); }
          replaceMain(html);
        });
      })
      .catch(function () { form.submit(); })
      .finally(function () { if (button) { button.disabled = false; } });
  });

  function issued(form, blob, name, headers) {
    var url = URL.createObjectURL(blob);
    var notice = document.getElementById("issued-notice");
    if (!notice) {
      notice = document.createElement("div");
      notice.id = "issued-notice";
      notice.className = "issued-notice";
      notice.setAttribute("role", "status");
      notice.tabIndex = -1;
      form.parentNode.insertBefore(notice, form);
    }
    var serial = headers.get("X-Issued-Serial");
    notice.textContent = "";
    var text = document.createElement("strong");
    text.textContent = "Issued: " + name + (serial ? " (certificate serial number " + serial + ")" : "") + ". ";
    var again = document.createElement("a");
    again.href = url;
    again.download = name;
    again.className = "button secondary";
    again.textContent = "Download " + name + " again";
    notice.appendChild(text);
    notice.appendChild(again);
    form.querySelectorAll("input[type=password]").forEach(function (p) { p.value = ""; });
    again.click();  // the first download
    notice.focus();
  }

  function replaceMain(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.querySelector("main"), here = document.querySelector("main");
    if (!fresh || !here) { document.open(); document.write(html); document.close(); return; }
    here.replaceWith(document.importNode(fresh, true));
    keySources(document);
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  }
})();
