// A table wider than its box scrolls inside it (layout.css): such a box takes keyboard focus, so that it can be
// scrolled with the arrow keys, and is named after the table's caption or the heading above it.
(function () {
  "use strict";
  function mark() {
    document.querySelectorAll("main .table-wrap, main table").forEach(function (box) {
      if (box.scrollWidth <= box.clientWidth + 1) { return; }  // not a scrolling box (now)
      if (!box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        var heading = null, el = box;
        while (el && !heading) {
          var prev = el.previousElementSibling;
          while (prev && !/^H[1-4]$/.test(prev.tagName)) { prev = prev.previousElementSibling; }
          heading = prev;
          el = el.parentElement;
        }
        box.setAttribute("aria-label", (heading ? heading.textContent.trim() : "Table") + " (scrolls sideways)");
      }
    });
  }
  mark();
  window.addEventListener("resize", mark);
})();
