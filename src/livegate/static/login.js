// Polls the sign-in status, refreshes the QR code when TikTok issues a new one, and follows
// the final redirect. Without JavaScript the page refreshes itself (see the <noscript> tag).
(function () {
  "use strict";
  var root = document.getElementById("login");
  if (!root) return;
  var id = root.getAttribute("data-login");
  var expires = parseInt(root.getAttribute("data-expires") || "0", 10);
  var statusEl = document.getElementById("status");
  var messageEl = document.getElementById("message");
  var countdown = document.getElementById("countdown");
  var qr = document.getElementById("qr");
  var signedInEl = document.getElementById("signed-in-as");
  var link = document.getElementById("qr-link");
  var version = root.getAttribute("data-qr-version") || "";

  function tick() {
    if (!expires) return;
    var left = Math.max(0, Math.round(expires - Date.now() / 1000));
    countdown.textContent = String(left);
  }

  function poll() {
    fetch("/tiktok/oauth/login/" + encodeURIComponent(id) + "/status", {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.status_text) statusEl.textContent = s.status_text;
        statusEl.setAttribute("data-status", s.status);
        messageEl.textContent = s.message || "";
        if (s.unique_id && signedInEl) {
          signedInEl.textContent = (signedInEl.getAttribute("data-template") || "@{user}").replace("{user}", s.unique_id);
          signedInEl.classList.remove("hidden");
        }
        if (s.redirect) {
          // Let the user see which account signed in before leaving for the app.
          setTimeout(function () { window.location.assign(s.redirect); }, s.unique_id ? 1200 : 0);
          return;
        }
        if (s.qr_expires_at) expires = s.qr_expires_at;
        if (s.qr_version && s.qr_version !== version) {
          version = s.qr_version;
          if (qr) qr.src = "/tiktok/oauth/login/" + encodeURIComponent(id) + "/qr.svg?v=" + version;
          if (link && s.qr_url) link.href = s.qr_url;
        }
        if (s.status !== "expired_login") setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }

  tick();
  setInterval(tick, 1000);
  setTimeout(poll, 500);
})();
