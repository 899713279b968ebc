/* The review screen's players: the rough cut, and a whole take, each in a <video> moved
 * about by moments.
 *
 * Plays a moment from its start, steps frame by frame (paused), plays at 1/2 and 1/4
 * speed, loops one moment, plays a stretch and stops at its end, and shows where the
 * video is on a timeline of its moments (tap or drag it). The browser's own controls
 * appear only in full screen: paused, they would cover the still frame a guider stops
 * on to talk about it.
 *
 * ReviewPlayer.create(video, els, hooks). ``els`` are the player's controls (any may be
 * missing): timeline, segments, playhead, clock, where, play, playText, prev, next,
 * back, forward (a second either way), loop, speedCycle, speeds (buttons with
 * data-rate), fullscreen. ``hooks``:
 *   clips()          the moments on the timeline (film_start_s, film_end_s, number,
 *                    tag_ids, tags_film_s: seconds on this video's own clock)
 *   fps()            the video's frame rate
 *   duration()       its length as the kit says (until the video knows)
 *   showTag(id)      whether a tag still stands (its dot on the timeline)
 *   onMoment(i, loop) the moment the video is in, and the one looping (-1: none), changed
 *   onFilm(state)    "loading" | "ready" | "none" | "error"
 *   onFailed()       the video failed to load; resolve when the visit has been fetched again
 *   notify(text)     tell the guider something went wrong
 *   where(i, n)      optional: the readout's words for moment i of n (default "Moment 3 of 5")
 *   clockText(t, d)  optional: the readout's clock (default "0:05.2 / 0:30.0")
 */
"use strict";

