/* The family's screen: the film full screen, the number of the moment showing, its still.
 *
 * It follows the remote's commands (present events: play, pause, rate, moment, next,
 * previous, step, still, open, close) within the stream's latency, and tells the kit
 * where its film is (POST /api/present/<visit>/state) whenever that changes, every 2 s
 * while playing and every 10 s otherwise, so the remote shows it. A moment plays to its
 * last frame and stops there: the guider talks, then plays the next. Taps (or a TV
 * remote's OK, arrows) bring up simple controls for a screen used on its own.
 *
 * Browsers play sound only after a touch on the page: the first tap (the "Tap here to
 * start" button) unlocks it. A command that arrives before any touch plays muted, with
 * "Tap for sound" showing. */
"use strict";

(function () {
  var root = document.getElementById("screen");
  var VISIT = root.getAttribute("data-visit");
  var LOCAL = root.getAttribute("data-local") === "yes";
  var HEARTBEAT_S = Number(root.getAttribute("data-heartbeat-s")) || 15;
  var video = document.getElementById("film");
  var stillImg = document.getElementById("still");
  var $ = function (id) { return document.getElementById(id); };

  var data = { moments: [], film_url: null, duration_s: 0, fps: null };
  var filmBase = null; // the film's URL without ?v=
  var fps = 30;
  var stopAt = null; // playing a moment: pause on its last frame
  var stillShown = false;
  var started = false;
  var shownMoment = -1;
  var reportTimer = null;
  var reportBusy = false;
  var reportAgain = false;
  var lastReport = 0;
  var controlsTimer = null;
  var gone = false; // sealed, erased, or not to be shown: nothing more to do

  function say(text) {
    var m = $("message");
    m.textContent = text || "";
    m.hidden = !text;
  }

  function setFilm(state) { root.setAttribute("data-film", state); }

  /* ---------- where the film is ---------- */

  function duration() {
    if (isFinite(video.duration) && video.duration > 0) return video.duration;
    return data.duration_s || 0;
  }

  /* A quarter of a frame into the frame showing at ``t`` (clamped into the film): a
   * time on a frame's very edge may show the frame before it. */
  function inFrame(t) {
    var at = (Math.floor(Math.max(0, t) * fps + 1e-3) + 0.25) / fps;
    var end = duration();
    return end ? Math.min(at, Math.max(0, end - 0.5 / fps)) : at;
  }

  function momentAt(t) {
    var list = data.moments;
    for (var i = 0; i < list.length; i++) {
      if (t < list[i].film_end_s - 1e-3 || i === list.length - 1) return i;
    }
    return -1;
  }

  function current() { return momentAt(video.currentTime || 0); }

  function showNumber() {
    var i = current();
    var n = data.moments.length;
    var box = $("number");
    if (i < 0 || !n || !filmBase) { box.hidden = true; return; }
    box.hidden = false;
    $("number-n").textContent = String(data.moments[i].number);
    $("number-of").textContent = n > 1 ? " of " + n : "";
    box.setAttribute("aria-label", "Moment " + data.moments[i].number + " of " + n);
    if (i !== shownMoment) {
      shownMoment = i;
      if (stillShown) showStill(true); // the still follows the moment
      report();
    }
  }

  function showRate() {
    var rate = video.playbackRate;
    $("speed").hidden = rate === 1;
    $("speed").textContent = Present.rateName(rate);
  }

  /* ---------- the film ---------- */

  function seek(t) {
    video.currentTime = t;
    showNumber();
  }

  function playNow() {
    var playing = video.play();
    if (playing && playing.catch) {
      playing.catch(function (err) {
        if (err && err.name === "NotAllowedError" && !video.muted) {
          // No touch on this page yet: play muted, and offer the sound.
          video.muted = true;
          $("sound").hidden = false;
          playNow();
        }
      });
    }
  }

  function play(rate) {
    if (!filmBase || !data.moments.length) return;
    if (rate) video.playbackRate = rate;
    showStill(false);
    var i = Math.max(0, current());
    var m = data.moments[i];
    if (video.currentTime >= m.film_end_s - 1.5 / fps) {
      // At a moment's last frame: on to the next one (or this one again, at the end).
      if (i + 1 < data.moments.length) i += 1;
      m = data.moments[i];
      seek(inFrame(m.film_start_s));
    }
    stopAt = m.film_end_s;
    playNow();
    tick();
  }

  function pause() {
    stopAt = null;
    if (!video.paused) video.pause();
    seek(inFrame(video.currentTime)); // on a whole frame: what shows is what is reported
  }

  function rateTo(rate) {
    video.playbackRate = rate;
    showRate();
  }

  function goTo(i) {
    if (!data.moments.length) return;
    i = Math.max(0, Math.min(data.moments.length - 1, i));
    var m = data.moments[i];
    showStill(false);
    seek(inFrame(m.film_start_s));
    if (!video.paused) stopAt = m.film_end_s;
  }

  function step(frames) {
    stopAt = null;
    if (!video.paused) video.pause();
    showStill(false);
    seek(inFrame(inFrame(video.currentTime) + frames / fps));
  }

  function showStill(show) {
    var i = current();
    var url = i >= 0 ? data.moments[i].still_url : null;
    stillShown = !!(show && url);
    if (stillShown) {
      stopAt = null;
      if (!video.paused) video.pause();
      if (stillImg.getAttribute("src") !== url) stillImg.src = url;
    }
    stillImg.hidden = !stillShown;
    root.setAttribute("data-still", stillShown ? "yes" : "no");
    $("c-still").setAttribute("aria-pressed", stillShown ? "true" : "false");
    report();
  }

  /* While playing: stop on a moment's last frame, follow the moment number. */
  var ticking = false;
  function tick() {
    if (ticking) return;
    ticking = true;
    var loop = function () {
      if (video.paused) { ticking = false; return; }
      if (stopAt != null && video.currentTime >= stopAt - 0.5 / fps) {
        var last = stopAt;
        stopAt = null;
        video.pause();
        seek(inFrame(last - 1 / fps));
        ticking = false;
        return;
      }
      showNumber();
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  /* ---------- telling the kit (and so the remote) where the film is ---------- */

  function report() {
    if (gone) return;
    clearTimeout(reportTimer);
    reportTimer = setTimeout(sendReport, 40); // a pause and its seek: one report
  }

  function sendReport() {
    if (reportBusy) { reportAgain = true; return; }
    var i = current();
    var body = {
      time_s: video.currentTime || 0,
      playing: !video.paused,
      rate: video.playbackRate,
      moment: i >= 0 ? data.moments[i].number : 0,
      still: stillShown,
    };
    reportBusy = true;
    lastReport = performance.now();
    Kit.api("POST", "/api/present/" + VISIT + "/state", body).then(function (r) {
      if (r.status === 409 || r.status === 403 || r.status === 404) stop(r.body.error);
    }, function () { /* the next change or the periodic report tries again */ }).then(function () {
      reportBusy = false;
      if (reportAgain) { reportAgain = false; sendReport(); }
    });
  }

  setInterval(function () {
    var every = video.paused ? 10000 : 2000;
    if (!gone && performance.now() - lastReport >= every) sendReport();
  }, 500);

  ["play", "pause", "seeked", "ratechange"].forEach(function (kind) {
    video.addEventListener(kind, function () {
      root.setAttribute("data-playing", video.paused ? "no" : "yes");
      $("c-play").setAttribute("aria-label", video.paused ? "Play" : "Pause");
      showRate();
      showNumber();
      report();
    });
  });
  video.addEventListener("loadedmetadata", function () { setFilm("ready"); say(""); showNumber(); report(); });
  video.addEventListener("error", function () {
    if (!filmBase) return;
    setFilm("error");
    say("The film could not be loaded. Trying again…");
    setTimeout(function () { load(true); }, 3000);
  });

  /* ---------- the data ---------- */

  function stop(why) {
    gone = true;
    stopAt = null;
    filmBase = null;
    video.removeAttribute("src");
    video.load();
    showStill(false);
    $("number").hidden = true;
    setFilm("none");
    say(why || "This film cannot be shown here.");
  }

  function base(url) { return url ? url.split("?")[0] : null; }

  /* The presentation data: moments, the film, the stills. ``again``: a new cut of the
   * film showing, so go back to the same moment (by number), paused. */
  function load(again) {
    return Kit.api("GET", "/api/present/" + VISIT).then(function (r) {
      if (!r.ok) {
        if (r.status === 409) stop("This visit is sealed: its film can no longer be shown here.");
        else if (r.status === 403) stop("The family did not agree to watching this film.");
        else if (r.status === 404) stop("There is no such visit on this kit.");
        else say("The kit refused (" + r.status + "). Trying again…");
        return;
      }
      var was = current() >= 0 && data.moments.length ? data.moments[current()].number : null;
      data = r.body;
      fps = data.fps || 30;
      if (!data.film_url || !data.moments.length) {
        filmBase = null;
        video.removeAttribute("src");
        video.load();
        setFilm("none");
        say("The film is being made…");
        $("number").hidden = true;
        return;
      }
      if (base(data.film_url) !== filmBase || again === true) {
        filmBase = base(data.film_url);
        setFilm("loading");
        say("Loading the film…");
        var at = null;
        if (was != null) {
          for (var k = 0; k < data.moments.length; k++) if (data.moments[k].number === was) at = data.moments[k].film_start_s;
        }
        video.src = data.film_url;
        video.load();
        if (at != null) video.addEventListener("loadedmetadata", function () { seek(inFrame(at)); }, { once: true });
      }
      if (stillShown) showStill(true); // a new bubble on the still showing
      showNumber();
    }, function () {
      say("Cannot reach the kit. Is this screen on the kit's Wi-Fi?");
    });
  }

  /* ---------- commands ---------- */

  function begin() {
    if (started) return;
    started = true;
    root.setAttribute("data-started", "yes");
    $("start").hidden = true;
  }

  function obey(cmd) {
    begin();
    switch (cmd.action) {
      case "play": play(cmd.rate); break;
      case "pause": pause(); break;
      case "rate": rateTo(cmd.rate); break;
      case "moment":
        for (var i = 0; i < data.moments.length; i++) if (data.moments[i].number === cmd.moment) goTo(i);
        break;
      case "next": goTo(current() + 1); break;
      case "previous": goTo(current() - 1); break;
      case "step": step(cmd.frames); break;
      case "still": showStill(!!cmd.still); break;
      case "open": report(); break;
      case "close": leave(); break;
      default: break;
    }
  }

  function leave() {
    gone = true;
    video.pause();
    video.removeAttribute("src");
    video.load();
    location.replace("/present");
  }

  function onEvent(kind, d) {
    if (kind === "present") {
      if (d.visit_id !== VISIT) {
        if (d.action === "open") location.replace("/present/" + encodeURIComponent(d.visit_id) + (LOCAL ? "?local=1" : ""));
        return;
      }
      if (gone) return;
      if (d.action === "stills") { load(); return; }
      if (d.action === "state") return; // another screen's report
      obey(d);
    } else if (kind === "cut") {
      if (d.ok && !gone) load(true);
    } else if (kind === "visit") {
      if (d.action === "sealed") stop("This visit is sealed: its film can no longer be shown here.");
      else if (d.action === "erased") stop("This visit has been erased.");
    } else if (kind === "resync") {
      if (!gone) load();
    }
  }

  /* ---------- a screen used on its own: taps and keys ---------- */

  function showControls() {
    var bar = $("controls");
    bar.hidden = false;
    root.setAttribute("data-controls", "yes");
    clearTimeout(controlsTimer);
    controlsTimer = setTimeout(function () {
      bar.hidden = true;
      root.setAttribute("data-controls", "no");
    }, 4000);
  }

  function local(action) {
    begin();
    showControls();
    if (action === "toggle") { if (video.paused) play(); else pause(); }
    else if (action === "next") goTo(current() + 1);
    else if (action === "previous") goTo(current() - 1);
    else if (action === "still") showStill(!stillShown);
    else if (action === "back") step(-1);
    else if (action === "forward") step(1);
  }

  $("start").addEventListener("click", function () {
    begin();
    if (video.muted) { video.muted = false; $("sound").hidden = true; }
    var el = document.documentElement;
    if (el.requestFullscreen && !document.fullscreenElement) {
      el.requestFullscreen().catch(function () { /* not here (e.g. an iPhone): fine */ });
    }
    if (LOCAL) showControls();
  });
  $("sound").addEventListener("click", function (e) {
    e.stopPropagation();
    video.muted = false;
    $("sound").hidden = true;
  });
  $("c-play").addEventListener("click", function () { local("toggle"); });
  $("c-next").addEventListener("click", function () { local("next"); });
  $("c-prev").addEventListener("click", function () { local("previous"); });
  $("c-still").addEventListener("click", function () { local("still"); });
  $("c-back").addEventListener("click", function () { local("back"); });
  $("c-fwd").addEventListener("click", function () { local("forward"); });
  root.addEventListener("click", function (e) {
    if (e.target === video || e.target === stillImg || e.target === root) {
      begin();
      if (video.muted && started) { video.muted = false; $("sound").hidden = true; }
      showControls();
    }
  });
  document.addEventListener("keydown", function (e) {
    var keys = {
      " ": "toggle", Enter: "toggle", MediaPlayPause: "toggle",
      ArrowRight: "next", MediaTrackNext: "next", ArrowLeft: "previous", MediaTrackPrevious: "previous",
      ArrowDown: "still", s: "still", ",": "back", ".": "forward",
    };
    var action = keys[e.key];
    if (!action) return;
    if (e.target && e.target.tagName === "BUTTON" && (e.key === "Enter" || e.key === " ")) return; // its own click
    e.preventDefault();
    local(action);
  });
  // No long-press menu on the film or the stills: no "save" on offer.
  root.addEventListener("contextmenu", function (e) { e.preventDefault(); });

  if ("mediaSession" in navigator) {
    try {
      // What a phone's lock screen or notification shows: not the film's own title.
      navigator.mediaSession.metadata = new MediaMetadata({ title: "Film", artist: "" });
    } catch (e) { /* not in this browser */ }
  }

  /* ---------- start ---------- */

  var access = root.getAttribute("data-access");
  if (access === "sealed") { stop("This visit is sealed: its film can no longer be shown here."); return; }
  if (access === "no-consent") { stop("The family did not agree to watching this film."); return; }
  if (LOCAL) $("start").querySelector(".sub").textContent = "(tap the film for its controls)";

  var live = new Present.Live({
    visit: VISIT,
    after: Number(root.getAttribute("data-event-id")) || 0,
    heartbeatS: HEARTBEAT_S,
    onEvent: onEvent,
    reload: function () { return gone ? Promise.resolve() : load(); },
    showConn: function (bad) { $("conn").hidden = !bad; },
  });
  load().then(function () { live.connect(); });
})();
