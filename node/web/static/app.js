// meshsync's page script: live views over server-sent events, invite countdowns and
// confirmations. Every page works without it, only not live.
"use strict";
(function () {
  // Confirm before a destructive form is sent.
  document.addEventListener("submit", function (e) {
    var f = e.target.closest("form[data-confirm]");
    if (f && !window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
  });

  // Countdowns: "in 9:58", then "expired".
  function tick() {
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = Math.round((Date.parse(el.getAttribute("data-countdown")) - Date.now()) / 1000);
      if (left <= 0) { el.textContent = "expired"; return; }
      var m = Math.floor(left / 60), s = left % 60;
      el.textContent = "in " + m + ":" + (s < 10 ? "0" : "") + s;
    });
  }
  tick();
  setInterval(tick, 1000);

  // Live views: refresh <main> whenever the node reports a change, unless the user is
  // typing in it.
  var main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource) return;
  var timer = null, busy = false;
  function editing() {
    var a = document.activeElement;
    return a && main.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName);
  }
  function refresh() {
    timer = null;
    if (busy) return;
    if (editing()) { timer = setTimeout(refresh, 1000); return; }
    busy = true;
    fetch(location.href, { headers: { "X-Live": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html || editing()) return;
        var next = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        if (next) main.innerHTML = next.innerHTML;
        tick();
      })
      .catch(function () {})
      .finally(function () { busy = false; });
  }
  var es = new EventSource("/events");
  es.onmessage = es.onerror = null;
  ["state", "record"].forEach(function (t) {
    es.addEventListener(t, function () { if (!timer) timer = setTimeout(refresh, 300); });
  });
  // A refresh now and then catches what events do not carry (last seen, retry times).
  setInterval(function () { if (!timer) timer = setTimeout(refresh, 0); }, 15000);
})();
