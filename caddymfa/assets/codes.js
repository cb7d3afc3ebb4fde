// Copy and print for the recovery codes page. The buttons are hidden
// until this script shows them, so a browser without scripts offers only
// what works without one: the download link and the list itself.
(function () {
  "use strict";
  var list = document.getElementById("codes");
  if (!list) {
    return;
  }
  var text = Array.prototype.map.call(list.querySelectorAll("code"), function (c) {
    return c.textContent;
  }).join("\n") + "\n";
  var copy = document.getElementById("codes-copy");
  var copied = document.getElementById("codes-copied");
  if (copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(text).then(function () {
        if (copied) {
          copied.hidden = false;
        }
      });
    });
  }
  var print = document.getElementById("codes-print");
  if (print && window.print) {
    print.hidden = false;
    print.addEventListener("click", function () {
      window.print();
    });
  }
})();
