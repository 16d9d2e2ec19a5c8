// Segment builder: as the condition is typed, ask the server how many customers it holds
// for (300 ms after the last key) and show the count and a few of them, or the mistake at
// its line and column. Saving works without this script; the server checks everything again.
(function () {
  "use strict";

  var DELAY_MS = 300;

  function start() {
    var form = document.querySelector("form[data-segment-builder]");
    if (!form) return;
    var condition = form.querySelector("#condition");
    var count = document.getElementById("preview-count");
    var status = document.getElementById("preview-status");
    var sample = document.getElementById("preview-sample");
    var errorBox = document.getElementById("condition-error");
    var token = form.querySelector("input[name=csrf_token]").value;
    var url = form.getAttribute("data-preview-url");
    var editing = form.getAttribute("data-segment-key") || "";
    var number = new Intl.NumberFormat("en-US");
    var timer = null;
    var sent = null;
    var latest = 0;
    var inFlight = null;
    var errorAt = null;

    function clear(node) {
      while (node.firstChild) node.removeChild(node.firstChild);
    }

    function el(tag, className, text) {
      var node = document.createElement(tag);
      if (className) node.className = className;
      if (text !== undefined) node.textContent = text;
      return node;
    }

    function setStatus(text, busy) {
      status.textContent = text;
      form.querySelector(".preview").setAttribute("aria-busy", busy ? "true" : "false");
    }

    function hideError() {
      errorAt = null;
      errorBox.hidden = true;
      clear(errorBox);
      condition.removeAttribute("aria-invalid");
    }

    // The same markup as the server's _condition_error.html.
    function showError(error, text) {
      clear(errorBox);
      var line = el("p");
      var where = el("strong", "", error.line ? "Line " + error.line + ", column " + error.column + ": " : "");
      line.appendChild(where);
      line.appendChild(el("span", "message", error.message));
      errorBox.appendChild(line);
      errorAt = null;
      if (error.line) {
        var lines = text.split("\n");
        var source = lines[error.line - 1];
        if (source !== undefined) {
          var before = source.slice(0, Math.max(error.column - 1, 0));
          var caret = before.replace(/[^\t]/g, " ") + "^";
          var pre = el("pre", "excerpt", source + "\n");
          pre.appendChild(el("span", "caret", caret));
          errorBox.appendChild(pre);
          var offset = 0;
          for (var i = 0; i < error.line - 1; i++) offset += lines[i].length + 1;
          errorAt = offset + before.length;
          pre.title = "Click to put the cursor there";
        }
      }
      errorBox.hidden = false;
      condition.setAttribute("aria-invalid", "true");
      count.textContent = "—";
      clear(sample);
      setStatus("Fix the condition to see who is in it.", false);
    }

    function showCount(data) {
      hideError();
      count.textContent = number.format(data.count);
      clear(sample);
      data.sample.forEach(function (person) {
        var item = el("li");
        var name = person.display_name || person.email ||
          (person.known ? "Customer no. " : "Anonymous visitor ") + person.profile_id;
        var link = el("a", "", name);
        link.href = "/customers/" + encodeURIComponent(person.profile_id);
        item.appendChild(link);
        if (person.email && person.display_name) item.appendChild(el("span", "muted", " " + person.email));
        sample.appendChild(item);
      });
      var word = data.count === 1 ? "customer" : "customers";
      setStatus(
        data.count === 0 ? "Nobody matches this condition today." :
          word + " match" + (data.count === 1 ? "es" : "") + " today" +
          (data.sample.length < data.count ? "; the newest " + data.sample.length + " below." : "."),
        false
      );
    }

    function preview() {
      timer = null;
      var text = condition.value;
      if (text === sent) return;
      sent = text;
      if (!text.trim()) {
        if (inFlight) inFlight.abort();
        hideError();
        count.textContent = "—";
        clear(sample);
        setStatus("Type a condition to see how many customers it holds for.", false);
        return;
      }
      var mine = ++latest;
      if (inFlight) inFlight.abort();
      inFlight = window.AbortController ? new AbortController() : null;
      setStatus("Counting…", true);
      var body = new URLSearchParams();
      body.set("condition", text);
      body.set("key", editing);
      fetch(url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRF-Token": token, "Accept": "application/json" },
        signal: inFlight ? inFlight.signal : undefined
      }).then(function (response) {
        var type = response.headers.get("content-type") || "";
        if (type.indexOf("application/json") === -1) throw new Error("not json");
        return response.json();
      }).then(function (data) {
        if (mine !== latest) return;
        if (data.error) showError(data.error, text); else showCount(data);
      }).catch(function (problem) {
        if (mine !== latest || (problem && problem.name === "AbortError")) return;
        sent = null; // try again on the next key
        setStatus("Could not count: your session may have ended. Reload the page and log in again.", false);
      });
    }

    function schedule() {
      if (timer) clearTimeout(timer);
      timer = setTimeout(preview, DELAY_MS);
    }

    condition.addEventListener("input", schedule);

    // Clicking the quoted line puts the cursor where the mistake is.
    errorBox.addEventListener("click", function () {
      if (errorAt === null) return;
      condition.focus();
      condition.setSelectionRange(errorAt, errorAt);
    });

    // The examples under the form replace the condition.
    document.addEventListener("click", function (event) {
      var button = event.target.closest("[data-example]");
      if (!button) return;
      condition.value = button.getAttribute("data-example");
      condition.focus();
      preview();
    });

    // A new segment's key follows its name until the key is typed in.
    if (form.hasAttribute("data-new")) {
      var name = form.querySelector("#name");
      var key = form.querySelector("#key");
      var keyTyped = key.value !== "";
      key.addEventListener("input", function () { keyTyped = key.value !== ""; });
      name.addEventListener("input", function () {
        if (keyTyped) return;
        key.value = name.value.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
          .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 100);
      });
    }

    if (condition.value.trim()) preview();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
