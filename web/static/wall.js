// The wallboard's buttons answer with a message for #wall-msg, a refusal too (403 not allowed,
// 404 no such agent, 409 the engine or the ticket's state said no, 422, 503): htmx does not
// swap an error answer by default, so the refusal would be silent. No inline scripts (CSP).
(function () {
  "use strict";
  var SHOWN = [403, 404, 409, 422, 503];
  document.addEventListener("htmx:beforeSwap", function (ev) {
    if (SHOWN.indexOf(ev.detail.xhr.status) >= 0 && ev.detail.target && ev.detail.target.id === "wall-msg") {
      ev.detail.shouldSwap = true;
      ev.detail.isError = false;
    }
  });
})();
