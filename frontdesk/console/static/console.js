// Frontdesk console: refresh the element marked data-refresh from its URL every few seconds.
// The server renders the fragment (escaped by its templates); nothing here builds markup.
(function () {
  "use strict";
  function start(box) {
    var url = box.getAttribute("data-refresh");
    var every = parseInt(box.getAttribute("data-every") || "2000", 10);
    var busy = false;
    function refresh() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.status === 401) { window.location.assign("/console"); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) { if (html !== null) { box.innerHTML = html; } })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { busy = false; });
    }
    window.setInterval(refresh, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var boxes = document.querySelectorAll("[data-refresh]");
    for (var i = 0; i < boxes.length; i++) { start(boxes[i]); }
  });
})();
