// The bridge page: refresh #bridge-figures from the same page every few seconds, without a full reload.
// It stops while nobody uses the page (no input for 5 minutes), so it never keeps an idle session alive.
(function () {
  "use strict";
  var IDLE_MS = 5 * 60 * 1000;
  var lastInput = Date.now();
  ["keydown", "mousedown", "mousemove", "touchstart", "wheel"].forEach(function (name) {
    document.addEventListener(name, function () { lastInput = Date.now(); }, { passive: true });
  });

  function refresh(region) {
    if (Date.now() - lastInput > IDLE_MS || document.hidden) { return Promise.resolve(); }
    return fetch(window.location.pathname, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error("refresh refused"); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("bridge-figures");
        if (fresh) {
          region.innerHTML = fresh.innerHTML;
          region.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { region.setAttribute("data-refresh-failed", String(Date.now())); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var region = document.getElementById("bridge-figures");
    if (!region) { return; }
    var seconds = parseInt(region.getAttribute("data-refresh-seconds"), 10) || 5;
    window.setInterval(function () { refresh(region); }, seconds * 1000);
  });
})();
