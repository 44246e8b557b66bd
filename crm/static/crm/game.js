// The red packet's mini-game gate: tap the falling packets for a few seconds, then post the signed result.
// The server issued the session (nonce, key) and checks the signature, the time taken and the score; this file
// can of course be scripted: the gate proves a real session on the customer's page, not skill.
(function () {
  "use strict";
  var root = document.getElementById("game");
  if (!root) return;
  var startUrl = root.dataset.startUrl, resultUrl = root.dataset.resultUrl;
  var area = root.querySelector(".game-area"), scoreEl = root.querySelector(".game-score");
  var button = root.querySelector(".game-start"), note = root.querySelector(".game-note");

  function hex(buf) {
    return Array.prototype.map.call(new Uint8Array(buf), function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function sign(key, message) {  // HMAC-SHA256(key, message) as hex, with the browser's Web Crypto
    var enc = new TextEncoder();
    return crypto.subtle.importKey("raw", enc.encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
      .then(function (k) { return crypto.subtle.sign("HMAC", k, enc.encode(message)); }).then(hex);
  }
  function post(url, body) {
    var headers = { "Content-Type": "application/json", "Accept": "application/json" };
    // The pool page's calls are credentialed by the session cookie: they carry the page's CSRF token.
    if (root.dataset.csrf) headers["X-CSRFToken"] = root.dataset.csrf;
    return fetch(url, { method: "POST", headers: headers, body: JSON.stringify(body || {}), credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); });
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    post(startUrl).then(function (res) {
      if (!res.ok) { note.textContent = res.body.error.message; return; }
      play(res.body);
    });
  });

  function play(session) {
    var score = 0, ends = Date.now() + session.seconds * 1000, dropped = 0;
    root.dataset.state = "playing";
    var spawn = setInterval(function () {
      if (dropped >= session.max_score) return;
      dropped += 1;
      var p = document.createElement("button");
      p.type = "button";
      p.className = "packet";
      p.textContent = "🧧";
      p.style.left = Math.floor(Math.random() * 80) + "%";
      p.style.top = Math.floor(Math.random() * 75) + "%";
      p.addEventListener("click", function () { score += 1; scoreEl.textContent = score; p.remove(); });
      area.appendChild(p);
      setTimeout(function () { p.remove(); }, 1200);
    }, 400);
    var timer = setInterval(function () {
      if (Date.now() < ends) return;
      clearInterval(spawn); clearInterval(timer);
      area.innerHTML = "";
      root.dataset.state = "posting";
      // The server wants at least one packet: a game with none is played again.
      if (score < 1) { note.textContent = root.dataset.tryAgain; button.disabled = false; return; }
      sign(session.key, session.nonce + ":" + score).then(function (sig) {
        return post(resultUrl, { nonce: session.nonce, score: score, sig: sig });
      }).then(function (res) {
        if (res.ok) { root.dataset.state = "played"; window.location.reload(); }
        else { note.textContent = res.body.error.message; button.disabled = false; }
      });
    }, 200);
  }
})();
