// Follows a queued task (the element #task, its data-url the task status endpoint): moves the progress bar
// while the task reports done/total, and reloads the page without the task once it has finished.
(function () {
  "use strict";
  var box = document.getElementById("task");
  if (!box) { return; }
  var bar = document.getElementById("task-bar"), text = document.getElementById("task-text");
  var outer = bar.parentNode, polls = 0;

  function show(percent, message) {
    bar.style.width = percent + "%";
    outer.setAttribute("aria-valuenow", String(percent));
    text.textContent = message;
  }

  function poll() {
    polls += 1;
    fetch(box.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.state === "SUCCESS") {
          outer.classList.add("done");
          var r = s.result || {};
          show(100, r.crl_number !== undefined ? "Done: CRL #" + r.crl_number + " with " + r.entries + " entries."
                                              : "Done.");
          setTimeout(function () { window.location = window.location.pathname; }, 1500);
          return;
        }
        if (s.state === "FAILURE") { outer.classList.add("failed"); show(100, "Failed: " + (s.error || "see the server log")); return; }
        if (s.total) { show(Math.round(100 * s.done / s.total), s.done + " of " + s.total + " entries written"); }
        else { show(5, s.state === "PENDING" ? "Waiting for a worker…" : s.state.toLowerCase()); }
        setTimeout(poll, polls < 20 ? 500 : 2000);
      })
      .catch(function () { text.textContent = "Lost contact with the server; retrying…"; setTimeout(poll, 3000); });
  }
  poll();
})();
