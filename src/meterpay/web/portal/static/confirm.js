// Forms that undo something ask first: a form with data-confirm is sent only after the
// owner says yes to its question (WeChat's browser shows window.confirm as a dialog).
// Without script the form is sent as it is: the server still checks everything.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
