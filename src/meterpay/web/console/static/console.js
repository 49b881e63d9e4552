// The console's own script: keep a page that asks for it (an element with data-refresh in
// its <main>) current without a reload (the scroll position stays), and submit the site
// picker when it changes. Pages with forms never refresh themselves: what is being typed
// stays. Without JavaScript a <meta refresh> in <noscript> reloads instead.
(function () {
  "use strict";
  var EVERY_MS = 5000;

  function refresh() {
    if (!document.querySelector("main [data-refresh]")) return;
    if (document.hidden || String(window.getSelection()) !== "") return;
    fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        var shown = document.querySelector("main");
        if (fresh && shown) shown.replaceWith(fresh);
      })
      .catch(function () { /* the next round tries again */ });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("select[data-autosubmit]")) target.form.submit();
  });
  window.setInterval(refresh, EVERY_MS);
})();
