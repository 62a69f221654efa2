// The side menu marks the section of detail, create and edit pages too (e.g. /cas/3/edit/ under "Certificate
// authorities"): the entry whose path is the longest prefix of this page's path. Such pages also get breadcrumbs
// (menu section > list page > this page) above their heading. Pages that are menu entries themselves are marked
// by the server already and get no breadcrumbs.
(function () {
  "use strict";
  var nav = document.getElementById("side-nav");
  var main = document.querySelector("main");
  if (!nav || !main || nav.querySelector("a.active")) { return; }
  var here = window.location.pathname;
  var best = null;
  var bestLength = 1;  // "/" (the dashboard) is a prefix of everything: never a section by prefix
  nav.querySelectorAll("a[href]").forEach(function (link) {
    var path = new URL(link.href, window.location.href).pathname;
    if (path.length > bestLength && path.charAt(path.length - 1) === "/" && here.indexOf(path) === 0) {
      best = link;
      bestLength = path.length;
    }
  });
  if (!best) { return; }
  best.classList.add("active");
  best.setAttribute("aria-current", "true");

  var heading = main.querySelector("h1");
  var title = "";
  if (heading) {
    heading.childNodes.forEach(function (node) { if (node.nodeType === 3) { title += node.textContent; } });
  }
  title = title.replace(/\s+/g, " ").trim() || document.title.split(" · ")[0];
  var list = best.closest("ul");
  var section = list && list.previousElementSibling && list.previousElementSibling.tagName === "H4"
    ? list.previousElementSibling.textContent.trim() : "";

  // A div with the navigation role, not a <nav>: "the nav" of the page stays the side menu alone
  var crumbs = document.createElement("div");
  crumbs.className = "breadcrumbs";
  crumbs.setAttribute("role", "navigation");
  crumbs.setAttribute("aria-label", "Breadcrumb");
  var ol = document.createElement("ol");
  function item(text, href, current) {
    var li = document.createElement("li");
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      li.appendChild(a);
    } else {
      li.textContent = text;
    }
    if (current) { li.setAttribute("aria-current", "page"); }
    ol.appendChild(li);
  }
  if (section) { item(section, null, false); }
  item(best.textContent.trim(), best.getAttribute("href"), false);
  item(title, null, true);
  crumbs.appendChild(ol);
  var messages = main.querySelector(":scope > .messages");
  main.insertBefore(crumbs, messages ? messages.nextSibling : main.firstChild);
})();