window.ReviewPlayer = (function () {
  var RATES = [1, 0.5, 0.25];

  /* 5.26 -> "0:05.2" (tenths, truncated, so a frame step shows). */
  function fine(seconds) {
    var s = Math.max(0, seconds || 0);
    var whole = Math.floor(s);
    return Kit.clock(whole) + "." + Math.floor((s - whole) * 10 + 1e-6);
  }

  /* 5.267 -> "0:05.26" (hundredths, truncated): a trim or a tag to the frame. */
  function precise(seconds) {
    var s = Math.max(0, seconds || 0);
    var whole = Math.floor(s);
    return Kit.clock(whole) + "." + ("0" + Math.floor((s - whole) * 100 + 1e-6)).slice(-2);
  }

  function rateName(r) { return r === 1 ? "1×" : r === 0.5 ? "½×" : "¼×"; }

  function create(video, els, hooks) {
    var current = -1; // the moment (clip index) the video is in, or was last sent to
    var loopIndex = -1; // the moment being looped, or -1
    var stopAt = null; // playing a stretch: pause on its last frame
    var rate = 1;
    var pendingSeek = null; // where to go once the video's metadata is in
    var retries = 0;
    var presented = null; // the media time of the frame on screen (requestVideoFrameCallback)
    var clips = hooks.clips;
    var speeds = els.speeds ? Array.prototype.slice.call(els.speeds) : [];

    function on(el, kind, fn) { if (el) el.addEventListener(kind, fn); }
    function setText(el, text) { if (el) el.textContent = text; }

    function frame() { return 1 / hooks.fps(); }
    function halfFrame() { return 0.5 / hooks.fps(); }

    /* A quarter of a frame into the frame showing at ``t`` (clamped into the video). A
     * still or a moment begins exactly where its frame does, and a time that lands on a
     * frame's edge may show the frame before it (rounding): never that one. */
    function inFrame(t) {
      var f = hooks.fps();
      var at = (Math.floor(Math.max(0, t) * f + 1e-3) + 0.25) / f;
      var end = duration();
      return end ? Math.min(at, Math.max(0, end - halfFrame())) : at;
    }

    function duration() {
      if (isFinite(video.duration) && video.duration > 0) return video.duration;
      return hooks.duration() || 0;
    }

    /* A new video (or none). ``again``: a re-cut of the one showing, so go back to the
     * same moment (by its number), paused. ``at``: where to start, paused. */
    function load(url, again, at) {
      var n = clips().length;
      if (again && n && current >= 0) pendingSeek = clips()[Math.min(current, n - 1)].film_start_s;
      if (at != null) pendingSeek = at;
      if (loopIndex >= n) setLoop(-1);
      retries = 0;
      stopAt = null;
      presented = null;
      if (!url) {
        video.removeAttribute("src");
        video.load();
        hooks.onFilm("none");
        return;
      }
      hooks.onFilm("loading");
      video.src = url;
      video.load();
    }

    function hasFilm() { return !!video.getAttribute("src"); }

    /* ---------- where the video is ---------- */

    /* The moment the video is in at ``t``, or -1 (between moments: a film shows a second
     * of its take before a moment, for the decoder; a take has stretches no one tagged). */
    function clipAt(t) {
      var list = clips();
      for (var i = 0; i < list.length; i++) {
        if (t < list[i].film_end_s - 1e-3) return t >= list[i].film_start_s - 1e-3 ? i : -1;
      }
      return -1;
    }

    /* The start of the frame on screen. Paused, the frame currentTime falls in (a seek
     * shows that frame); playing, the one the compositor last showed, when the browser
     * says (requestVideoFrameCallback), as currentTime runs a little ahead of it. */
    function shownTime() {
      var t = video.currentTime || 0;
      var playing = !video.paused && !video.seeking;
      if (playing && presented != null && t - presented > -1e-3 && t - presented < 2 * frame()) return presented;
      var f = hooks.fps();
      return Math.floor(t * f + 1e-3) / f;
    }

    function watchFrames() {
      if (!video.requestVideoFrameCallback) return;
      video.requestVideoFrameCallback(function (now, meta) {
        presented = meta.mediaTime;
        watchFrames();
      });
    }

    /* The video as a bar of its moments, the tags as dots on it. */
    function renderTimeline() {
      var box = els.segments;
      if (!box) return;
      box.textContent = "";
      var dur = duration();
      els.timeline.setAttribute("aria-valuemax", String(Math.round(dur * 10) / 10));
      if (!dur) return;
      clips().forEach(function (clip, i) {
        var seg = Kit.el("div", "segment" + (i % 2 ? " odd" : "") + (clip.className ? " " + clip.className : ""));
        var len = clip.film_end_s - clip.film_start_s;
        seg.style.left = (100 * clip.film_start_s / dur) + "%";
        seg.style.width = (100 * len / dur) + "%";
        if (clip.number != null) seg.appendChild(Kit.el("span", "segment-num", String(clip.number)));
        clip.tag_ids.forEach(function (id, k) {
          if (!hooks.showTag(id) || clip.tags_film_s[k] == null || !len) return;
          var dot = Kit.el("span", "tag-dot");
          dot.style.left = (100 * (clip.tags_film_s[k] - clip.film_start_s) / len) + "%";
          seg.appendChild(dot);
        });
        box.appendChild(seg);
      });
      marked();
    }

    function marked() {
      if (els.segments) {
        Array.prototype.forEach.call(els.segments.children, function (seg, i) {
          seg.classList.toggle("current", i === current);
        });
      }
      hooks.onMoment(current, loopIndex);
    }

    function update() {
      var t = video.currentTime || 0;
      var dur = duration();
      setText(els.clock, hooks.clockText ? hooks.clockText(t, dur) : fine(t) + " / " + fine(dur));
      if (els.playhead) els.playhead.style.left = (dur ? Math.min(100, 100 * t / dur) : 0) + "%";
      if (els.timeline) {
        els.timeline.setAttribute("aria-valuenow", String(Math.round(t * 10) / 10));
        els.timeline.setAttribute("aria-valuetext", fine(t));
      }
      var i = clips().length && video.readyState >= 1 ? clipAt(t) : current;
      if (i !== current && (i >= 0 || hooks.where)) { current = i; marked(); }
      var n = clips().length;
      var where = hooks.where ? hooks.where(current, n) :
        n && current >= 0 && clips()[current] ? "Moment " + clips()[current].number + " of " + n : "";
      if (rate !== 1) where += (where ? " · " : "") + (rate === 0.5 ? "½ speed" : "¼ speed");
      if (loopIndex >= 0) where += " · looping";
      setText(els.where, where || "\u00a0");
    }

    /* ---------- moving about ---------- */

    function seekTo(t, play) {
      stopAt = null;
      if (video.readyState < 1) {
        pendingSeek = t;
        if (play) video.play().catch(function () { /* it starts once the metadata is in */ });
        return;
      }
      video.currentTime = inFrame(t);
      if (play) startPlaying();
      else video.pause();
    }

    function startPlaying() {
      var c = clips()[loopIndex];
      var t = video.currentTime;
      if (c && (t < c.film_start_s - 0.05 || t >= c.film_end_s - halfFrame())) video.currentTime = inFrame(c.film_start_s);
      var p = video.play();
      if (p && p.catch) {
        p.catch(function (e) {
          if (e && e.name !== "AbortError") hooks.notify("The video would not play: " + (e.message || e.name));
        });
      }
    }

    function togglePlay() {
      stopAt = null;
      if (video.paused || video.ended) startPlaying();
      else video.pause();
    }

    function playMoment(i) {
      var c = clips()[i];
      if (!c) return;
      current = i;
      if (loopIndex >= 0) setLoop(i);
      marked();
      seekTo(c.film_start_s, true);
    }

    /* Play from ``start`` and pause on the last frame before ``end`` (at the speed set). */
    function playRange(start, end) {
      seekTo(start, true);
      stopAt = end;
    }

    /* One frame back or forward, paused: a quarter of a frame into the frame, so
     * rounding never leaves the picture where it was. */
    function step(d) {
      stopAt = null;
      video.pause();
      if (video.readyState < 1) return;
      var f = hooks.fps();
      var n = Math.floor(video.currentTime * f + 1e-4) + d;
      var last = Math.max(0, Math.floor(video.duration * f - 1e-4) - 1);
      video.currentTime = (Math.max(0, Math.min(last, n)) + 0.25) / f;
    }

    /* ``seconds`` on or back, playing on if it was playing. */
    function skip(seconds) {
      if (video.readyState < 1) return;
      var t = Math.max(0, Math.min(duration() - halfFrame(), (video.currentTime || 0) + seconds));
      seekTo(t, !video.paused);
    }

    function setRate(r) {
      rate = r;
      video.defaultPlaybackRate = r; // kept when a new video is loaded
      video.playbackRate = r;
      speeds.forEach(function (b) {
        b.setAttribute("aria-pressed", Number(b.getAttribute("data-rate")) === r ? "true" : "false");
      });
      var cycle = els.speedCycle;
      if (cycle) {
        cycle.textContent = rateName(r);
        cycle.setAttribute("aria-label", "Speed: " + (r === 1 ? "normal" : r === 0.5 ? "half" : "quarter"));
        cycle.classList.toggle("slow", r !== 1);
      }
      update();
    }

    function nextRate() { setRate(RATES[(RATES.indexOf(rate) + 1) % RATES.length]); }

    function setLoop(i) {
      loopIndex = i;
      var b = els.loop;
      if (b) {
        b.setAttribute("aria-pressed", i >= 0 ? "true" : "false");
        b.textContent = i >= 0 ? "Loop " + clips()[i].number : "Loop";
      }
      marked();
      update();
    }

    function toggleLoop() {
      if (loopIndex >= 0) { setLoop(-1); return; }
      var i = current >= 0 ? current : 0;
      var c = clips()[i];
      if (!c) return;
      setLoop(i);
      var t = video.currentTime;
      if (t < c.film_start_s - 0.05 || t >= c.film_end_s - halfFrame()) seekTo(c.film_start_s, !video.paused);
    }

    /* While playing, every animation frame: keep a loop inside its moment, and stop a
     * stretch at its end (a timeupdate comes only every ~250 ms, long enough to show the
     * next moment's first frames). */
    var watching = false;
    function watch() {
      var c = clips()[loopIndex];
      if (stopAt != null && video.currentTime >= stopAt - halfFrame()) {
        video.pause();
        video.currentTime = inFrame(stopAt - frame());
        stopAt = null;
      } else if (c && video.currentTime >= c.film_end_s - halfFrame()) {
        video.currentTime = inFrame(c.film_start_s);
      }
      update();
      if (!video.paused && !video.ended) requestAnimationFrame(watch);
      else watching = false;
    }

    function renderPlay() {
      var playing = !video.paused && !video.ended;
      setText(els.playText, playing ? "Pause" : "Play");
      if (els.play) {
        els.play.setAttribute("aria-label", playing ? "Pause" : "Play");
        els.play.classList.toggle("playing", playing);
      }
    }

    /* ---------- the video's own events ---------- */

    video.addEventListener("loadedmetadata", function () {
      video.playbackRate = rate;
      retries = 0;
      hooks.onFilm("ready");
      if (pendingSeek != null) {
        var t = pendingSeek;
        pendingSeek = null;
        video.currentTime = inFrame(t);
      }
      renderTimeline();
      update();
      watchFrames();
    });
    video.addEventListener("play", function () {
      renderPlay();
      if (!watching) { watching = true; requestAnimationFrame(watch); }
    });
    video.addEventListener("pause", renderPlay);
    video.addEventListener("ended", function () {
      renderPlay();
      if (loopIndex >= 0) playMoment(loopIndex);
    });
    video.addEventListener("timeupdate", update);
    video.addEventListener("seeked", update);
    video.addEventListener("ratechange", function () {
      // The full-screen controls may change the speed too.
      if (video.playbackRate !== rate && RATES.indexOf(video.playbackRate) >= 0) setRate(video.playbackRate);
    });
    video.addEventListener("error", function () {
      if (!hasFilm()) return;
      hooks.onFilm("error");
      // A re-cut may have replaced the file mid-load, or the kit restarted: fetch the
      // visit again, then retry.
      if (retries >= 3) { hooks.notify("The video would not play on this phone."); return; }
      retries += 1;
      var n = retries;
      setTimeout(function () {
        hooks.onFailed().then(function () {
          if (video.error && hasFilm()) { retries = n; video.load(); }
        });
      }, 1000 * n);
    });
    // Long-press menus offer "Save video": not here (see the consent note in web/API.md).
    video.addEventListener("contextmenu", function (e) { e.preventDefault(); });
    video.addEventListener("click", function () {
      if (!video.controls) togglePlay(); // in full screen the browser's controls take taps
    });

    /* ---------- the controls ---------- */

    on(els.play, "click", togglePlay);
    on(els.prev, "click", function () { step(-1); });
    on(els.next, "click", function () { step(1); });
    on(els.back, "click", function () { skip(-1); });
    on(els.forward, "click", function () { skip(1); });
    on(els.loop, "click", toggleLoop);
    on(els.speedCycle, "click", nextRate);
    speeds.forEach(function (b) {
      b.addEventListener("click", function () { setRate(Number(b.getAttribute("data-rate"))); });
    });

    var timeline = els.timeline;
    var dragging = false;
    function seekToX(clientX) {
      var box = timeline.getBoundingClientRect();
      var dur = duration();
      if (!dur || !box.width) return;
      var t = Math.max(0, Math.min(1, (clientX - box.left) / box.width)) * dur;
      stopAt = null;
      if (video.readyState < 1) { pendingSeek = t; return; }
      video.currentTime = inFrame(t);
      update();
    }
    if (timeline) {
      timeline.addEventListener("pointerdown", function (e) {
        dragging = true;
        if (timeline.setPointerCapture) { try { timeline.setPointerCapture(e.pointerId); } catch (err) { /* fine */ } }
        seekToX(e.clientX);
      });
      timeline.addEventListener("pointermove", function (e) { if (dragging) seekToX(e.clientX); });
      ["pointerup", "pointercancel", "lostpointercapture"].forEach(function (k) {
        timeline.addEventListener(k, function () { dragging = false; });
      });
      timeline.addEventListener("keydown", function (e) {
        var d = e.key === "ArrowLeft" ? -1 : e.key === "ArrowRight" ? 1 : 0;
        if (!d) return;
        e.preventDefault();
        seekTo((video.currentTime || 0) + d, !video.paused);
      });
    }

    // Full screen: the video alone, with the browser's controls (download still not offered).
    on(els.fullscreen, "click", function () {
      if (video.requestFullscreen) {
        video.controls = true;
        video.requestFullscreen().catch(function () { video.controls = false; });
      } else if (video.webkitEnterFullscreen) {
        video.webkitEnterFullscreen(); // iPhone: the system's player
      }
    });
    document.addEventListener("fullscreenchange", function () {
      if (!document.fullscreenElement) video.controls = false;
    });
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) video.pause(); // the screen locked: don't play to nobody
    });

    setRate(1);
    return {
      load: load,
      hasFilm: hasFilm,
      render: function () { renderTimeline(); update(); },
      seekTo: seekTo,
      playMoment: playMoment,
      playRange: playRange,
      pause: function () { stopAt = null; video.pause(); },
      current: function () { return current; },
      shownTime: shownTime,
    };
  }

  return { create: create, fine: fine, precise: precise };
})();
