/* The review page's whole-take view: one take of the visit, in full, over the page.
 *
 * Scrub its timeline (the take's moments on it), play at 1, 1/2 or 1/4 speed, step a
 * frame or a second; then either trim one of its moments or tag the frame on screen
 * after the fact. Trimming works on the take, not on the film: a moment can grow past
 * what the film holds. Each end moves by half a second or a frame (the video shows the
 * frame it lands on), or becomes the frame on screen, playing or paused: a start is
 * that frame's own time, an end the time of the frame after the last one kept, which
 * is how the kit cuts (kit/cutting/render.py). The phone's Back closes the view.
 *
 * ReviewTake.create(hooks), hooks:
 *   visit            the visit's id (the take's film is /media/<visit>/takes/<take>.mp4)
 *   take(id)         a take of the visit (as the API gives it)
 *   moments()        every planned moment of the visit
 *   liveTag(id)      a tag that stands (with ``take_s``), or null
 *   labels()         the labels to tag with
 *   fps()            the frame rate the kit says (null: worked out from the take)
 *   onOpen()         the view opened (pause the film)
 *   onTrim(m, body)  save a trim: body {start_s, end_s} (null: as tagged)
 *   onTag(take_id, take_s, label)  tag the frame at take_s
 *   onFailed()       the take did not load; resolve when the visit was fetched again
 *   notify(text)     tell the guider something went wrong
 */
"use strict";

