// Shopkeeper admin UI: small enhancements; every page works without them.
(function () {
  "use strict";

  // Times arrive in UTC; show them in the reader's own time zone (UTC stays in the tooltip).
  var dateTime = new Intl.DateTimeFormat(undefined, {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit"
  });
  var timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      el.title = el.title || el.textContent.trim();
      el.textContent = (el.dataset.local === "time" ? timeOnly : dateTime).format(when);
      el.removeAttribute("data-local");
    });
  }

  // Forms that destroy something ask first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // Copy buttons next to keys and snippets.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // Product pictures live on the shop's own servers; one that cannot be reached is
  // hidden rather than shown as a broken image.
  document.addEventListener("error", function (event) {
    if (event.target.tagName === "IMG") event.target.classList.add("broken");
  }, true);

  document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
  document.addEventListener("htmx:afterSettle", function (event) { localTimes(event.target); });
})();
