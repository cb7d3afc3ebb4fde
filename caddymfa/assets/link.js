// The sign-in link carries its token in the URL fragment, which the
// browser never sends, so no server log can record it. This posts it.
(function () {
  "use strict";
  var token = location.hash.slice(1);
  var form = document.getElementById("link-open");
  if (!token || !form) {
    return;
  }
  history.replaceState(null, "", location.pathname);
  form.elements.token.value = token;
  form.submit();
})();

// The page waiting for a link asks /status every two seconds instead of
// reloading itself (a reload moves a screen reader back to the top), and
// goes on once the link is opened or the wait is over. Without scripts
// the page's <noscript> refresh does the same.
(function () {
  "use strict";
  var script = document.currentScript;
  var status = script && script.getAttribute("data-status");
  if (!status || !window.fetch) {
    return;
  }
  function ask() {
    fetch(status, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.status === "pending") {
          setTimeout(ask, 2000);
        } else if (s.status === "verified" && s.redirect) {
          location.assign(s.redirect);
        } else {
          location.reload();
        }
      })
      .catch(function () { setTimeout(ask, 5000); });
  }
  setTimeout(ask, 2000);
})();
