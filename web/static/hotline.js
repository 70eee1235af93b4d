// hotline pages: the few behaviours htmx does not give. No inline scripts (the CSP forbids them).
(function () {
  "use strict";
  // The live stream: show a banner while it is down (EventSource reconnects by itself, and
  // the server sends the whole picture again on reconnect, so nothing needs reloading).
  document.addEventListener("htmx:sseError", function () {
    var b = document.getElementById("live-lost");
    if (b) { b.hidden = false; }
  });
  document.addEventListener("htmx:sseOpen", function () {
    var b = document.getElementById("live-lost");
    if (b) { b.hidden = true; }
    document.body.dataset.live = "open";
  });
  // Keyboard shortcuts: any element with data-key="F2" (or "Alt+1") is clicked or focused
  // when that key is pressed, so each page declares its own in its HTML.
  document.addEventListener("keydown", function (ev) {
    var name = (ev.altKey ? "Alt+" : "") + (ev.ctrlKey ? "Ctrl+" : "") + (ev.key.length === 1 ? ev.key.toUpperCase() : ev.key);
    var el = document.querySelector('[data-key="' + name + '"]');
    if (!el) { return; }
    ev.preventDefault();
    if (el.matches("input, textarea, select")) { el.focus(); } else { el.click(); }
  });
})();
