// The agent desk's two behaviours beyond htmx. No inline scripts (the CSP forbids them).
(function () {
  "use strict";
  // A refused request (403, 409, 422) or a part not available yet (503) answers with the reason
  // as HTML: show it where the request said (htmx swaps only 2xx by default).
  document.addEventListener("htmx:beforeSwap", function (ev) {
    var s = ev.detail.xhr.status;
    if (s === 403 || s === 409 || s === 422 || s === 503) {
      ev.detail.shouldSwap = true;
      ev.detail.isError = false;
    }
  });
  // The stream sends the whole desk again after a reconnect: never replace the ticket form the
  // agent is typing in with the same ticket's empty draft.
  document.addEventListener("htmx:sseBeforeMessage", function (ev) {
    var msg = ev.detail;
    if (!msg || msg.type !== "ticket") { return; }
    var form = document.getElementById("ticket-form");
    var m = /<form id="ticket-form"[^>]*data-ticket="(\d+)"/.exec(msg.data || "");
    if (form && m && m[1] === form.dataset.ticket) { ev.preventDefault(); }
  });
})();
