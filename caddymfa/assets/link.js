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
