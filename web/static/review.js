/* Review: the visit's rough cut, its moments and stills, for showing a parent their best
 * moments on the phone; and the guider's edits (relabel, move, delete with Undo), after
 * which the kit makes the film again and the page reloads it.
 *
 * The film is served inline from /media/ (no download: see web/API.md) and played by
 * review-player.js. Moments are the cut manifest's clips; a tag's label comes from the
 * live tags, so an edit shows at once while the new film is being made.
 */
"use strict";

(function () {
  var $ = function (id) { return document.getElementById(id); };
  var root = $("review");
  var VISIT = root.getAttribute("data-visit");
  var UNDO_S = Number(root.getAttribute("data-undo-s")) || 10;
  var HEARTBEAT_S = Number(root.getAttribute("data-heartbeat-s")) || 15;
  var toast = new Kit.Toast($("toast"));
  var fine = ReviewPlayer.fine;

  var model = {
    eventId: 0, visit: null, takes: new Map(), tags: new Map(),
    cut: null, cutError: "", labels: [], status: null,
  };
  var hiddenIds = new Set(); // deleted here, before the kit confirmed it
  var awaitingCut = false; // an edit was sent: a new film is on its way
  var erased = false; // the kit said it erased this visit (its erase-by date came)

  /* Sealed: only the organisation's key opens it now (nothing of it is shown). */
  function isSealed() { return Kit.sealed(model.visit); }
  /* The family did not agree to the shared review: the film is never shown on a phone. */
  function noReview() { return !Kit.mayReview(model.visit); }

  function clips() { return (model.cut && model.cut.clips) || []; }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  var player = ReviewPlayer.create($("film"), {
    clips: clips,
    fps: function () { return (model.cut && model.cut.fps) || 30; },
    duration: function () { return model.cut ? model.cut.duration_s : 0; },
    showTag: function (id) { return !!liveTag(id); },
    onMoment: markMoments,
    onFilm: function (state) {
      root.setAttribute("data-film", state);
      var empty = $("film-empty");
      empty.hidden = state === "ready";
      if (state === "loading") empty.textContent = "Loading the film…";
      else if (state === "error") empty.textContent = "The film did not load. Trying again…";
      else if (state === "none") renderEmpty();
    },
    onFailed: function () { return load(); },
    notify: function (text) { notify(text, 6, null, "bad"); },
  });

  /* ---------- loading ---------- */

  var loading = null;
  var loadAgain = false;
  function load() {
    if (loading) { loadAgain = true; return loading; }
    loading = Kit.api("GET", "/api/visits/" + encodeURIComponent(VISIT)).then(function (r) {
      showConn(false);
      if (r.status === 404) {
        showError(erased ? "This visit was erased: the erase-by date the family agreed to has come." :
          "This visit is no longer on the kit.");
        player.load(null, false);
        return;
      }
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
    model.visit = body.visit;
    model.takes = new Map();
    body.takes.forEach(function (t) { model.takes.set(t.id, t); });
    model.tags = new Map();
    body.tags.forEach(function (t) { model.tags.set(t.id, t); });
    model.labels = body.labels;
    model.cutError = body.cut_error || "";
    root.setAttribute("data-access", isSealed() ? "sealed" : "readable");
    root.setAttribute("data-review", noReview() ? "no" : "yes");
    var before = model.cut;
    model.cut = body.cut;
    applyStatus(body.status);
    var oldUrl = before ? before.film_url : null;
    var newUrl = model.cut ? model.cut.film_url : null;
    if (newUrl !== oldUrl || !player.hasFilm()) player.load(newUrl, before != null);
    root.setAttribute("data-cut-version", model.cut ? model.cut.version : "");
    render();
  }

  function renderEmpty() {
    var empty = $("film-empty");
    empty.hidden = false;
    if (isSealed()) empty.textContent = "Sealed: only your organisation can open this visit now.";
    else if (noReview()) {
      empty.textContent = model.visit.consent ? "The family did not agree to a review: no film is shown." :
        "This visit has no consent record: no film is shown.";
    }
    else if (awaitingCut || making()) empty.textContent = "Making the film…";
    else if (model.cut && !clips().length) empty.textContent = "No moments were tagged in this visit.";
    else if (model.cutError) empty.textContent = "The film cannot be read.";
    else empty.textContent = "No film yet.";
  }

  /* ---------- status: the progress of a cut ---------- */

  function making() {
    var s = model.status;
    return !!(s && s.state === "cutting" && (s.cut_visit_id == null || s.cut_visit_id === VISIT));
  }

  /* The film was made before the latest takes or tag edits (the kit makes it again). */
  function stale() { return !!(model.cut && model.cut.up_to_date === false); }

  function applyStatus(status) {
    model.status = status;
    var cutting = making();
    var box = $("making");
    var old = stale() && !cutting && !awaitingCut;
    box.hidden = !(cutting || awaitingCut || old);
    var p = cutting && status.cut_progress != null ? status.cut_progress : null;
    $("making-text").textContent = old ? "This film does not have the latest changes yet." :
      (model.cut ? "Making the film again" : "Making the film") +
      (p == null ? "…" : "… " + Math.round(p * 100) + "%");
    $("making-fill").style.transform = "scaleX(" + (p == null ? 0 : Math.max(0, Math.min(1, p))).toFixed(3) + ")";
    $("making-bar").setAttribute("aria-valuenow", p == null ? "0" : String(Math.round(p * 100)));
    $("recut").disabled = cutting || awaitingCut;
    root.setAttribute("data-making", cutting || awaitingCut ? "yes" : "no");
    if (!player.hasFilm()) renderEmpty();
  }

  /* ---------- rendering ---------- */

  function render() {
    var number = root.getAttribute("data-number");
    $("review-title").textContent = model.visit ? model.visit.case_ref || "Visit " + number : "";
    renderPrivacy();
    var wall = model.visit && model.visit.started_wall;
    var d = wall ? new Date(wall) : null;
    $("review-date").textContent = d && !isNaN(d) ?
      d.toLocaleDateString([], { day: "numeric", month: "short" }) + ", " +
      d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
    var error = model.cutError;
    $("error").hidden = !error;
    if (error) $("error").textContent = "The film cannot be read: " + error;
    renderMoments();
    renderStills();
    renderWaiting();
    player.render();
  }

  /* What the kit can show of this visit, and what the family agreed to. */
  function renderPrivacy() {
    var v = model.visit;
    var sealedBox = $("sealed");
    sealedBox.hidden = !isSealed();
    if (isSealed()) {
      var when = Kit.timeLabel(v.started_wall);
      sealedBox.textContent = v.access === "key_lost" ?
        "The kit lost power during this visit" + (when ? " (started " + when + ")" : "") +
        ". Its recording is safe and encrypted for your organisation, but this kit can no longer open it." :
        "This visit is sealed: its film was made and the kit no longer holds its key. " +
        "Only your organisation can open it now.";
    }
    $("moments-title").hidden = isSealed();
    var note = $("consent-note");
    note.hidden = !(v && v.consent);
    if (!note.hidden) note.textContent = Kit.consentText(v.consent) + ".";
    $("film-note").textContent = isSealed() ? "Its takes and film stay on the kit, encrypted, until the erase-by date." :
      noReview() ? "The family did not agree to a review, so this film is never shown on a phone." :
      "The film stays on the kit. It is not offered for download: the family's consent allows no " +
      "copies without their written agreement.";
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
    markMoments(player.current(), -1);
  }

  function renderStills() {
    var box = $("stills");
    box.textContent = "";
    var stills = (model.cut && !noReview() && model.cut.stills) || [];
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
      if (isSealed() || inFilm.has(tag.id) || hiddenIds.has(tag.id)) return;
      var li = Kit.el("li", "moment");
      var ul = Kit.el("ul", "moment-tags");
      ul.appendChild(tagRow(tag, null, false));
      li.appendChild(ul);
      ol.appendChild(li);
      n += 1;
    });
    $("waiting-section").hidden = !n;
  }

  var shownMoment = -1;
  var listTouchedAt = -1e9;
  function markMoments(current, loopIndex) {
    Array.prototype.forEach.call($("moments").children, function (li, i) {
      li.classList.toggle("current", i === current);
      li.classList.toggle("looping", i === loopIndex);
    });
    // Playing on into the next moment brings its card into view, unless the guider is
    // scrolling the list just now.
    var li = $("moments").children[current];
    if (current !== shownMoment && li && performance.now() - listTouchedAt > 4000) {
      li.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
    shownMoment = current;
  }

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
    send("POST", "/api/visits/" + encodeURIComponent(VISIT) + "/recut").then(function (r) {
      if (!r || !r.ok) { awaitingCut = false; applyStatus(model.status); }
    });
  }

  /* ---------- live: events ---------- */

  var live = new Kit.Live({
    after: function () { return model.eventId; },
    seen: function (id) { model.eventId = id; },
    onEvent: function (kind, data) { onEvent(kind, data); },
    onOpen: function () { /* nothing queued on this page */ },
    showConn: function (bad) { showConn(bad); },
    reload: function () { return load(); },
    heartbeatS: HEARTBEAT_S,
  });
  function connect() { live.connect(); }

  function onEvent(kind, data) {
    if (kind === "status") {
      applyStatus(Object.assign({}, model.status || {}, data));
    } else if (kind === "cut") {
      if (data.visit_id !== VISIT) return;
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
      if (!tag || tag.visit_id !== VISIT) return;
      var old = model.tags.get(tag.id);
      var start = model.takes.get(tag.take_id);
      tag.take_s = start && start.first_frame_ns != null ? (tag.at_ns - start.first_frame_ns) / 1e9 : (old ? old.take_s : null);
      model.tags.set(tag.id, tag);
      if (data.action === "restored") hiddenIds.delete(tag.id);
      render();
    } else if (kind === "labels") {
      model.labels = data.labels;
    } else if (kind === "take" || kind === "resync" || (kind === "visit" && data.visit_id === VISIT)) {
      if (kind === "visit" && data.action === "erased") erased = true;
      load();
    }
  }

  function showConn(bad) { $("conn").hidden = !bad; }
  function showError(text) {
    $("error").hidden = false;
    $("error").textContent = text;
  }

  /* ---------- wiring ---------- */

  function onListClick(e) {
    var b = e.target.closest("button");
    if (!b) return;
    var film = player.hasFilm();
    if (b.classList.contains("moment-head")) { if (film) player.playMoment(Number(b.getAttribute("data-index"))); }
    else if (b.classList.contains("jump")) { if (film) player.seekTo(Number(b.getAttribute("data-t")), false); }
    else if (b.classList.contains("edit")) openSheet(b.closest("li").getAttribute("data-id"));
  }
  $("moments").addEventListener("click", onListClick);
  $("waiting").addEventListener("click", onListClick);
  $("stills").addEventListener("click", function (e) {
    var b = e.target.closest("button.still");
    if (b && b.hasAttribute("data-t")) player.seekTo(Number(b.getAttribute("data-t")), false);
  });
  // Long-press menus offer "Download image": not here (see the consent note in web/API.md).
  $("stills").addEventListener("contextmenu", function (e) { e.preventDefault(); });
  $("recut").addEventListener("click", recut);
  ["touchstart", "wheel", "pointerdown"].forEach(function (kind) {
    $("review-scroll").addEventListener(kind, function () { listTouchedAt = performance.now(); }, { passive: true });
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
    if (document.hidden) return;
    load();
  });

  load().then(connect);
})();