window.ReviewTake = (function () {
  var $ = function (id) { return document.getElementById(id); };
  var MIN_MOMENT_S = 0.5; // the kit refuses a shorter moment
  var precise = ReviewPlayer.precise;

  /* A take that has pictures to show. */
  function viewable(t) {
    return !!t && t.state !== "discarded" && t.first_frame_ns != null && t.duration_s > 0;
  }

  /* The number of the frame showing at ``t`` seconds into a take, counting each frame
   * from 1 ms before it starts as the kit does (kit/cutting/render.py): a time on the
   * frame grid, rounded on the way, still names its frame. */
  function frameOf(t, fps) { return Math.floor((t + 0.001) * fps); }

  /* What to send for a moment starting at ``start`` and ending at ``end`` (seconds into
   * its take): an end on the frame where it was tagged is sent as null (as tagged), so it
   * follows the tag if the tag moves. */
  function trimBody(m, start, end, fps) {
    return {
      start_s: frameOf(start, fps) === frameOf(m.default_start_s, fps) ? null : start,
      end_s: frameOf(end, fps) === frameOf(m.default_end_s, fps) ? null : end,
    };
  }

  function create(hooks) {
    var view = $("take-view");
    var state = {
      open: false, id: null, task: "tag", momentId: null,
      start: 0, end: 0, which: "start", label: null,
      pushed: false, // a history entry of its own, so the phone's Back closes the view
    };

    function take() { return hooks.take(state.id); }
    function moment() {
      return hooks.moments().filter(function (m) { return m.moment_id === state.momentId; })[0] || null;
    }
    function fps() {
      if (hooks.fps()) return hooks.fps();
      var t = take();
      return t && t.video_frames && t.duration_s ? Math.round(t.video_frames / t.duration_s) : 30;
    }
    function frameS() { return 1 / fps(); }
    function duration() { var t = take(); return t ? t.duration_s : 0; }
    /* The start of the frame showing at ``t``. */
    function frameAt(t) { return frameOf(t, fps()) / fps(); }

    /* The take's moments on its own clock: its timeline's segments. */
    function clips() {
      return hooks.moments().filter(function (m) { return m.take_id === state.id; })
        .sort(function (a, b) { return a.take_start_s - b.take_start_s; })
        .map(function (m) {
          var ids = m.tag_ids.filter(function (id) { var t = hooks.liveTag(id); return t && t.take_s != null; });
          return {
            number: m.dropped ? null : m.number, film_start_s: m.take_start_s, film_end_s: m.take_end_s,
            tag_ids: ids, tags_film_s: ids.map(function (id) { return hooks.liveTag(id).take_s; }),
            className: (m.dropped ? "dropped" : "") + (m.moment_id === state.momentId ? " editing" : ""),
          };
        });
    }

    var player = ReviewPlayer.create($("take-video"), {
      timeline: $("take-timeline"), segments: $("take-segments"), playhead: $("take-playhead"),
      clock: $("take-clock"), where: $("take-where"), play: $("take-play"), prev: $("take-prev"),
      next: $("take-next"), back: $("take-back"), forward: $("take-forward"), speedCycle: $("take-speed"),
    }, {
      clips: clips,
      fps: fps,
      duration: duration,
      showTag: function (id) { return !!hooks.liveTag(id); },
      onMoment: function () { /* the readout says it */ },
      onFilm: function (film) {
        view.setAttribute("data-film", film);
        var empty = $("take-empty");
        empty.hidden = film === "ready";
        empty.textContent = film === "error" ? "The take did not load. Trying again…" :
          film === "none" ? "" : "Loading the take…";
      },
      onFailed: hooks.onFailed,
      notify: hooks.notify,
      where: function (i) {
        var c = clips()[i];
        return c ? (c.number == null ? "in a moment left out" : "in moment " + c.number) : "";
      },
      clockText: function (t) { return precise(t); },
    });

    function open(takeId, momentId) {
      if (!viewable(hooks.take(takeId))) return;
      state.id = takeId;
      state.momentId = momentId || null;
      var m = moment();
      state.momentId = m ? m.moment_id : null;
      state.task = m ? "trim" : "tag";
      if (m) {
        // Its first frame, and the frame after its last: what the film shows of it.
        state.start = frameAt(m.take_start_s);
        state.end = frameAt(m.take_end_s);
        state.which = "start";
      }
      state.open = true;
      say("");
      view.setAttribute("data-task", state.task);
      $("trim-panel").hidden = !m;
      $("tag-panel").hidden = !!m;
      $("trim-range").hidden = !m;
      view.hidden = false;
      document.body.classList.add("take-open");
      hooks.onOpen();
      if (!state.pushed) { history.pushState({ take: true }, ""); state.pushed = true; }
      player.load("/media/" + encodeURIComponent(hooks.visit) + "/takes/" + encodeURIComponent(takeId) + ".mp4",
        false, m ? m.take_start_s : 0);
      render();
      $("take-close").focus();
    }

    function hide() {
      state.pushed = false;
      if (!state.open) return;
      state.open = false;
      player.load(null, false);
      view.hidden = true;
      document.body.classList.remove("take-open");
    }

    /* Close the view (the phone's Back does the same). */
    function close() {
      if (state.pushed) history.back(); // then popstate hides it
      else hide();
    }

    /* Show the visit as it is now (after a reload of it). */
    function render() {
      if (!state.open) return;
      var t = take();
      if (!viewable(t)) { close(); return; }
      $("take-title").textContent = state.task === "trim" ? "Trim moment" : "Take " + t.seq;
      $("take-sub").textContent = "the whole take · " + Kit.clock(t.duration_s);
      if (state.task === "trim") renderTrim();
      else renderTagPanel();
      player.render();
    }

    /* ---------- trim ---------- */

    function renderTrim() {
      var m = moment();
      if (!m) { close(); return; }
      $("take-title").textContent = "Trim moment " + (m.number == null ? "" : m.number);
      $("trim-start-at").textContent = precise(state.start);
      $("trim-end-at").textContent = precise(state.end);
      ["start", "end"].forEach(function (which) {
        $("trim-" + which).setAttribute("aria-checked", state.which === which ? "true" : "false");
      });
      $("trim-here").textContent = state.which === "start" ? "Start here" : "End here";
      var dur = duration();
      if (dur) {
        var range = $("trim-range");
        range.style.left = (100 * state.start / dur) + "%";
        range.style.width = (100 * (state.end - state.start) / dur) + "%";
      }
      var body = trimBody(m, state.start, state.end, fps());
      var f = fps();
      var changed = frameOf(state.start, f) !== frameOf(m.take_start_s, f) ||
        frameOf(state.end, f) !== frameOf(m.take_end_s, f);
      var asTagged = body.start_s == null && body.end_s == null;
      $("take-sub").textContent = "take " + take().seq + " · " + (state.end - state.start).toFixed(2) + " s" +
        (asTagged ? " · as tagged" : " · tagged " + precise(m.default_start_s) + " – " + precise(m.default_end_s));
      $("trim-save").disabled = !changed;
      $("trim-reset").disabled = asTagged;
    }

    /* Show the frame an end stands for: the first frame, or the last one. */
    function showEnd() {
      player.seekTo(state.which === "start" ? state.start : state.end - frameS(), false);
    }

    /* Move one end to ``t``; an end pushed past the other takes the other along (the
     * moment keeps its length), all inside the take. */
    function setEnd(t) {
      var dur = duration();
      var len = state.end - state.start;
      t = frameAt(Math.max(0, Math.min(dur, t)));
      if (state.which === "start") {
        state.start = Math.min(t, frameAt(dur - MIN_MOMENT_S));
        if (state.end - state.start < MIN_MOMENT_S) state.end = frameAt(Math.min(dur, state.start + len));
      } else {
        state.end = Math.max(t, frameAt(MIN_MOMENT_S));
        if (state.end - state.start < MIN_MOMENT_S) state.start = frameAt(Math.max(0, state.end - len));
      }
      renderTrim();
    }

    function move(seconds, frames) {
      setEnd((state.which === "start" ? state.start : state.end) + seconds + frames * frameS());
      showEnd();
    }

    /* The frame on screen (playing or paused) becomes the first frame, or the last. */
    function here() {
      var shown = player.shownTime();
      setEnd(state.which === "start" ? shown : shown + frameS());
    }

    function save() {
      var m = moment();
      var body = m && trimBody(m, state.start, state.end, fps());
      close();
      if (m) hooks.onTrim(m, body);
    }

    /* ---------- tag a frame ---------- */

    function renderTagPanel() {
      var select = $("tag-label");
      var labels = hooks.labels().slice();
      if (state.label == null || labels.indexOf(state.label) < 0) state.label = labels[labels.length - 1] || null;
      var same = select.options.length === labels.length &&
        labels.every(function (l, i) { return select.options[i].value === l; });
      if (!same) {
        select.textContent = "";
        labels.forEach(function (l) {
          var o = Kit.el("option", "", l);
          o.value = l;
          select.appendChild(o);
        });
      }
      if (state.label != null) select.value = state.label;
      $("tag-here").disabled = !labels.length;
    }

    function tagHere() {
      var label = $("tag-label").value;
      if (!label) return;
      state.label = label;
      // A quarter of a frame into the frame on screen: the tag is that frame, whatever the
      // rounding on the way.
      var at = player.shownTime() + 0.25 * frameS();
      Kit.vibrate(30);
      hooks.onTag(state.id, Math.round(at * 1e6) / 1e6, label);
    }

    /* ---------- wiring ---------- */

    $("take-close").addEventListener("click", close);
    window.addEventListener("popstate", hide);
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && state.open) close(); });
    Array.prototype.forEach.call(view.querySelectorAll(".trim-end"), function (b) {
      b.addEventListener("click", function () {
        state.which = b.getAttribute("data-end");
        renderTrim();
        showEnd();
      });
    });
    Array.prototype.forEach.call(view.querySelectorAll(".trim-move"), function (b) {
      b.addEventListener("click", function () {
        move(Number(b.getAttribute("data-move") || 0), Number(b.getAttribute("data-frames") || 0));
      });
    });
    $("trim-here").addEventListener("click", here);
    $("trim-play").addEventListener("click", function () { player.playRange(state.start, state.end); });
    $("trim-reset").addEventListener("click", function () {
      var m = moment();
      if (!m) return;
      state.start = frameAt(m.default_start_s);
      state.end = frameAt(m.default_end_s);
      renderTrim();
      showEnd();
    });
    $("trim-save").addEventListener("click", save);
    $("tag-label").addEventListener("change", function () { state.label = $("tag-label").value; });
    $("tag-here").addEventListener("click", tagHere);

    /* Say how a tag made here fared, in the view (the page's toast is under it). */
    function say(text, kind) {
      var line = $("tag-status");
      line.textContent = text;
      line.className = "tag-status" + (kind ? " " + kind : "");
    }

    return { open: open, close: close, render: render, say: say };
  }

  return { create: create, viewable: viewable, trimBody: trimBody };
})();
