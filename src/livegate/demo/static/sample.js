// The room's chat, straight from livegate's event stream (Server-Sent Events). The app's server
// only mints a short-lived browser token (/chat/token); no access token or API key, and no
// TikTok library, on this page.
(function () {
  "use strict";
  var list = document.getElementById("chat");
  if (!list) return;
  var status = document.getElementById("chat-status");
  var room = list.getAttribute("data-room");
  var lastId = "";
  var tries = 0;

  function say(text) { status.textContent = text; }

  function add(user, text) {
    var li = document.createElement("li");
    var who = document.createElement("strong");
    who.textContent = user.nickname || user.display_id || "someone";
    li.appendChild(who);
    li.appendChild(document.createTextNode(text));
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  // The user disconnected the app elsewhere (livegate's /account): the page says so.
  function revoked() { window.location.assign("/"); }

  function retry() {
    tries += 1;
    if (tries > 5) { say("Could not connect to @" + room + "."); return; }
    window.setTimeout(open, 1000 * tries);
  }

  function listen(url) {
    // After a drop, resume after the last event seen (a fresh token: the old one may be
    // too old to open a stream again).
    var source = new EventSource(lastId ? url + "&lastEventId=" + encodeURIComponent(lastId) : url);
    source.onmessage = function (e) {
      if (e.lastEventId) lastId = e.lastEventId;
      var event = JSON.parse(e.data);
      if (event.type === "roomInfo") { tries = 0; say("connected to @" + room); }
      else if (event.type === "WebcastChatMessage") add(event.data.user || {}, event.data.content);
    };
    source.addEventListener("error", function (e) {
      if (e.data) {
        // The stream's last event: why it ended (livegate's close codes).
        var why = JSON.parse(e.data);
        source.close();
        if (why.code === 4401) revoked();
        else if (why.code === 4005) say("The LIVE of @" + room + " ended.");
        else say(why.message);
      } else if (source.readyState === EventSource.CLOSED) {
        retry();  // refused on reconnecting: ask the app again (it says why in words)
      }
    });
  }

  function open() {
    fetch("/chat/token", { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return { status: r.status, body: body }; }); })
      .then(function (answer) {
        if (answer.status === 401) revoked();
        else if (answer.body.url) listen(answer.body.url);
        else say(answer.body.message);
      })
      .catch(function () { say("The app cannot be reached."); });
  }

  open();
})();
