// Screen lock (R15, R19): after a period without input the page goes blank behind an overlay, so
// personal data never stays on an unattended screen. Unlocking needs a fresh one-time code (checked
// on the server); the server still ends the session at its own idle timeout whatever this script does.
"use strict";
(function () {
  var overlay = document.getElementById("screen-lock");
  if (!overlay) {
    return;
  }
  var idleMs = parseInt(overlay.getAttribute("data-idle-seconds"), 10) * 1000;
  var main = document.getElementById("main");
  var last = Date.now();
  var locked = false;

  function lock() {
    locked = true;
    document.body.classList.add("locked");
    // Hidden and inert: the data is neither shown, nor read out, nor reachable with the keyboard.
    main.hidden = true;
    main.setAttribute("inert", "");
    overlay.hidden = false;
    var code = document.getElementById("screen-lock-totp");
    if (code) {
      code.focus();
    }
  }

  function activity() {
    if (!locked) {
      last = Date.now();
    }
  }

  ["keydown", "mousedown", "mousemove", "wheel", "touchstart", "scroll"].forEach(function (name) {
    document.addEventListener(name, activity, { passive: true, capture: true });
  });
  var next = document.getElementById("screen-lock-next");
  if (next) {
    next.value = window.location.pathname + window.location.search;
  }
  setInterval(function () {
    if (!locked && Date.now() - last >= idleMs) {
      lock();
    }
  }, 1000);
})();
