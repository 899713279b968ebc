/* The guider's phone as the remote of the screens showing a visit's film.
 *
 * Each button is a command to the kit (POST /api/present/<visit>/command), which every
 * screen of the visit follows; the screens report where their film is (present events,
 * action "state") and the remote shows the newest report: the moment, the time (counted
 * on between reports while playing), paused or playing, the speed, the still. Opening the
 * remote brings the screens to this visit ("open"). Bubbles: the guider types what the
 * child (or parent) might be saying or thinking, and the kit draws it on a copy of the
 * still of the moment showing. */
"use strict";

(function () {
  var root = document.getElementById("remote");
  var VISIT = root.getAttribute("data-visit");
  var HEARTBEAT_S = Number(root.getAttribute("data-heartbeat-s")) || 15;
  var SCREEN_SEEN_S = 25; // a screen reports every 10 s at least: gone after two misses
  var $ = function (id) { return document.getElementById(id); };
  var toast = new Kit.Toast($("toast"));

  var data = { moments: [], film_url: null, duration_s: 0, fps: null };
  var bubbles = {}; // moment number -> {text, kind, side}
  var latest = null; // the newest screen report, with ``at`` (performance.now())
  var screens = {}; // device id -> when it last reported (performance.now())
  var chosen = 1; // the moment the remote last sent the screens to (before any report)
  var kind = "speech";
  var side = "left";
  var editing = null; // the moment whose bubble the editor shows
  var closed = false;

  function notify(text, kindName) { toast.show(text, 4, null, kindName); }

  function error(text) {
    $("error").textContent = text || "";
    $("error").hidden = !text;
  }

  /* ---------- commands ---------- */

  /* ``auto``: sent by the page itself, not a tap (no buzz: browsers refuse it untapped). */
  function send(action, fields, auto) {
    var body = { action: action };
    Object.keys(fields || {}).forEach(function (k) { body[k] = fields[k]; });
    if (!auto) Kit.vibrate(15);
    return Kit.api("POST", "/api/present/" + VISIT + "/command", body).then(function (r) {
      if (!r.ok) notify(r.body.error || "The kit refused (" + r.status + ")", "bad");
      return r.ok;
    }, function () {
      notify("The kit did not get that: is this phone on its Wi-Fi?", "bad");
      return false;
    });
  }

  /* ---------- what the screens show ---------- */

  function momentIndex(number) {
    for (var i = 0; i < data.moments.length; i++) if (data.moments[i].number === number) return i;
    return -1;
  }

  function shownMoment() {
    if (latest && latest.moment) return latest.moment;
    return chosen;
  }

  /* Where the film is now: the newest report, counted on while it plays (to the end of its
   * moment, where the screen stops). */
  function filmTime() {
    if (!latest) return null;
    if (!latest.playing) return latest.time_s;
    var t = latest.time_s + ((performance.now() - latest.at) / 1000) * latest.rate;
    var i = momentIndex(latest.moment);
    if (i >= 0) t = Math.min(t, data.moments[i].film_end_s);
    return t;
  }

  function countScreens() {
    var now = performance.now();
    var n = 0;
    Object.keys(screens).forEach(function (id) {
      if (now - screens[id] < SCREEN_SEEN_S * 1000) n += 1;
    });
    return n;
  }

  function renderScreens() {
    var n = countScreens();
    root.setAttribute("data-screens", String(n));
    $("screens-text").textContent = n === 0 ? "No screen is showing this film yet"
      : n === 1 ? "1 screen is showing this film" : n + " screens are showing this film";
  }

  function renderNow() {
    var n = data.moments.length;
    var m = shownMoment();
    $("now-moment").textContent = n ? "Moment " + m + " of " + n : "No film yet";
    var t = filmTime();
    var clock = $("now-time");
    clock.textContent = t == null ? "–" : Present.time(t);
    clock.setAttribute("data-time-s", t == null ? "" : String(t));
    var words = "";
    if (latest) {
      words = latest.still ? "Still" : latest.playing ? "Playing" : "Paused";
      if (latest.rate !== 1) words += " · " + Present.rateName(latest.rate);
    } else if (n) {
      words = "Waiting for a screen";
    }
    $("now-state").textContent = words;
    root.setAttribute("data-playing", latest && latest.playing ? "yes" : "no");
    var rate = latest ? latest.rate : 1;
    Array.prototype.forEach.call(document.querySelectorAll(".rate-key"), function (b) {
      b.setAttribute("aria-pressed", Number(b.getAttribute("data-rate")) === rate ? "true" : "false");
    });
    var stillOn = !!(latest && latest.still);
    $("still").setAttribute("aria-pressed", stillOn ? "true" : "false");
    $("still").textContent = stillOn ? "Hide the still" : "Show the still";
    Array.prototype.forEach.call(document.querySelectorAll("#chips .chip"), function (b) {
      b.setAttribute("aria-current", Number(b.getAttribute("data-moment")) === m ? "true" : "false");
    });
    renderBubble();
  }

  function renderChips() {
    var chips = $("chips");
    chips.textContent = "";
    data.moments.forEach(function (m) {
      var b = Kit.el("button", "btn chip", String(m.number));
      b.type = "button";
      b.setAttribute("data-moment", String(m.number));
      b.setAttribute("aria-label", "Moment " + m.number);
      b.addEventListener("click", function () { chosen = m.number; send("moment", { moment: m.number }); });
      chips.appendChild(b);
    });
    $("no-film").hidden = data.moments.length > 0;
  }

  /* ---------- bubbles ---------- */

  function pressed(selector, attr, value) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), function (b) {
      b.setAttribute("aria-pressed", b.getAttribute(attr) === value ? "true" : "false");
    });
  }

  function renderBubble() {
    var number = shownMoment();
    var i = momentIndex(number);
    var m = i >= 0 ? data.moments[i] : null;
    $("bubble-title").textContent = m ? "A bubble on the still of moment " + number : "A bubble on the still";
    var img = $("bubble-preview");
    if (m && m.still_url) {
      if (img.getAttribute("src") !== m.still_url) img.src = m.still_url;
      img.hidden = false;
    } else {
      img.hidden = true;
    }
    $("bubble-put").disabled = !(m && m.still_url);
    if (editing === number) return;
    if (document.activeElement === $("bubble-text") && editing !== null) return; // mid-typing
    editing = number;
    var b = bubbles[number];
    $("bubble-text").value = b ? b.text : "";
    kind = b ? b.kind : "speech";
    side = b ? b.side : "left";
    pressed(".seg[data-kind]", "data-kind", kind);
    pressed(".seg[data-side]", "data-side", side);
    $("bubble-off").hidden = !b;
    $("bubble-put").textContent = b ? "Change the bubble" : "Put it on the still";
  }

  function afterBubble(number, r, words) {
    var i = momentIndex(number);
    if (i >= 0 && r.body.still_url) data.moments[i].still_url = r.body.still_url;
    editing = null;
    renderBubble();
    notify(words, "good");
  }

  function putBubble() {
    var number = shownMoment();
    var text = $("bubble-text").value.trim();
    if (!text) { notify("Type what they might be saying or thinking first.", "bad"); $("bubble-text").focus(); return; }
    var body = { text: text, kind: kind, side: side };
    $("bubble-put").disabled = true;
    Kit.api("PUT", "/api/present/" + VISIT + "/stills/" + number + "/bubble", body).then(function (r) {
      $("bubble-put").disabled = false;
      if (!r.ok) { notify(r.body.error || "The kit refused (" + r.status + ")", "bad"); return; }
      bubbles[number] = r.body.bubble;
      afterBubble(number, r, "✓ The bubble is on the still of moment " + number);
    }, function () {
      $("bubble-put").disabled = false;
      notify("The kit did not get that: is this phone on its Wi-Fi?", "bad");
    });
  }

  function takeOff() {
    var number = shownMoment();
    Kit.api("DELETE", "/api/present/" + VISIT + "/stills/" + number + "/bubble").then(function (r) {
      if (!r.ok && r.status !== 404) { notify(r.body.error || "The kit refused (" + r.status + ")", "bad"); return; }
      delete bubbles[number];
      afterBubble(number, r, "The bubble is off the still of moment " + number);
    }, function () { notify("The kit did not get that: is this phone on its Wi-Fi?", "bad"); });
  }

  /* ---------- the data ---------- */

  function stopAll(why) {
    closed = true;
    error(why);
    Array.prototype.forEach.call(document.querySelectorAll(".keypad button, .card button, #close"), function (b) { b.disabled = true; });
  }

  function load() {
    return Promise.all([
      Kit.api("GET", "/api/present/" + VISIT),
      Kit.api("GET", "/api/present/" + VISIT + "/bubbles"),
    ]).then(function (answers) {
      var r = answers[0];
      if (!r.ok) {
        if (r.status === 409) stopAll("This visit is sealed: its film can no longer be shown.");
        else if (r.status === 403) stopAll("The family did not agree to watching this film: it cannot be shown.");
        else error(r.body.error || "The kit refused (" + r.status + ")");
        return;
      }
      data = r.body;
      bubbles = {};
      if (answers[1].ok) answers[1].body.bubbles.forEach(function (b) { bubbles[b.moment] = b; });
      editing = null;
      renderChips();
      renderNow();
    }, function () { error("Cannot reach the kit. Is this phone on the kit's Wi-Fi?"); });
  }

  function onEvent(kindName, d) {
    if (kindName === "present") {
      if (d.visit_id !== VISIT) return;
      if (d.action === "state") {
        screens[d.device] = performance.now();
        d.at = performance.now();
        latest = d;
        renderScreens();
        renderNow();
      } else if (d.action === "stills") {
        load();
      } else if (d.action === "moment") {
        chosen = d.moment;
      }
    } else if (kindName === "cut") {
      load();
    } else if (kindName === "visit") {
      if (d.action === "sealed" || d.action === "erased") stopAll("This visit is sealed: its film can no longer be shown.");
    } else if (kindName === "resync") {
      load();
    }
  }

  /* ---------- buttons ---------- */

  $("play").addEventListener("click", function () { send("play"); });
  $("pause").addEventListener("click", function () { send("pause"); });
  $("next").addEventListener("click", function () { send("next"); });
  $("prev").addEventListener("click", function () { send("previous"); });
  $("step-back").addEventListener("click", function () { send("step", { frames: -1 }); });
  $("step-on").addEventListener("click", function () { send("step", { frames: 1 }); });
  $("still").addEventListener("click", function () { send("still", { still: !(latest && latest.still) }); });
  Array.prototype.forEach.call(document.querySelectorAll(".rate-key"), function (b) {
    b.addEventListener("click", function () { send("rate", { rate: Number(b.getAttribute("data-rate")) }); });
  });
  $("open").addEventListener("click", function () {
    send("open").then(function (ok) { if (ok) notify("The screens are showing this film", "good"); });
  });
  $("close").addEventListener("click", function () {
    send("close").then(function (ok) {
      if (!ok) return;
      latest = null;
      screens = {};
      renderScreens();
      renderNow();
      notify("The screens have let go of the film", "good");
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".seg[data-kind]"), function (b) {
    b.addEventListener("click", function () { kind = b.getAttribute("data-kind"); pressed(".seg[data-kind]", "data-kind", kind); });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".seg[data-side]"), function (b) {
    b.addEventListener("click", function () { side = b.getAttribute("data-side"); pressed(".seg[data-side]", "data-side", side); });
  });
  $("bubble-put").addEventListener("click", putBubble);
  $("bubble-off").addEventListener("click", takeOff);
  $("bubble-text").addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); putBubble(); } });
  $("connect").addEventListener("toggle", function () {
    if (!$("connect").open) return;
    Kit.api("GET", "/api/pairing").then(function (r) {
      if (r.ok) $("pair-code").textContent = r.body.code.slice(0, 3) + " " + r.body.code.slice(3);
    }, function () { /* shown as dots */ });
  });

  setInterval(function () {
    if (closed) return;
    if (latest && latest.playing) renderNow();
    renderScreens();
  }, 100);

  /* ---------- start ---------- */

  var access = root.getAttribute("data-access");
  if (access === "sealed") { stopAll("This visit is sealed: its film can no longer be shown."); return; }
  if (access === "no-consent") { stopAll("The family did not agree to watching this film: it cannot be shown."); return; }

  var live = new Present.Live({
    visit: VISIT,
    after: Number(root.getAttribute("data-event-id")) || 0,
    heartbeatS: HEARTBEAT_S,
    onEvent: onEvent,
    reload: load,
    showConn: function (bad) { $("conn").hidden = !bad; },
  });
  load().then(function () {
    live.connect();
    if (!closed) send("open", null, true); // screens waiting (or on another visit) come here
  });
})();
