// Crypto token page: follows the key generation on the worker (#task, its data-url the task status endpoint)
// and reloads the page when the key pair exists.
(function () {
  "use strict";
  var box = document.getElementById("task");
  if (!box) { return; }
  var bar = document.getElementById("task-bar"), text = document.getElementById("task-text");
  function poll() {
    fetch(box.dataset.url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (s) {
      if (s.state === "SUCCESS") {
        bar.style.width = "100%"; text.textContent = "done: " + s.result.alias;
        setTimeout(function () { window.location = window.location.pathname; }, 800);
        return;
      }
      if (s.state === "FAILURE") { text.textContent = "failed: " + s.error; return; }
      bar.style.width = s.state === "GENERATING" ? "60%" : "20%";
      text.textContent = s.state.toLowerCase();
      setTimeout(poll, 700);
    });
  }
  poll();
})();
