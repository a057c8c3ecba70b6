// Streams the room's chat from the app's server (which watches it through livegate).
(function () {
  "use strict";
  var list = document.getElementById("chat");
  if (!list) return;
  var status = document.getElementById("chat-status");
  var source = new EventSource(list.getAttribute("data-stream"));
  source.addEventListener("status", function (e) { status.textContent = JSON.parse(e.data).message; });
  source.addEventListener("error", function (e) {
    if (e.data) { status.textContent = JSON.parse(e.data).message; source.close(); }
  });
  // The user disconnected the app elsewhere (livegate's /account): the page says so.
  source.addEventListener("revoked", function () {
    source.close();
    window.location.assign("/");
  });
  source.addEventListener("comment", function (e) {
    var c = JSON.parse(e.data);
    var li = document.createElement("li");
    var who = document.createElement("strong");
    who.textContent = c.user;
    li.appendChild(who);
    li.appendChild(document.createTextNode(c.text));
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  });
})();
