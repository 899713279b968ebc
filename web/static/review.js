/* Review: the visit's rough cut, its moments and stills, for showing a parent their best
 * moments on the phone; and, in the guider's Edit mode, the edits: trim a moment to the
 * frame, reorder, leave out of the film (its tags kept), relabel / move / delete a tag,
 * open a whole take and tag a frame after the fact. The kit then makes the film again
 * and the page reloads it.
 *
 * Watching is the default each time the page opens: the parent sits beside the guider,
 * so the guider's notes, who tagged, the edit controls and the whole takes show only
 * after Edit (and hide again with Done).
 *
 * The film and the takes are served inline from /media/ (no download: see web/API.md)
 * and played by review-player.js. Moments are the visit's planned moments (the API's
 * ``moments``); the film's clips place them in the film. A tag's label comes from the
 * live tags, so an edit shows at once while the new film is being made.
 */
"use strict";

(function () {
  var $ = function (id) { return document.getElementById(id); };
  var root = $("review");
  var VISIT = root.getAttribute("data-visit");
  var UNDO_S = Number(root.getAttribute("data-undo-s")) || 10;
  var HEARTBEAT_S = Number(root.getAttribute("data-heartbeat-s")) || 15;
  var API = "/api/visits/" + encodeURIComponent(VISIT);
  var toast = new Kit.Toast($("toast"));
  var fine = ReviewPlayer.fine;
  var precise = ReviewPlayer.precise;

  var model = {
    eventId: 0, visit: null, takes: new Map(), tags: new Map(), moments: [],
    cut: null, cutError: "", labels: [], status: null,
  };
  var hiddenIds = new Set(); // deleted here, before the kit confirmed it
  var awaitingCut = false; // an edit was sent: a new film is on its way
  var erased = false; // the kit said it erased this visit (its erase-by date came)
  var editing = false; // the guider's Edit mode (else the family watches)

  /* Sealed: only the organisation's key opens it now (nothing of it is shown). */
  function isSealed() { return Kit.sealed(model.visit); }
  /* The family did not agree to the shared review: the film is never shown on a phone. */
  function noReview() { return !Kit.mayReview(model.visit); }

  function clips() { return (model.cut && model.cut.clips) || []; }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function notify(text, seconds, onUndo, kind) { toast.show(text, seconds, onUndo, kind); }

  function filmFps() { return (model.cut && model.cut.fps) || 30; }

  var player = ReviewPlayer.create($("film"), {
    timeline: $("timeline"), segments: $("segments"), playhead: $("playhead"), clock: $("clock"),
    where: $("where"), play: $("play"), playText: $("play-text"), prev: $("prev-frame"),
    next: $("next-frame"), loop: $("loop"), speedCycle: $("speed-cycle"),
    speeds: document.querySelectorAll("#transport .speed"), fullscreen: $("fullscreen"),
  }, {
    clips: clips,
    fps: filmFps,
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
    loading = Kit.api("GET", API).then(function (r) {
      showConn(false);
      if (r.status === 404) {
        showError(erased ? "This visit was erased: the erase-by date the family agreed to has come." :
          "This visit is no longer on the kit.");
        player.load(null, false);
        takeView.close();
        return;
      }
      if (!r.ok) { showError(r.body.error || "The kit could not load this visit (" + r.status + ")"); return; }
      apply(r.body);
    }, function () { showConn(true); }).then(function () {
      loading = null;
      if (loadAgain) { loadAgain = false; return load(); }
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
    model.moments = body.moments || [];
    root.setAttribute("data-access", isSealed() ? "sealed" : "readable");
    root.setAttribute("data-review", noReview() ? "no" : "yes");
    var before = model.cut;
    model.cut = body.cut;
    // A newer film than the one on show: what was awaited has come (its event may have
    // been missed, e.g. across a kit restart).
    if (awaitingCut && model.cut && (!before || model.cut.version !== before.version)) awaitingCut = false;
    applyStatus(body.status);
    var oldUrl = before ? before.film_url : null;
    var newUrl = model.cut ? model.cut.film_url : null;
    if (newUrl !== oldUrl || !player.hasFilm()) player.load(newUrl, before != null);
    root.setAttribute("data-cut-version", model.cut ? model.cut.version : "");
    if (isSealed() || noReview()) takeView.close();
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
    // A cut runs beside a take being recorded or saved: its visit says, not the state.
    if (!s) return false;
    return s.cut_visit_id != null ? s.cut_visit_id === VISIT : s.state === "cutting";
  }

  /* The film was made before the latest takes or edits (the kit makes it again). */
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

  /* ---------- the moments ---------- */

  /* Every planned moment of the visit (dropped ones too), in time order. */
  function moments() { return model.moments; }

  function byNumber(a, b) { return a.number - b.number; }

  /* The moments in the family's film (to be), in its order. */
  function included() { return moments().filter(function (m) { return !m.dropped; }).sort(byNumber); }

  /* The clip of the film that shows ``m`` (its index), or -1 while the film does not. */
  function clipIndex(m) {
    var list = clips();
    for (var i = 0; i < list.length; i++) {
      if (list[i].moment_id === m.moment_id) return i;
    }
    return -1;
  }

  function momentById(id) {
    return moments().filter(function (m) { return m.moment_id === id; })[0] || null;
  }

  function lengthS(m) { return m.take_end_s - m.take_start_s; }

  function takeName(takeId) {
    var take = model.takes.get(takeId);
    return take ? "take " + take.seq : "a take";
  }

  /* The tags of a moment that still stand, and its labels and notes from them. */
  function momentTags(m) {
    var tags = [];
    var films = {};
    clips().forEach(function (c) {
      c.tag_ids.forEach(function (id, k) { films[id] = c.tags_film_s[k]; });
    });
    m.tag_ids.forEach(function (id) {
      var t = liveTag(id);
      if (t) tags.push({ tag: t, filmS: films[id] == null ? null : films[id] });
    });
    var labels = [];
    var notes = [];
    tags.forEach(function (x) {
      if (labels.indexOf(x.tag.label) < 0) labels.push(x.tag.label);
      if (x.tag.note && notes.indexOf(x.tag.note) < 0) notes.push(x.tag.note);
    });
    if (!tags.length) labels = (m.labels || []).slice();
    return { tags: tags, labels: labels, notes: notes };
  }

  function stillFor(m) {
    if (!model.cut || noReview()) return null;
    var stills = model.cut.stills || [];
    for (var k = 0; k < m.tag_ids.length; k++) {
      for (var j = 0; j < stills.length; j++) {
        if (stills[j].tag_id === m.tag_ids[k] && stills[j].url) return stills[j].url;
      }
    }
    return null;
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
    renderTakes();
    player.render();
    takeView.render();
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
      setMode(false);
    }
    $("mode").hidden = isSealed();
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
    var where = model.takes.size > 1 ? takeName(tag.take_id) + " · " : "";
    return where + "tagged by " + tag.author;
  }

  function button(cls, text, label) {
    var b = Kit.el("button", "btn small " + cls, text);
    b.type = "button";
    if (label) b.setAttribute("aria-label", label);
    return b;
  }

  /* A tag under its moment (Edit mode): a chip that shows the tagged instant (paused),
   * who tagged it, and Edit. The label and note are the moment's own when it has only
   * this tag. */
  function tagRow(tag, filmS, alone) {
    var row = Kit.el("li", "mtag");
    row.setAttribute("data-id", tag.id);
    if (filmS != null) {
      var jump = button("jump", fine(filmS), "Show the tagged instant, " + tag.label);
      jump.setAttribute("data-t", String(filmS));
      row.appendChild(jump);
    }
    var what = Kit.el("span", "what");
    if (!alone) {
      what.appendChild(Kit.el("span", "lbl", tag.label));
      if (tag.note) what.appendChild(Kit.el("span", "note", tag.note));
    }
    what.appendChild(Kit.el("span", "by", takeNote(tag)));
    row.appendChild(what);
    row.appendChild(button("edit", "Edit", "Change or delete the tag " + tag.label));
    return row;
  }

  /* One moment: its still, number, labels and length (the family sees these); in Edit
   * mode its stretch of the take, Trim, Earlier / Later, Leave out or Put back, and its
   * tags with their notes. */
  function momentCard(m, number, first, last) {
    var i = clipIndex(m);
    var info = momentTags(m);
    var li = Kit.el("li", "moment" + (m.dropped ? " dropped" : "") + (info.tags.length ? "" : " gone") +
      (i < 0 && !m.dropped ? " pending" : ""));
    li.setAttribute("data-index", String(i));
    li.setAttribute("data-moment", m.moment_id);
    var len = lengthS(m);
    var head = Kit.el("button", "moment-head");
    head.type = "button";
    head.setAttribute("data-index", String(i));
    var thumb = Kit.el("span", "thumb");
    var url = stillFor(m);
    if (url) {
      var img = Kit.el("img");
      img.src = url;
      img.alt = "";
      img.draggable = false;
      img.decoding = "async";
      thumb.appendChild(img);
    }
    thumb.appendChild(Kit.el("span", "num", number == null ? "–" : String(number)));
    head.appendChild(thumb);
    var what = Kit.el("span", "what");
    what.appendChild(Kit.el("span", "lbl", info.labels.join(" + ")));
    if (editing && info.notes.length) what.appendChild(Kit.el("span", "note", info.notes.join(" · ")));
    head.appendChild(what);
    var t = Kit.el("span", "t");
    t.appendChild(Kit.el("span", "play-mark", i >= 0 ? "▶" : ""));
    t.appendChild(Kit.el("span", "len", len.toFixed(len < 10 ? 1 : 0) + " s"));
    head.appendChild(t);
    head.setAttribute("aria-label", (i >= 0 ? "Play moment " : "Moment ") + (number == null ? "" : number + ": ") +
      info.labels.join(", ") + " (" + Math.round(len) + " seconds)");
    li.appendChild(head);
    if (!editing) return li;

    var span = Kit.el("p", "moment-span", takeName(m.take_id) + " · " + precise(m.take_start_s) + " – " +
      precise(m.take_end_s) + (m.trimmed ? " · trimmed" : "") +
      (m.dropped ? " · left out of the film" : i < 0 ? " · not in the film yet" : ""));
    li.appendChild(span);
    var actions = Kit.el("div", "moment-actions");
    if (m.dropped) {
      actions.appendChild(button("restore", "Put back", "Put the moment back into the film"));
    } else {
      if (!noReview()) actions.appendChild(button("trim", "Trim", "Trim moment " + number));
      var up = button("up", "↑", "Move moment " + number + " earlier");
      up.disabled = first;
      var down = button("down", "↓", "Move moment " + number + " later");
      down.disabled = last;
      actions.appendChild(up);
      actions.appendChild(down);
      actions.appendChild(button("drop", "Leave out", "Leave moment " + number + " out of the film"));
    }
    li.appendChild(actions);
    var ul = Kit.el("ul", "moment-tags");
    info.tags.forEach(function (x) { ul.appendChild(tagRow(x.tag, x.filmS, info.tags.length === 1)); });
    li.appendChild(ul);
    return li;
  }

  function renderMoments() {
    var ol = $("moments");
    ol.textContent = "";
    var dropped = $("dropped");
    dropped.textContent = "";
    if (isSealed()) { $("dropped-section").hidden = true; return; }
    var shown;
    if (editing) {
      shown = included();
    } else {
      // What the family's film holds now, in its order.
      shown = moments().filter(function (m) { return !m.dropped && clipIndex(m) >= 0; });
      shown.sort(function (a, b) { return a.film_start_s - b.film_start_s; });
    }
    $("moments-title").textContent = shown.length ? plural(shown.length, "moment", "moments") : "Moments";
    shown.forEach(function (m, k) {
      var i = clipIndex(m);
      var number = editing ? m.number : (clips()[i] ? clips()[i].number : k + 1);
      ol.appendChild(momentCard(m, number, k === 0, k === shown.length - 1));
    });
    var left = editing ? moments().filter(function (m) { return m.dropped; }) : [];
    left.forEach(function (m) { dropped.appendChild(momentCard(m, null, true, true)); });
    $("dropped-section").hidden = !left.length;
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

  /* Tags in no moment of the film (Edit mode): their take has no pictures, or the kit
   * has not planned them yet. */
  function renderWaiting() {
    var placed = new Set();
    moments().forEach(function (m) { m.tag_ids.forEach(function (id) { placed.add(id); }); });
    clips().forEach(function (c) { c.tag_ids.forEach(function (id) { placed.add(id); }); });
    var ol = $("waiting");
    ol.textContent = "";
    var n = 0;
    model.tags.forEach(function (tag) {
      if (isSealed() || placed.has(tag.id) || hiddenIds.has(tag.id)) return;
      var li = Kit.el("li", "moment");
      var ul = Kit.el("ul", "moment-tags");
      ul.appendChild(tagRow(tag, null, false));
      li.appendChild(ul);
      ol.appendChild(li);
      n += 1;
    });
    $("waiting-section").hidden = !n;
  }

  /* The whole takes, to open (Edit mode; not without the family's consent to a review). */
  function renderTakes() {
    var ul = $("takes");
    ul.textContent = "";
    var n = 0;
    if (!isSealed() && !noReview()) {
      model.takes.forEach(function (t) {
        if (!ReviewTake.viewable(t)) return;
        var count = moments().filter(function (m) { return m.take_id === t.id && !m.dropped; }).length;
        var li = Kit.el("li", "take-item");
        var what = Kit.el("span", "what");
        what.appendChild(Kit.el("span", "lbl", "Take " + t.seq + (t.recovered ? " (recovered)" : "")));
        what.appendChild(Kit.el("span", "by", Kit.clock(t.duration_s) + " · " + plural(count, "moment", "moments")));
        // What a ready take lacks (where the microphone was lost), in the kit's words.
        if (t.error) what.appendChild(Kit.el("span", "note", t.error.charAt(0).toUpperCase() + t.error.slice(1)));
        li.appendChild(what);
        var open = button("open-take", "Open ›", "Open the whole take " + t.seq);
        open.setAttribute("data-take", t.id);
        li.appendChild(open);
        ul.appendChild(li);
        n += 1;
      });
    }
    $("takes-section").hidden = !n;
  }

  var shownMoment = -1;
  var listTouchedAt = -1e9;
  function markMoments(current, loopIndex) {
    var mine = null;
    Array.prototype.forEach.call($("moments").children, function (li) {
      var i = Number(li.getAttribute("data-index"));
      li.classList.toggle("current", i >= 0 && i === current);
      li.classList.toggle("looping", i >= 0 && i === loopIndex);
      if (i >= 0 && i === current) mine = li;
    });
    // Playing on into the next moment brings its card into view, unless the guider is
    // scrolling the list just now.
    if (current !== shownMoment && mine && performance.now() - listTouchedAt > 4000) {
      mine.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
    shownMoment = current;
  }

  /* ---------- Edit mode ---------- */

  function setMode(on) {
    if (on === editing) return;
    editing = on;
    root.setAttribute("data-mode", on ? "edit" : "watch");
    var b = $("mode");
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.textContent = on ? "Done" : "Edit";
    b.setAttribute("aria-label", on ? "Done editing: the family's view" : "Edit the moments (guider)");
    $("guider-note").hidden = !on;
    if (!on) { closeSheet(); toast.hide(); }
    if (model.visit) render();
  }

  /* ---------- sending edits ---------- */

  function describe(tag) {
    return tag.label + (tag.take_s == null ? "" : " · " + Kit.clock(tag.take_s));
  }

  function send(method, path, body) {
    return Kit.api(method, path, body).then(function (r) {
      if (!r.ok && r.status !== 404) notify("Not done: " + (r.body.error || r.status), 6, null, "bad");
      return r;
    }, function () {
      notify("Cannot reach the kit: not done", 6, null, "bad");
      return null;
    });
  }

  function expectCut() {
    awaitingCut = true;
    applyStatus(model.status);
  }

  /* A change to the moments: shown from the kit's answer, then the new film follows. */
  function editMoments(method, path, body, done) {
    expectCut();
    return send(method, path, body).then(function (r) {
      if (r && r.ok) {
        if (Array.isArray(r.body.moments)) model.moments = r.body.moments;
        render();
        if (done) done();
      } else {
        awaitingCut = false;
        load();
      }
      return r;
    });
  }

  function patchMoment(m, body, done) {
    return editMoments("PATCH", API + "/moments/" + encodeURIComponent(m.moment_id), body, done);
  }


  function dropMoment(m, dropped) {
    var name = "moment " + (m.number == null ? "" : m.number + " ") + "(" + momentTags(m).labels.join(", ") + ")";
    patchMoment(m, { dropped: dropped }, function () {
      if (dropped) {
        notify("Left out " + name, UNDO_S, function () {
          patchMoment(m, { dropped: false });
        });
      } else {
        notify("✓ Put " + name + " back into the film", 3, null, "good");
      }
    });
  }

  function moveMoment(m, d) {
    var order = included();
    var k = order.indexOf(m);
    var j = k + d;
    if (k < 0 || j < 0 || j >= order.length) return;
    order.splice(k, 1);
    order.splice(j, 0, m);
    // Shown at once; the kit's answer replaces it.
    order.forEach(function (x, n) { x.number = n + 1; });
    render();
    var ids = order.map(function (x) { return x.moment_id; });
    editMoments("PUT", API + "/moments/order", { order: ids });
  }

  /* ---------- editing tags ---------- */

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
    var t = model.takes.get(tag.take_id);
    var at = tag.take_s + sheet.nudgeMs / 1000;
    return Math.max(0, t ? Math.min(t.duration_s, at) : at);
  }

  function renderNudge() {
    var tag = model.tags.get(sheet.id);
    if (!tag) return;
    var at = nudgedTakeS(tag);
    var moved = at == null ? 0 : at - tag.take_s;
    var movable = at != null;
    var inTake = model.takes.size > 1 ? " of " + takeName(tag.take_id) : " of the take";
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
    send("POST", API + "/recut").then(function (r) {
      if (!r || !r.ok) { awaitingCut = false; applyStatus(model.status); }
    });
  }

  /* ---------- a whole take: trim a moment, tag a frame (review-take.js) ---------- */

  var takeView = ReviewTake.create({
    visit: VISIT,
    take: function (id) { return model.takes.get(id); },
    moments: moments,
    liveTag: liveTag,
    labels: function () { return model.labels; },
    fps: function () { return model.cut && model.cut.fps; },
    onOpen: function () { player.pause(); },
    onTrim: saveTrim,
    onTag: function (takeId, takeS, label) {
      var tag = { id: Kit.newId(), take_id: takeId, take_s: takeS, label: label };
      unsent.push(tag);
      sendTag(tag);
    },
    onFailed: function () { return load(); },
    notify: function (text) { notify(text, 6, null, "bad"); },
  });

  function saveTrim(m, body) {
    var before = ReviewTake.trimBody(m, m.take_start_s, m.take_end_s, filmFps());
    patchMoment(m, body, function () {
      var now = momentById(m.moment_id) || m;
      notify("✓ Moment " + (now.number == null ? "" : now.number + ": ") + precise(now.take_start_s) +
        " – " + precise(now.take_end_s), UNDO_S, function () { patchMoment(now, before); });
    });
  }

  /* Tags made in the whole take that the kit has not acknowledged yet: sent again until it
   * has (the tag's id makes a repeat harmless). */
  var unsent = [];
  var resendTimer = null;

  function sendTag(tag) {
    var what = tag.label + " at " + precise(tag.take_s);
    function later() {
      takeView.say("Kept on this phone: " + what + ". Sending it when the kit answers…");
      if (!resendTimer) resendTimer = setTimeout(resend, 2000);
    }
    takeView.say("Tagging " + what + "…");
    return Kit.api("POST", API + "/tags", tag).then(function (r) {
      if (r.status >= 500) { later(); return; } // e.g. the card is full: not stored yet
      unsent = unsent.filter(function (x) { return x !== tag; });
      if (!r.ok) {
        var why = "Not tagged: " + (r.body.error || r.status);
        takeView.say(why, "bad");
        notify(why, 6, null, "bad");
        return;
      }
      model.tags.set(r.body.tag.id, r.body.tag);
      expectCut();
      load();
      takeView.say("✓ Tagged " + what + ": it joins the film", "good");
      notify("✓ Tagged " + what, UNDO_S, function () { deleteTag(tag.id); }, "good");
    }, later);
  }

  function resend() {
    resendTimer = null;
    unsent.slice().forEach(sendTag);
  }

  /* ---------- live: events ---------- */

  var live = new Kit.Live({
    after: function () { return model.eventId; },
    seen: function (id) { model.eventId = id; },
    onEvent: function (kind, data) { onEvent(kind, data); },
    onOpen: function () { if (unsent.length) resend(); },
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
      if (!old || data.action === "restored") load(); // a new moment: the kit plans it
    } else if (kind === "labels") {
      model.labels = data.labels;
      takeView.render();
    } else if (kind === "take" || kind === "resync" || (kind === "visit" && data.visit_id === VISIT)) {
      if (kind === "visit" && data.action === "erased") erased = true;
      load();
    }
  }

  function showConn(bad) {
    $("conn").hidden = !bad;
    $("take-conn").hidden = !bad; // the whole-take view covers the page's banner
  }
  function showError(text) {
    $("error").hidden = false;
    $("error").textContent = text;
  }

  /* ---------- wiring ---------- */

  function onListClick(e) {
    var b = e.target.closest("button");
    if (!b) return;
    var li = b.closest("li.moment");
    var m = li && li.hasAttribute("data-moment") ? momentById(li.getAttribute("data-moment")) : null;
    var film = player.hasFilm();
    if (b.classList.contains("moment-head")) {
      var i = Number(b.getAttribute("data-index"));
      if (film && i >= 0) player.playMoment(i);
    }
    else if (b.classList.contains("jump")) { if (film) player.seekTo(Number(b.getAttribute("data-t")), false); }
    else if (b.classList.contains("edit")) openSheet(b.closest("li.mtag").getAttribute("data-id"));
    else if (!m) return;
    else if (b.classList.contains("trim")) takeView.open(m.take_id, m.moment_id);
    else if (b.classList.contains("up")) moveMoment(m, -1);
    else if (b.classList.contains("down")) moveMoment(m, 1);
    else if (b.classList.contains("drop")) dropMoment(m, true);
    else if (b.classList.contains("restore")) dropMoment(m, false);
  }
  ["moments", "dropped", "waiting"].forEach(function (id) { $(id).addEventListener("click", onListClick); });
  $("takes").addEventListener("click", function (e) {
    var b = e.target.closest("button.open-take");
    if (b) takeView.open(b.getAttribute("data-take"), null);
  });
  $("stills").addEventListener("click", function (e) {
    var b = e.target.closest("button.still");
    if (b && b.hasAttribute("data-t")) player.seekTo(Number(b.getAttribute("data-t")), false);
  });
  // Long-press menus offer "Download image": not here (see the consent note in web/API.md).
  ["stills", "moments"].forEach(function (id) {
    $(id).addEventListener("contextmenu", function (e) { e.preventDefault(); });
  });
  $("recut").addEventListener("click", recut);
  $("mode").addEventListener("click", function () { setMode(!editing); });
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
