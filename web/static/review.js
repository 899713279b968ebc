/* Review: the visit's rough cut, its moments and stills, for showing a parent their best
 * moments on the phone; and the guider's edits (relabel, move, delete with Undo), after
 * which the kit makes the film again and the page reloads it.
 *
 * The film is served inline from /media/ (no download: see web/API.md). Moments are the
 * cut manifest's clips; a tag's label comes from the live tags, so an edit shows at once
 * while the new film is being made.
 */
"use strict";

(function () {
  var $ = function (id) { return document.getElementById(id); };
  var root = $("review");
  var SESSION = root.getAttribute("data-session");
  var UNDO_S = Number(root.getAttribute("data-undo-s")) || 10;
  var HEARTBEAT_S = Number(root.getAttribute("data-heartbeat-s")) || 15;
  var video = $("film");
  var toast = new Kit.Toast($("toast"));

  var model = {
    eventId: 0, session: null, takes: new Map(), tags: new Map(),
    cut: null, cutError: "", labels: [], status: null,
  };
  var hiddenIds = new Set(); // deleted here, before the kit confirmed it
  var current = -1; // the moment (clip index) the film is in, or was last sent to
  var loopIndex = -1; // the moment being looped, or -1
  var rate = 1;
  var pendingSeek = null; // where to go once the film's metadata is in
  var awaitingCut = false; // an edit was sent: a new film is on its way
  var filmRetries = 0;

  function clips() { return (model.cut && model.cut.clips) || []; }
  function fps() { return (model.cut && model.cut.fps) || 30; }

  /* 5.26 -> "0:05.2" (tenths, truncated, so a frame step shows). */
  function fine(seconds) {
    var s = Math.max(0, seconds || 0);
    var whole = Math.floor(s);
    return Kit.clock(whole) + "." + Math.floor((s - whole) * 10 + 1e-6);
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  /* ---------- loading ---------- */

  var loading = null;
  var loadAgain = false;
  function load() {
    if (loading) { loadAgain = true; return loading; }
    loading = Kit.api("GET", "/api/sessions/" + encodeURIComponent(SESSION)).then(function (r) {
      showConn(false);
      if (r.status === 404) { showError("This visit is no longer on the kit."); return; }
      if (!r.ok) { showError(r.body.error || "The kit could not load this visit (" + r.status + ")"); return; }
      apply(r.body);
    }, function () { showConn(true); }).then(function () {
      loading = null;
      if (loadAgain) { loadAgain = false; load(); }
    });
    return loading;
  }

  function apply(body) {
    model.eventId = body.event_id;
    model.session = body.session;
    model.takes = new Map();
    body.takes.forEach(function (t) { model.takes.set(t.id, t); });
    model.tags = new Map();
    body.tags.forEach(function (t) { model.tags.set(t.id, t); });
    model.labels = body.labels;
    model.cutError = body.cut_error || "";
    var before = model.cut;
    model.cut = body.cut;
    applyStatus(body.status);
    var oldUrl = before ? before.film_url : null;
    var newUrl = model.cut ? model.cut.film_url : null;
    if (newUrl !== oldUrl || !video.getAttribute("src")) loadFilm(before != null);
    root.setAttribute("data-cut-version", model.cut ? model.cut.version : "");
    render();
  }

  function loadFilm(again) {
    var url = model.cut ? model.cut.film_url : null;
    var n = clips().length;
    if (again && n && current >= 0) {
      // A new cut: go back to the same moment (its number), paused.
      pendingSeek = clips()[Math.min(current, n - 1)].film_start_s;
    }
    if (loopIndex >= n) setLoop(-1);
    filmRetries = 0;
    if (!url) {
      video.removeAttribute("src");
      video.load();
      root.setAttribute("data-film", "none");
      renderEmpty();
      return;
    }
    root.setAttribute("data-film", "loading");
    $("film-empty").textContent = "Loading the film…";
    $("film-empty").hidden = false;
    video.src = url;
    video.load();
  }

  function renderEmpty() {
    var empty = $("film-empty");
    empty.hidden = false;
    if (awaitingCut || making()) empty.textContent = "Making the film…";
    else if (model.cut && !clips().length) empty.textContent = "No moments were tagged in this visit.";
    else if (model.cutError) empty.textContent = "The film cannot be read.";
    else empty.textContent = "No film yet.";
  }

  /* ---------- status: the progress of a cut ---------- */

  function making() { return !!(model.status && model.status.state === "cutting"); }

  function applyStatus(status) {
    model.status = status;
    var cutting = making();
    var box = $("making");
    box.hidden = !(cutting || awaitingCut);
    var p = cutting && status.cut_progress != null ? status.cut_progress : null;
    $("making-text").textContent = (model.cut ? "Making the film again" : "Making the film") +
      (p == null ? "…" : "… " + Math.round(p * 100) + "%");
    $("making-fill").style.transform = "scaleX(" + (p == null ? 0 : Math.max(0, Math.min(1, p))).toFixed(3) + ")";
    $("making-bar").setAttribute("aria-valuenow", p == null ? "0" : String(Math.round(p * 100)));
    $("recut").disabled = cutting || awaitingCut;
    root.setAttribute("data-making", cutting || awaitingCut ? "yes" : "no");
    if (!video.getAttribute("src")) renderEmpty();
  }

  /* ---------- rendering ---------- */

  function render() {
    $("review-title").textContent = "Visit " + (model.session ? model.session.number : "");
    var wall = model.session && model.session.wall_time;
    var d = wall ? new Date(wall) : null;
    $("review-date").textContent = d && !isNaN(d) ?
      d.toLocaleDateString([], { day: "numeric", month: "short" }) + ", " +
      d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
    var error = model.cutError;
    $("error").hidden = !error;
    if (error) $("error").textContent = "The film cannot be read: " + error;
    renderMoments();
    renderTimeline();
    renderStills();
    renderWaiting();
    updatePosition();
  }

  function liveTag(id) {
    return hiddenIds.has(id) ? null : model.tags.get(id) || null;
  }

  function takeNote(tag) {
    var take = model.takes.get(tag.take_id);
    var where = model.takes.size > 1 && take ? "take " + take.seq + " · " : "";
    return where + "tagged by " + tag.author;
  }

  /* A tag under its moment: a chip that shows the tagged instant (paused), and Edit.
   * The label and note are the moment's own when it has only this tag. */
  function tagRow(tag, filmS, alone) {
    var row = Kit.el("li", "mtag");
    row.setAttribute("data-id", tag.id);
    if (filmS != null) {
      var jump = Kit.el("button", "btn small jump", fine(filmS));
      jump.type = "button";
      jump.setAttribute("data-t", String(filmS));
      jump.setAttribute("aria-label", "Show the tagged instant, " + tag.label);
      row.appendChild(jump);
    }
    var what = Kit.el("span", "what");
    if (!alone) {
      what.appendChild(Kit.el("span", "lbl", tag.label));
      if (tag.note) what.appendChild(Kit.el("span", "note", tag.note));
    }
    what.appendChild(Kit.el("span", "by", takeNote(tag)));
    row.appendChild(what);
    var edit = Kit.el("button", "btn small edit", "Edit");
    edit.type = "button";
    edit.setAttribute("aria-label", "Change or delete the tag " + tag.label);
    row.appendChild(edit);
    return row;
  }

  function renderMoments() {
    var ol = $("moments");
    ol.textContent = "";
    var list = clips();
    $("moments-title").textContent = list.length ? plural(list.length, "moment", "moments") : "Moments";
    list.forEach(function (clip, i) {
      var li = Kit.el("li", "moment");
      li.setAttribute("data-index", String(i));
      var tags = [];
      clip.tag_ids.forEach(function (id, k) {
        var t = liveTag(id);
        if (t) tags.push({ tag: t, filmS: clip.tags_film_s[k] });
      });
      var labels = [];
      var notes = [];
      tags.forEach(function (x) {
        if (labels.indexOf(x.tag.label) < 0) labels.push(x.tag.label);
        if (x.tag.note && notes.indexOf(x.tag.note) < 0) notes.push(x.tag.note);
      });
      if (!tags.length) { labels = clip.labels.slice(); notes = clip.notes.slice(); li.className += " gone"; }
      var head = Kit.el("button", "moment-head");
      head.type = "button";
      head.setAttribute("data-index", String(i));
      head.appendChild(Kit.el("span", "num", String(clip.number)));
      var what = Kit.el("span", "what");
      what.appendChild(Kit.el("span", "lbl", labels.join(" + ")));
      if (notes.length) what.appendChild(Kit.el("span", "note", notes.join(" · ")));
      head.appendChild(what);
      var dur = clip.film_end_s - clip.film_start_s;
      var t = Kit.el("span", "t");
      t.appendChild(Kit.el("span", "play-mark", "▶"));
      t.appendChild(Kit.el("span", "", Math.round(dur) + " s"));
      head.appendChild(t);
      head.setAttribute("aria-label", "Play moment " + clip.number + ": " + labels.join(", ") +
        " (" + Math.round(dur) + " seconds)");
      li.appendChild(head);
      var ul = Kit.el("ul", "moment-tags");
      tags.forEach(function (x) { ul.appendChild(tagRow(x.tag, x.filmS, tags.length === 1)); });
      li.appendChild(ul);
      ol.appendChild(li);
    });
    markCurrent();
  }

  function renderStills() {
    var box = $("stills");
    box.textContent = "";
    var stills = (model.cut && model.cut.stills) || [];
    var shown = 0;
    stills.forEach(function (s) {
      if (!s.url || hiddenIds.has(s.tag_id)) return;
      var tag = model.tags.get(s.tag_id);
      var label = tag ? tag.label : s.label;
      var b = Kit.el("button", "still");
      b.type = "button";
      if (s.film_s != null) b.setAttribute("data-t", String(s.film_s));
      else b.disabled = true;
      b.setAttribute("aria-label", "Still " + s.number + ": " + label);
      var img = Kit.el("img");
      img.src = s.url;
      img.alt = "";
      img.draggable = false;
      img.decoding = "async";
      b.appendChild(img);
      b.appendChild(Kit.el("span", "cap", s.number + " · " + label));
      box.appendChild(b);
      shown += 1;
    });
    $("stills-section").hidden = !shown;
  }

  function renderWaiting() {
    var inFilm = new Set();
    clips().forEach(function (c) { c.tag_ids.forEach(function (id) { inFilm.add(id); }); });
    var ol = $("waiting");
    ol.textContent = "";
    var n = 0;
    model.tags.forEach(function (tag) {
      if (inFilm.has(tag.id) || hiddenIds.has(tag.id)) return;
      var li = Kit.el("li", "moment");
      var ul = Kit.el("ul", "moment-tags");
      ul.appendChild(tagRow(tag, null, false));
      li.appendChild(ul);
      ol.appendChild(li);
      n += 1;
    });
    $("waiting-section").hidden = !n;
  }

  /* ---------- where the film is ---------- */

  function clipAt(t) {
    var list = clips();
    for (var i = 0; i < list.length; i++) {
      if (t < list[i].film_end_s - 1e-3 || i === list.length - 1) return t >= list[i].film_start_s - 1e-3 ? i : -1;
    }
    return -1;
  }

  /* The film as a bar of its moments (tap or drag to go anywhere), the tags as dots. */
  function renderTimeline() {
    var box = $("segments");
    box.textContent = "";
    var dur = filmDuration();
    $("timeline").setAttribute("aria-valuemax", String(Math.round(dur * 10) / 10));
    if (!dur) return;
    clips().forEach(function (clip, i) {
      var seg = Kit.el("div", "segment" + (i % 2 ? " odd" : ""));
      seg.style.left = (100 * clip.film_start_s / dur) + "%";
      seg.style.width = (100 * (clip.film_end_s - clip.film_start_s) / dur) + "%";
      seg.appendChild(Kit.el("span", "segment-num", String(clip.number)));
      clip.tag_ids.forEach(function (id, k) {
        if (!liveTag(id)) return;
        var dot = Kit.el("span", "tag-dot");
        dot.style.left = (100 * (clip.tags_film_s[k] - clip.film_start_s) / (clip.film_end_s - clip.film_start_s)) + "%";
        seg.appendChild(dot);
      });
      box.appendChild(seg);
    });
    markCurrent();
  }

  function filmDuration() {
    if (isFinite(video.duration) && video.duration > 0) return video.duration;
    return model.cut ? model.cut.duration_s || 0 : 0;
  }

  function markCurrent() {
    Array.prototype.forEach.call($("segments").children, function (seg, i) {
      seg.classList.toggle("current", i === current);
    });
    Array.prototype.forEach.call($("moments").children, function (li, i) {
      li.classList.toggle("current", i === current);
      li.classList.toggle("looping", i === loopIndex);
    });
  }

  function updatePosition() {
    var t = video.currentTime || 0;
    var dur = filmDuration();
    $("clock").textContent = fine(t) + " / " + fine(dur);
    $("playhead").style.left = (dur ? Math.min(100, 100 * t / dur) : 0) + "%";
    $("timeline").setAttribute("aria-valuenow", String(Math.round(t * 10) / 10));
    $("timeline").setAttribute("aria-valuetext", fine(t));
    var i = clips().length && video.readyState >= 1 ? clipAt(t) : current;
    if (i !== current && i >= 0) { current = i; markCurrent(); }
    var n = clips().length;
    var where = n && current >= 0 ? "Moment " + clips()[current].number + " of " + n : "";
    if (rate !== 1) where += (where ? " · " : "") + (rate === 0.5 ? "½ speed" : "¼ speed");
    if (loopIndex >= 0) where += " · looping";
    $("where").textContent = where || "\u00a0";
  }

  /* ---------- playing ---------- */

  function seekTo(t, play) {
    if (video.readyState < 1) {
      pendingSeek = t;
      if (play) video.play().catch(function () { /* started after the metadata */ });
      return;
    }
    video.currentTime = Math.max(0, Math.min(t, (video.duration || t) - 0.5 / fps()));
    if (play) startPlaying();
    else video.pause();
  }

  function startPlaying() {
    if (loopIndex >= 0) {
      var c = clips()[loopIndex];
      var t = video.currentTime;
      if (c && (t < c.film_start_s - 0.05 || t >= c.film_end_s - 0.5 / fps())) video.currentTime = c.film_start_s;
    }
    var p = video.play();
    if (p && p.catch) {
      p.catch(function (e) {
        if (e && e.name !== "AbortError") notify("The film would not play: " + (e.message || e.name), 5, null, "bad");
      });
    }
  }

  function playMoment(i) {
    var c = clips()[i];
    if (!c) return;
    current = i;
    if (loopIndex >= 0) setLoop(i);
    markCurrent();
    seekTo(c.film_start_s, true);
  }

  /* One frame back or forward, paused: a quarter of a frame into the frame, so
   * rounding never leaves the picture where it was. */
  function step(d) {
    video.pause();
    if (video.readyState < 1) return;
    var f = fps();
    var n = Math.floor(video.currentTime * f + 1e-4) + d;
    var last = Math.max(0, Math.floor(video.duration * f - 1e-4) - 1);
    n = Math.max(0, Math.min(last, n));
    video.currentTime = (n + 0.25) / f;
  }

  function setRate(r) {
    rate = r;
    video.defaultPlaybackRate = r; // kept when a new film is loaded
    video.playbackRate = r;
    Array.prototype.forEach.call(document.querySelectorAll(".speed"), function (b) {
      b.setAttribute("aria-pressed", Number(b.getAttribute("data-rate")) === r ? "true" : "false");
    });
    var cycle = $("speed-cycle");
    cycle.textContent = r === 1 ? "1×" : r === 0.5 ? "½×" : "¼×";
    cycle.setAttribute("aria-label", "Speed: " + (r === 1 ? "normal" : r === 0.5 ? "half" : "quarter"));
    cycle.classList.toggle("slow", r !== 1);
    updatePosition();
  }

  function setLoop(i) {
    loopIndex = i;
    var b = $("loop");
    b.setAttribute("aria-pressed", i >= 0 ? "true" : "false");
    b.textContent = i >= 0 ? "Loop " + clips()[i].number : "Loop";
    markCurrent();
    updatePosition();
  }

  function toggleLoop() {
    if (loopIndex >= 0) { setLoop(-1); return; }
    var i = current >= 0 ? current : 0;
    if (!clips()[i]) return;
    setLoop(i);
    var c = clips()[i];
    var t = video.currentTime;
    if (t < c.film_start_s - 0.05 || t >= c.film_end_s - 0.5 / fps()) seekTo(c.film_start_s, !video.paused);
  }

  /* While playing, each frame: keep a loop inside its moment and the readout current. */
  var watching = false;
  function watch() {
    if (loopIndex >= 0) {
      var c = clips()[loopIndex];
      if (c && video.currentTime >= c.film_end_s - 0.5 / fps()) video.currentTime = c.film_start_s;
    }
    updatePosition();
    if (!video.paused && !video.ended) requestAnimationFrame(watch);
    else watching = false;
  }
  function startWatching() {
    if (watching) return;
    watching = true;
    requestAnimationFrame(watch);
  }

  function renderPlay() {
    var playing = !video.paused && !video.ended;
    $("play-text").textContent = playing ? "Pause" : "Play";
    $("play").setAttribute("aria-label", playing ? "Pause" : "Play");
    $("play").classList.toggle("playing", playing);
  }

  video.addEventListener("loadedmetadata", function () {
    video.playbackRate = rate;
    filmRetries = 0;
    root.setAttribute("data-film", "ready");
    $("film-empty").hidden = true;
    if (pendingSeek != null) {
      var t = pendingSeek;
      pendingSeek = null;
      video.currentTime = Math.max(0, Math.min(t, video.duration - 0.5 / fps()));
    }
    renderTimeline();
    updatePosition();
  });
  video.addEventListener("play", function () { renderPlay(); startWatching(); });
  video.addEventListener("pause", renderPlay);
  video.addEventListener("ended", function () {
    renderPlay();
    if (loopIndex >= 0) playMoment(loopIndex);
  });
  video.addEventListener("timeupdate", updatePosition);
  video.addEventListener("seeked", updatePosition);
  video.addEventListener("ratechange", function () {
    // The native controls may change the speed too (some browsers offer it).
    if (video.playbackRate !== rate && [1, 0.5, 0.25].indexOf(video.playbackRate) >= 0) setRate(video.playbackRate);
  });
  video.addEventListener("error", function () {
    if (!video.getAttribute("src")) return;
    root.setAttribute("data-film", "error");
    // A re-cut may have replaced the file mid-load: fetch the visit again, then retry.
    if (filmRetries < 3) {
      filmRetries += 1;
      var retries = filmRetries;
      setTimeout(function () {
        load().then(function () {
          if (root.getAttribute("data-film") === "error") {
            filmRetries = retries;
            video.load();
          }
        });
      }, 1000 * filmRetries);
    } else {
      $("film-empty").hidden = false;
      $("film-empty").textContent = "The film would not play on this phone.";
    }
  });
  // Long-press menus offer "Save video" / "Download image": not here (see the consent note).
  video.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  $("stills").addEventListener("contextmenu", function (e) { e.preventDefault(); });

  /* ---------- editing tags ---------- */

  function notify(text, seconds, onUndo, kind) { toast.show(text, seconds, onUndo, kind); }

  function describe(tag) {
    return tag.label + (tag.take_s == null ? "" : " · " + Kit.clock(tag.take_s));
  }

  function send(method, path, body) {
    return Kit.api(method, path, body).then(function (r) {
      if (!r.ok && r.status !== 404) notify("Not done: " + (r.body.error || r.status), 6, null, "bad");
      return r;
    }, function () {
      notify("Cannot reach the kit", 6, null, "bad");
      return null;
    });
  }

  function expectCut() {
    awaitingCut = true;
    applyStatus(model.status);
  }

  var sheet = { id: null, nudgeMs: 0 };

  function openSheet(id) {
    var tag = model.tags.get(id);
    if (!tag) return;
    sheet.id = id;
    sheet.nudgeMs = 0;
    var select = $("sheet-label");
    select.textContent = "";
    var labels = model.labels.slice();
    if (labels.indexOf(tag.label) < 0) labels.push(tag.label);
    labels.forEach(function (l) {
      var o = Kit.el("option", "", l);
      o.value = l;
      if (l === tag.label) o.selected = true;
      select.appendChild(o);
    });
    $("sheet-title").textContent = describe(tag);
    $("sheet-note").value = tag.note || "";
    renderNudge();
    $("sheet").hidden = false;
  }

  /* Where the tag would be, kept inside its take as the kit keeps it. */
  function nudgedTakeS(tag) {
    if (tag.take_s == null) return null;
    var take = model.takes.get(tag.take_id);
    var t = tag.take_s + sheet.nudgeMs / 1000;
    return Math.max(0, take ? Math.min(take.duration_s, t) : t);
  }

  function renderNudge() {
    var tag = model.tags.get(sheet.id);
    if (!tag) return;
    var at = nudgedTakeS(tag);
    var moved = at == null ? 0 : at - tag.take_s;
    var movable = at != null;
    var take = model.takes.get(tag.take_id);
    var inTake = model.takes.size > 1 && take ? " of take " + take.seq : " of the take";
    $("sheet-at").textContent = !movable ? "(its take has no pictures)" :
      fine(at) + inTake + (Math.abs(moved) < 0.05 ? "" : " (" + (moved > 0 ? "+" : "−") + Math.abs(moved).toFixed(1) + " s)");
    Array.prototype.forEach.call(document.querySelectorAll(".nudge"), function (b) { b.disabled = !movable; });
  }

  function closeSheet() { $("sheet").hidden = true; sheet.id = null; }

  function saveSheet(event) {
    event.preventDefault();
    var tag = model.tags.get(sheet.id);
    var id = sheet.id;
    var nudge = sheet.nudgeMs;
    closeSheet();
    if (!tag) return;
    var body = {};
    var label = $("sheet-label").value;
    var note = $("sheet-note").value.trim();
    if (label !== tag.label) body.label = label;
    if (note !== (tag.note || "")) body.note = note;
    if (nudge) body.nudge_ms = nudge;
    if (!Object.keys(body).length) return;
    // Shown at once; the kit's answer (and its tag event) replaces it.
    var shown = Object.assign({}, tag);
    if (body.label) shown.label = body.label;
    if ("note" in body) shown.note = body.note;
    if (nudge) shown.take_s = nudgedTakeS(tag);
    model.tags.set(id, shown);
    render();
    expectCut();
    send("PATCH", "/api/tags/" + id, body).then(function (r) {
      if (r && r.ok) {
        notify("✓ Saved: " + describe(shown), 3, null, "good");
      } else {
        awaitingCut = false;
        load();
      }
    });
  }

  function deleteTag(id) {
    var tag = model.tags.get(id);
    if (!tag) return;
    hiddenIds.add(id);
    render();
    expectCut();
    send("DELETE", "/api/tags/" + id).then(function (r) {
      if (!r || !r.ok) { hiddenIds.delete(id); awaitingCut = false; load(); }
    });
    notify("Deleted " + describe(tag), UNDO_S, function () { restoreTag(id); });
  }

  function restoreTag(id) {
    hiddenIds.delete(id);
    render();
    expectCut();
    send("POST", "/api/tags/" + id + "/restore").then(function (r) {
      if (!r || !r.ok) { awaitingCut = false; load(); }
    });
    var tag = model.tags.get(id);
    notify("Restored " + (tag ? describe(tag) : "the tag"), 3);
  }

  function recut() {
    expectCut();
    send("POST", "/api/sessions/" + encodeURIComponent(SESSION) + "/recut").then(function (r) {
      if (!r || !r.ok) { awaitingCut = false; applyStatus(model.status); }
    });
  }

  /* ---------- live: events ---------- */

  var es = null;
  var lastActivity = performance.now();
  var KINDS = ["status", "take", "tag", "labels", "cut", "refused", "phones", "resync", "heartbeat"];

  function connect() {
    if (es) es.close();
    es = new EventSource("/api/events?after=" + model.eventId);
    lastActivity = performance.now();
    es.onopen = function () { showConn(false); lastActivity = performance.now(); };
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) {
        showConn(true);
        setTimeout(function () { load().then(connect); }, 3000);
      } else {
        setTimeout(function () { if (es && es.readyState !== EventSource.OPEN) showConn(true); }, 3000);
      }
    };
    KINDS.forEach(function (kind) {
      es.addEventListener(kind, function (e) {
        lastActivity = performance.now();
        if (e.lastEventId) model.eventId = Number(e.lastEventId);
        onEvent(kind, e.data ? JSON.parse(e.data) : {});
      });
    });
  }

  function onEvent(kind, data) {
    if (kind === "status") {
      applyStatus(Object.assign({}, model.status || {}, data));
    } else if (kind === "cut") {
      if (data.session_id !== SESSION) return;
      awaitingCut = false;
      if (data.error) {
        applyStatus(model.status);
        notify("The film could not be made: " + data.error, 8, null, "bad");
        return;
      }
      var before = model.cut ? model.cut.version : null;
      load().then(function () {
        // Never over an Undo still on offer: the new film shows for itself.
        if (model.cut && model.cut.version !== before && !toast.onUndo) notify("✓ The film is up to date", 3, null, "good");
      });
    } else if (kind === "tag") {
      if (data.action === "deleted") {
        if (model.tags.delete(data.tag_id)) render();
        return;
      }
      var tag = data.tag;
      if (!tag || tag.session_id !== SESSION) return;
      var old = model.tags.get(tag.id);
      var start = model.takes.get(tag.take_id);
      tag.take_s = start && start.first_frame_ns != null ? (tag.at_ns - start.first_frame_ns) / 1e9 : (old ? old.take_s : null);
      model.tags.set(tag.id, tag);
      if (data.action === "restored") hiddenIds.delete(tag.id);
      render();
    } else if (kind === "labels") {
      model.labels = data.labels;
    } else if (kind === "take" || kind === "resync") {
      load();
    }
  }

  setInterval(function () {
    if (!document.hidden && performance.now() - lastActivity > (HEARTBEAT_S * 2 + 5) * 1000) {
      showConn(true);
      load().then(connect);
    }
  }, 5000);

  function showConn(bad) { $("conn").hidden = !bad; }
  function showError(text) {
    $("error").hidden = false;
    $("error").textContent = text;
  }

  /* ---------- wiring ---------- */

  $("play").addEventListener("click", function () {
    if (video.paused || video.ended) startPlaying();
    else video.pause();
  });
  $("prev-frame").addEventListener("click", function () { step(-1); });
  $("next-frame").addEventListener("click", function () { step(1); });
  $("loop").addEventListener("click", toggleLoop);
  Array.prototype.forEach.call(document.querySelectorAll(".speed"), function (b) {
    b.addEventListener("click", function () { setRate(Number(b.getAttribute("data-rate"))); });
  });
  function onListClick(e) {
    var b = e.target.closest("button");
    if (!b) return;
    if (b.classList.contains("moment-head")) playMoment(Number(b.getAttribute("data-index")));
    else if (b.classList.contains("jump")) seekTo(Number(b.getAttribute("data-t")), false);
    else if (b.classList.contains("edit")) openSheet(b.closest("li").getAttribute("data-id"));
  }
  $("moments").addEventListener("click", onListClick);
  $("waiting").addEventListener("click", onListClick);
  $("stills").addEventListener("click", function (e) {
    var b = e.target.closest("button.still");
    if (b && b.hasAttribute("data-t")) seekTo(Number(b.getAttribute("data-t")), false);
  });
  $("recut").addEventListener("click", recut);
  $("speed-cycle").addEventListener("click", function () { setRate(rate === 1 ? 0.5 : rate === 0.5 ? 0.25 : 1); });
  video.addEventListener("click", function () {
    if (video.controls) return; // full screen: the browser's controls handle taps
    if (video.paused || video.ended) startPlaying();
    else video.pause();
  });

  /* The timeline: tap or drag along it. */
  var timeline = $("timeline");
  var dragging = false;
  function seekToX(clientX) {
    var box = timeline.getBoundingClientRect();
    var dur = filmDuration();
    if (!dur || !box.width) return;
    var t = Math.max(0, Math.min(1, (clientX - box.left) / box.width)) * dur;
    if (video.readyState < 1) { pendingSeek = t; return; }
    video.currentTime = Math.min(t, dur - 0.5 / fps());
    updatePosition();
  }
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

  /* Full screen: the video alone, with the browser's controls (download still not offered). */
  $("fullscreen").addEventListener("click", function () {
    if (video.requestFullscreen) {
      video.controls = true;
      video.requestFullscreen().catch(function () { video.controls = false; });
    } else if (video.webkitEnterFullscreen) {
      video.webkitEnterFullscreen(); // iPhone: the system player
    }
  });
  document.addEventListener("fullscreenchange", function () {
    if (!document.fullscreenElement) video.controls = false;
  });
  $("sheet-form").addEventListener("submit", saveSheet);
  $("sheet-cancel").addEventListener("click", closeSheet);
  $("sheet-delete").addEventListener("click", function () {
    var id = sheet.id;
    closeSheet();
    if (id) deleteTag(id);
  });
  $("sheet").addEventListener("click", function (e) { if (e.target === $("sheet")) closeSheet(); });
  Array.prototype.forEach.call(document.querySelectorAll(".nudge"), function (b) {
    b.addEventListener("click", function () {
      var tag = model.tags.get(sheet.id);
      if (!tag) return;
      var before = nudgedTakeS(tag);
      sheet.nudgeMs += Number(b.getAttribute("data-nudge"));
      // Past the take's start or end, the tag stays there: don't bank the overshoot.
      var after = nudgedTakeS(tag);
      if (before != null && after != null) sheet.nudgeMs = Math.round((after - tag.take_s) * 1000);
      renderNudge();
    });
  });

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { video.pause(); return; }
    load();
    if (!es || es.readyState === EventSource.CLOSED || performance.now() - lastActivity > HEARTBEAT_S * 1000 + 5000) connect();
  });

  setRate(1);
  load().then(connect);
})();
