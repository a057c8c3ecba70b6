// Copy buttons for secrets shown once (client secret, API key): a button with
// data-copy="<input id>" copies that input's value. The buttons are hidden until this runs.
(function () {
  "use strict";
  function copied(button) {
    var label = button.textContent;
    button.textContent = button.getAttribute("data-copied") || "Copied";
    setTimeout(function () { button.textContent = label; }, 2000);
  }
  function fallback(input, button) {
    input.focus();
    input.select();
    if (document.execCommand && document.execCommand("copy")) copied(button);
  }
  var buttons = document.querySelectorAll("button[data-copy]");
  Array.prototype.forEach.call(buttons, function (button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(
          function () { copied(button); },
          function () { fallback(input, button); }
        );
      } else {
        fallback(input, button);
      }
    });
  });
})();
