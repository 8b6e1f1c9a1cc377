// nightly-refresh console: the one script, for progressive enhancement only; every page
// works without it. A page whose <body> has data-refresh="N" reloads itself every N
// seconds while it is visible (the routine page), unless a form field has focus.
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "", 10);
  if (!(seconds > 0)) {
    return;
  }
  window.setInterval(function () {
    var active = document.activeElement;
    var typing = active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA");
    if (document.visibilityState === "visible" && !typing) {
      window.location.reload();
    }
  }, seconds * 1000);
})();
