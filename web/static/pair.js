/* Pairing: with the link's key (from the QR code) at once, or with the typed code. */
"use strict";

(function () {
  var root = document.getElementById("pair");
  var form = document.getElementById("pair-form");
  var status = document.getElementById("pair-status");
  var codeInput = document.getElementById("code");
  var nameInput = document.getElementById("name");
  var button = document.getElementById("pair-button");
  var lockTimer = null;

  function say(text, kind) {
    status.textContent = text;
    status.className = "status" + (kind ? " " + kind : "");
  }

  function lockedFor(seconds) {
    clearInterval(lockTimer);
    var until = performance.now() + seconds * 1000;
    button.disabled = true;
    var tick = function () {
      var left = Math.ceil((until - performance.now()) / 1000);
      if (left <= 0) {
        clearInterval(lockTimer);
        button.disabled = false;
        say("You can try again now.");
        return;
      }
      say("Too many wrong codes. Try again in " + Kit.clock(left) + ".", "bad");
    };
    tick();
    lockTimer = setInterval(tick, 1000);
  }

  function pair(body) {
    body.phone_time_ms = Date.now(); // the kit has no clock of its own: it may take ours
    button.disabled = true;
    return Kit.api("POST", "/api/pair", body, { headers: { "X-Kit-Pairing": "1" }, noRedirect: true })
      .then(function (r) {
        if (r.ok) {
          say("Paired. Opening the kit…", "good");
          // Drop the key from the history, then open the home page.
          history.replaceState(null, "", "/pair");
          location.replace("/");
          return true;
        }
        button.disabled = false;
        if (r.status === 429) {
          lockedFor(r.body.retry_after_s || 60);
        } else if (r.status === 401) {
          say(body.key ? "This link is not for this kit. Type the code instead." : "That code is not right. Check the kit's label.", "bad");
        } else {
          say(r.body.error || "The kit refused (" + r.status + ").", "bad");
        }
        return false;
      }, function () {
        button.disabled = false;
        say("Cannot reach the kit. Is this phone on the kit's Wi-Fi?", "bad");
        return false;
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var code = codeInput.value.replace(/[\s-]/g, "");
    if (!/^[0-9]{6}$/.test(code)) {
      say("The code is 6 digits.", "bad");
      codeInput.focus();
      return;
    }
    pair({ code: code, name: nameInput.value });
  });

  codeInput.addEventListener("input", function () {
    var digits = codeInput.value.replace(/[^0-9]/g, "").slice(0, 6);
    if (codeInput.value !== digits) codeInput.value = digits;
  });

  var locked = Number(root.getAttribute("data-locked-for")) || 0;
  var key = root.getAttribute("data-key");
  if (locked > 0) {
    form.hidden = false;
    lockedFor(locked);
  } else if (key) {
    say("Pairing this phone…");
    pair({ key: key }).then(function (ok) {
      if (!ok) form.hidden = false;
    });
  }
})();
