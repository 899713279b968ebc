/* Home: live state, preview and sound, Record / hold-to-Stop, the tag pad and the take's tags.
 *
 * Taps are never lost: each tap is kept in an outbox (and in localStorage)
 * with its performance.now() time and an id made here, and sent until the
 * kit acknowledges it. Every send carries the delay since the tap, so the kit
 * stamps the tap's instant however late the send gets through; the id stops
 * a retried tap being stored twice.
 *
 * Times: every status carries the kit clock (`now_ns`) and, once the take's first
 * frame exists, its start (`started_ns`); the page maps its own clock onto the kit's,
 * so a tap's place in the take (m:ss) shows at once, before the kit answers, and the
 * REC timer runs without asking. While the start is not known yet the page asks again
 * every half second.
 *
 * Honesty: when the kit cannot be reached (the preview and every request fail) the page
 * says so, freezes the REC timer and the sound level at the last thing it knew, and
 * shows taps as saved here and not yet sent; it sends them when the kit is back, and
 * shows the visit, its takes and its film as the kit reports them (e.g. after a restart).
 */
"use strict";

(function () {
  var $ = function (id) { return document.getElementById(id); };
  var root = $("home");
  var UNDO_S = Number(root.getAttribute("data-undo-s")) || 10;
  var FPS = Number(root.getAttribute("data-preview-fps")) || 4;
  var HEARTBEAT_S = Number(root.getAttribute("data-heartbeat-s")) || 15;
  var DISCARD_S = Number(root.getAttribute("data-discard-s")) || 60;
  var HOLD_MS = 1500; // press-and-hold to stop: long enough not to happen by accident
  var RETRY_MS = [200, 400, 800, 1500, 3000]; // then every 3 s until acknowledged
  var START_ASK_MS = 500; // recording, the take's start not known yet: ask again this often
  var PREVIEW_FAILS = 2; // preview polls in a row that fail: the kit is not reachable
  var SOUND_HOLD_MS = 1500; // the word for the sound follows the loudest of the last 1.5 s
  var OUTBOX_KEY = "kit.outbox.v1";
  var LOST_SEEN_KEY = "kit.keylost.seen.v1"; // the key-lost visit this phone said OK to
  var STATE_NAMES = {
    idle: "Ready", recording: "REC", finalising: "Saving the take…",
    cutting: "Making film", error: "Problem", loading: "Connecting…",
  };

  var model = {
    status: null, statusAt: 0, take: { id: null, started_ns: null }, visit: null, visitAt: 0,
    labels: [], tags: new Map(), eventId: 0, keyLost: null,
    detail: null, // GET /api/visits/<open visit>: its takes and film, between takes
    offsetMs: null, // the kit clock minus the page clock (ms), from the statuses
  };
  var outbox = new Map(); // tag id -> {id, label, note, t, wall, tries, inflight, undone, patch}
  var hiddenIds = new Set(); // deleted here, before the kit confirmed it
  var toast = new Kit.Toast($("toast"));
  var noteButton = $("toast-note");

  /* ---------- can the kit be reached? ---------- */

  var link = { ok: true, stream: true, lastOkAt: performance.now(), previewFails: 0 };

  /* The kit answered (anything at all). */
  function heard() {
    link.lastOkAt = performance.now();
    link.previewFails = 0;
    if (link.ok) return;
    link.ok = true;
    renderLink();
    resync();
    flush();
  }

  /* A request did not get through. */
  function unreachable() {
    if (!link.ok) return;
    link.ok = false;
    renderLink();
    renderTags();
    renderStatus();
  }

  /* Kit.api, noting whether the kit answered. */
  function call(method, path, body, options) {
    return Kit.api(method, path, body, options).then(function (r) {
      heard();
      return r;
    }, function (err) {
      unreachable();
      throw err;
    });
  }

  function renderLink() {
    root.setAttribute("data-link", link.ok ? "ok" : "offline");
    var conn = $("conn");
    var text = $("conn-text");
    conn.classList.toggle("offline", !link.ok);
    if (!link.ok) {
      text.textContent = state() === "recording" ?
        "Kit not reachable — it keeps recording; your taps are saved and will be sent." :
        "Kit not reachable. Keep this phone on the kit's Wi-Fi: the page reconnects by itself.";
    } else {
      text.textContent = "Reconnecting to the kit…";
    }
    conn.hidden = link.ok && link.stream;
    renderSound();
  }

  function showConn(bad) {
    link.stream = !bad;
    renderLink();
  }

  /* ---------- the clocks ---------- */

  function state() { return model.status ? model.status.state : "loading"; }

  /* The takes whose films the kit is still making: a take can start meanwhile. */
  function saving() { return (model.status && model.status.finalising_take_ids) || []; }

  /* The kit can start a take: also while the last take's film or the visit's is made. */
  function canRecord(st) { return st === "idle" || st === "error" || st === "finalising" || st === "cutting"; }

  /* A status's kit clock reading, against this page's clock. The smallest delay seen is the
   * best guess (the answer took at least that long), unless the kit's clock began again. */
  function noteKitClock(status, at) {
    if (status.now_ns == null) return;
    var offset = status.now_ns / 1e6 - at;
    if (model.offsetMs == null || offset > model.offsetMs || offset < model.offsetMs - 250) model.offsetMs = offset;
  }

  /* The kit clock (ns) at page instant t (performance.now() ms), or null. */
  function kitNs(t) { return model.offsetMs == null ? null : (t + model.offsetMs) * 1e6; }

  /* The first frame of the take the page shows (kit clock), or null while not known. */
  function takeStart() {
    var s = model.status;
    if (s && s.state === "recording") {
      if (s.take_id === model.take.id && model.take.started_ns != null) return model.take.started_ns;
      return s.started_ns != null ? s.started_ns : null;
    }
    return model.take.started_ns;
  }

  /* Seconds into the take the page shows at page instant t, or null. */
  function takeSecondsAt(t) {
    var start = takeStart();
    var k = kitNs(t);
    return start == null || k == null ? null : Math.max(0, (k - start) / 1e9);
  }

  /* The REC timer: seconds into the recording take at page instant t, or null. */
  function elapsedAt(t) { return state() === "recording" ? takeSecondsAt(t) : null; }

  /* A tap's page instant (from Date.now() for one kept from an earlier page load). */
  function tapTime(item) { return item.t != null ? item.t : performance.now() - (Date.now() - item.wall); }

  /* Where a tap falls in its take, in seconds, or null. */
  function tapOffset(item) { return takeSecondsAt(tapTime(item)); }

  function tagOffset(tag) {
    var start = takeStart();
    return start == null ? null : (tag.at_ns - start) / 1e9;
  }

  function applyStatus(status) {
    var hadStart = takeStart();
    model.status = status;
    model.statusAt = performance.now();
    noteKitClock(status, model.statusAt);
    if (status.state === "recording" && status.take_id === model.take.id && status.started_ns != null) {
      model.take.started_ns = status.started_ns;
    }
    renderStatus();
    if (takeStart() !== hadStart) renderTags();
  }

  function applyState(s) {
    model.eventId = s.event_id;
    model.take = { id: s.take.id, started_ns: s.take.started_ns };
    var visitChanged = (model.visit ? model.visit.id : null) !== (s.visit ? s.visit.id : null);
    model.visit = s.visit;
    model.visitAt = performance.now();
    if (visitChanged) model.detail = null;
    model.keyLost = s.key_lost || null;
    model.tags = new Map();
    s.tags.forEach(function (t) { model.tags.set(t.id, t); });
    if (JSON.stringify(s.labels) !== JSON.stringify(model.labels)) {
      model.labels = s.labels;
      renderPad();
    }
    applyStatus(s.status);
    renderTags();
    renderVisit();
    renderKeyLost();
    loadDetail();
  }

  /* ---------- dates ---------- */

  function pad2(n) { return ("0" + n).slice(-2); }
  function isoDay(d) { return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()); }
  function addDays(day, n) { return new Date(day.getFullYear(), day.getMonth(), day.getDate() + n); }
  var parseDay = Kit.parseDay;
  var timeLabel = Kit.timeLabel;

  /* ---------- the visit bar ---------- */

  function renderVisit() {
    var v = model.visit;
    var bar = $("visit-bar");
    bar.setAttribute("data-visit", v ? "open" : "none");
    root.setAttribute("data-visit", v ? "open" : "none");
    $("visit-start").hidden = !!v;
    $("visit-end").hidden = !v;
    $("visit-name").disabled = !v;
    ["consent-line", "consent-rec"].forEach(function (id) {
      var line = $(id);
      line.hidden = !(v && v.consent);
      if (!line.hidden) line.textContent = (id === "consent-rec" ? v.case_ref + " · " : "") + Kit.consentText(v.consent);
    });
    renderHint();
    renderDiscard();
    renderDetail();
    if (!v) {
      $("visit-ref").textContent = "No visit open";
      $("visit-sub").textContent = "Start one with the family's consent";
      return;
    }
    $("visit-ref").textContent = v.case_ref;
    var parts = [];
    if (v.elapsed_s != null) parts.push(Kit.clock(v.elapsed_s + (performance.now() - model.visitAt) / 1000));
    else if (timeLabel(v.started_wall)) parts.push("since " + timeLabel(v.started_wall));
    parts.push(v.takes + (v.takes === 1 ? " take" : " takes"));
    $("visit-sub").textContent = parts.join(" · ");
  }

  /* Between takes: the open visit's takes and film as the kit has them (after a restart,
   * the take it recovered, and whether the film is being made). */
  var detailBusy = false;
  var detailAgain = false;
  function loadDetail() {
    var v = model.visit;
    if (!v || state() === "recording" || state() === "loading") { model.detail = null; renderDetail(); return; }
    if (detailBusy) { detailAgain = true; return; }
    detailBusy = true;
    call("GET", "/api/visits/" + encodeURIComponent(v.id)).then(function (r) {
      if (r.ok && model.visit && r.body.visit.id === model.visit.id) model.detail = r.body;
      renderDetail();
      renderTags();
    }, function () { /* not reachable: the banner says so */ }).then(function () {
      detailBusy = false;
      if (detailAgain) { detailAgain = false; loadDetail(); }
    });
  }

  function filmText(d) {
    var s = model.status;
    if (!d.takes.length) return "";
    if (s && s.cut_visit_id === d.visit.id) {
      return "Film: being made" + (s.cut_progress != null ? " " + Math.round(s.cut_progress * 100) + "%" : "…");
    }
    if (!Kit.mayReview(d.visit)) return "No film on phones: the family did not agree to a review";
    var making = saving();
    if (d.takes.some(function (t) { return making.indexOf(t.id) >= 0; })) return "Film: made once the take is saved";
    if (d.cut_error) return "Film: cannot be read";
    if (!d.cut) return "Film: not made yet";
    var clips = (d.cut.clips || []).length;
    if (!d.cut.up_to_date) return "Film: being brought up to date";
    if (!clips) return "Film: no moments tagged yet";
    return "Film ready · " + clips + (clips === 1 ? " moment" : " moments");
  }

  function recoveredTakes(d) {
    return d ? d.takes.filter(function (t) { return t.recovered; }).map(function (t) { return t.seq; }) : [];
  }

  function renderDetail() {
    var line = $("visit-detail");
    var d = model.detail;
    if (!model.visit || !d || state() === "recording") { line.hidden = true; return; }
    var parts = [];
    var recovered = recoveredTakes(d);
    if (recovered.length === 1) parts.push("Take " + recovered[0] + " was recovered after the kit restarted");
    else if (recovered.length) parts.push("Takes " + recovered.join(", ") + " were recovered after the kit restarted");
    var film = filmText(d);
    if (film) parts.push(film);
    line.textContent = parts.join(" · ");
    line.hidden = !parts.length;
  }
  /* The kit lost its key to a power cut or a reboot while the newest visit was open. */
  function renderKeyLost() {
    var v = model.keyLost;
    var seen = null;
    try { seen = localStorage.getItem(LOST_SEEN_KEY); } catch (e) { /* private mode */ }
    var box = $("key-lost");
    box.hidden = !v || v.id === seen;
    if (box.hidden) return;
    var when = timeLabel(v.started_wall);
    $("key-lost-text").textContent = "The kit lost power during " +
      (when ? "the visit started " + when : "the last visit") + ". Its recording is safe and " +
      "encrypted for your organisation, but this kit can no longer open it. " +
      "Start a new visit to go on filming.";
  }

  /* The start-visit sheet asks for the case reference and the family's consent; the
   * same sheet, without the consent, changes an open visit's case reference. */
  var form = $("visit-form");
  var sheetMode = "start"; // "start" | "record" (Record was pressed with no visit open) | "rename"
  var eraseEdited = false;
  var consentInfo = {
    erase_by: form.getAttribute("data-erase-by"),
    today: form.getAttribute("data-today"),
    max_days: Number(form.getAttribute("data-max-days")) || 3660,
    ready: form.getAttribute("data-ready") === "yes",
  };

  function today() { return parseDay(consentInfo.today) || parseDay(isoDay(new Date())); }

  function applyConsentInfo(info) {
    consentInfo = info;
    var erase = $("consent-erase");
    var first = today();
    erase.min = isoDay(addDays(first, 1));
    erase.max = isoDay(addDays(first, info.max_days || 3660));
    if (!eraseEdited) erase.value = info.erase_by || "";
    var rename = sheetMode === "rename";
    $("visit-no-key").hidden = rename || info.ready;
    $("visit-save").disabled = !rename && !info.ready;
  }

  function openVisitSheet(mode) {
    var v = model.visit;
    sheetMode = mode || (v ? "rename" : "start");
    var rename = sheetMode === "rename";
    $("visit-sheet-title").textContent = rename ? "Case reference" : "Start a visit";
    $("visit-save").textContent = rename ? "Save" : sheetMode === "record" ? "Start visit and record" : "Start visit";
    $("visit-lead").hidden = sheetMode !== "record";
    $("consent-fields").hidden = rename;
    if (rename) $("visit-case-ref").value = v.case_ref;
    else if ($("visit-case-ref").getAttribute("data-for") === "rename") $("visit-case-ref").value = "";
    $("visit-case-ref").setAttribute("data-for", rename ? "rename" : "start");
    $("visit-error").hidden = true;
    applyConsentInfo(consentInfo);
    $("visit-sheet").hidden = false;
    $("visit-form").scrollTop = 0;
    $("visit-case-ref").focus();
    if (!rename) {
      // The suggested erase-by date needs the kit's idea of today, which the page's clock
      // may only just have given it.
      call("GET", "/api/consent").then(function (r) {
        if (r.ok && !$("visit-sheet").hidden) applyConsentInfo(r.body);
      }, function () { /* offline: the values the page came with */ });
    }
  }

  function closeVisitSheet() { $("visit-sheet").hidden = true; }

  function resetConsentForm() {
    $("visit-case-ref").value = "";
    $("consent-by").value = "";
    Array.prototype.forEach.call(document.querySelectorAll('#consent-purposes input'), function (b) { b.checked = false; });
    $("consent-purposes").classList.remove("missing");
    eraseEdited = false;
  }

  function visitProblem(text, field) {
    var error = $("visit-error");
    error.textContent = text;
    error.hidden = false;
    if (field) field.focus();
    error.scrollIntoView({ block: "nearest" });
  }

  /* What the guider filled in, or null after saying what is missing. */
  function consentFromForm() {
    var purposes = [];
    Array.prototype.forEach.call(document.querySelectorAll('#consent-purposes input'), function (b) {
      if (b.checked) purposes.push(b.value);
    });
    var by = $("consent-by").value;
    var erase = $("consent-erase").value;
    var day = parseDay(erase);
    if (!by) { visitProblem("Choose who gave consent.", $("consent-by")); return null; }
    if (!purposes.length) {
      $("consent-purposes").classList.add("missing");
      visitProblem("Tick at least one purpose the family agreed to (e.g. review).", null);
      return null;
    }
    if (!day) { visitProblem("Choose the erase-by date the family agreed.", $("consent-erase")); return null; }
    if (day <= today()) { visitProblem("The erase-by date must be after today.", $("consent-erase")); return null; }
    return { given_by: by, purposes: purposes, erase_by: erase };
  }

  function saveVisit(e) {
    e.preventDefault();
    var v = model.visit;
    var mode = sheetMode;
    var ref = $("visit-case-ref").value.trim();
    if (!ref) { visitProblem("Type the case reference (no names).", $("visit-case-ref")); return; }
    var request;
    if (mode === "rename") {
      request = call("PATCH", "/api/visits/" + encodeURIComponent(v.id), { case_ref: ref });
    } else {
      var consent = consentFromForm();
      if (!consent) return;
      request = call("POST", "/api/visits", { case_ref: ref, consent: consent });
    }
    $("visit-save").disabled = true;
    request.then(function (r) {
      $("visit-save").disabled = false;
      if (!r.ok && r.status === 409 && mode !== "rename") {
        // A visit is open already: this phone's own earlier try got through (its answer
        // was lost), or another phone started one. Show it rather than the refusal.
        resync().then(function () {
          var open = model.visit;
          if (!open) { visitProblem(r.body.error || "The kit refused that (409)", null); return; }
          closeVisitSheet();
          if (open.case_ref === ref) {
            resetConsentForm();
            if (mode === "record") record();
          } else {
            notify("Visit " + open.case_ref + " is already open (started on another phone)", 8, null, "bad");
          }
        });
        return;
      }
      if (!r.ok) {
        var why = r.body.error || "The kit refused that (" + r.status + ")";
        visitProblem(why.charAt(0).toUpperCase() + why.slice(1), null);
        resync();
        return;
      }
      closeVisitSheet();
      if (mode !== "rename") resetConsentForm();
      if (r.body.visit) {
        model.visit = r.body.visit;
        model.visitAt = performance.now();
        renderVisit();
      }
      if (mode === "record" && model.visit) record();
      else resync();
    }, function () {
      $("visit-save").disabled = false;
      visitProblem("Cannot reach the kit. Try again.", null);
    });
  }

  function endVisit() {
    var v = model.visit;
    $("end-sheet").hidden = true;
    if (!v) return;
    call("POST", "/api/visits/" + encodeURIComponent(v.id) + "/end").then(function (r) {
      if (!r.ok) notify(r.body.error || "Could not end the visit (" + r.status + ")", 6, null, "bad");
      else notify("Visit ended: " + v.case_ref + ". Once its film is made it is sealed.", 6, null, "good");
      resync();
    }, function () { notify("Cannot reach the kit: the visit is still open", 6, null, "bad"); });
  }

  /* ---------- discard: the family asked to stop and discard ---------- */

  function discardSpan() {
    if (DISCARD_S === 60) return "the last minute";
    if (DISCARD_S % 60 === 0) return "the last " + DISCARD_S / 60 + " minutes";
    return "the last " + DISCARD_S + " seconds";
  }

  /* While recording, or between takes when the open visit has a take to discard from. */
  function discardable() {
    var st = state();
    if (st === "recording") return true;
    return st !== "loading" && !!model.visit && model.take.id != null;
  }

  /* Recording: beside Stop. Between takes: in the last take's head. */
  function renderDiscard() { $("discard-take").hidden = state() === "recording" || !discardable(); }

  var pendingDiscard = null; // {what, at}: sent; the kit's take event confirms it

  function openDiscard() {
    var recording = state() === "recording";
    $("discard-title").textContent = recording ? "Stop and discard?" : "Discard from the last take?";
    $("discard-text").textContent = (recording ? "Recording stops now. " : "") +
      "What you discard is destroyed for good: nobody can get it back.";
    $("discard-last").textContent = "Discard " + discardSpan();
    $("discard-sheet").hidden = false;
  }

  function discard(whole) {
    $("discard-sheet").hidden = true;
    var what = whole ? "the whole take" : discardSpan();
    Kit.vibrate(80);
    notify("Discarding " + what + "…", 8, null, null);
    pendingDiscard = { what: what, at: performance.now() };
    call("POST", "/api/discard", { whole: whole }).then(function (r) {
      if (!r.ok) {
        pendingDiscard = null;
        notify("Not discarded: " + (r.body.error || r.status), 10, null, "bad");
      } else if (r.body.status) {
        applyStatus(r.body.status);
      }
      resync();
    }, function () {
      pendingDiscard = null;
      notify("Cannot reach the kit: nothing was discarded. Try again, or hold the kit's button for 3 s.", 12, null, "bad");
    });
  }

  function discardDone() {
    if (!pendingDiscard || performance.now() - pendingDiscard.at > 60000) { pendingDiscard = null; return; }
    notify("✓ Discarded " + pendingDiscard.what, 6, null, "good");
    pendingDiscard = null;
  }


  var resyncing = null;
  var resyncAgain = false;
  function resync() {
    if (resyncing) { resyncAgain = true; return resyncing; }
    resyncing = call("GET", "/api/state").then(function (r) {
      if (r.ok) applyState(r.body);
    }, function () { /* not reachable: the banner says so */ }).then(function () {
      resyncing = null;
      if (resyncAgain) { resyncAgain = false; resync(); }
    });
    return resyncing;
  }

  /* ---------- rendering ---------- */

  /* 1006 minutes -> "Room for about 16 hours": what the card still holds, in plain words. */
  function roomText(minutes) {
    var m = Math.floor(minutes);
    if (m >= 120) return "Room for about " + Math.floor(m / 60) + " hours";
    if (m >= 60) return "Room for about 1 hour" + (m >= 70 ? " " + (m - 60) + " minutes" : "");
    if (m >= 2) return "Room for about " + m + " minutes";
    return "The card is full";
  }

  function renderStatus() {
    var s = model.status;
    var st = state();
    if (root.getAttribute("data-state") !== st) {
      root.setAttribute("data-state", st);
      $("middle").scrollTop = 0; // another screen: from its top
    }
    var name = STATE_NAMES[st] || st;
    if (st === "cutting" && s.cut_progress != null) name += " " + Math.round(s.cut_progress * 100) + "%";
    // Recording while the last take's film is still being made: say both.
    var busy = st === "recording" && saving().length > 0;
    if (busy) name += " · saving last take…";
    root.setAttribute("data-saving", busy ? "yes" : "no");
    $("state-text").textContent = name;
    if (s) {
      var storage = $("storage");
      storage.textContent = roomText(s.minutes_left);
      storage.title = Math.floor(s.minutes_left) + " minutes of recording left on the card";
      var low = $("storage-low");
      low.hidden = !s.low_storage;
      if (s.low_storage) {
        low.textContent = "The card is nearly full: about " + Math.max(0, Math.floor(s.minutes_left)) +
          " minutes of recording left.";
      }
    }
    var error = $("error");
    // "No visit is open" is old news once one is.
    var shown = s && s.error && !(model.visit && /^no visit is open/.test(s.error)) ? s.error : "";
    error.hidden = !shown;
    if (shown) error.textContent = shown;
    // Outside the error state the kit works on: a warning ("Microphone lost: recording
    // picture only" while the take goes on), not an error.
    error.classList.toggle("warning", st !== "error");
    var record = $("record");
    // In the error state Record stays live: the kit retries the camera on the next start;
    // and while a film is being made: the next take need not wait for it.
    var ready = canRecord(st);
    record.disabled = !ready;
    record.lastChild.textContent = ready ? "Record" : (STATE_NAMES[st] || st);
    renderHint();
    renderDiscard();
    renderDetail();
    var review = $("review-link");
    review.hidden = !(s && s.visit_id) || st === "recording";
    if (s && s.visit_id) review.href = "/visits/" + encodeURIComponent(s.visit_id);
    if (st === "recording") KitAwake.engage();
    else KitAwake.release();
    renderLink();
    tick();
  }

  function renderHint() {
    var ready = canRecord(state());
    $("hint").textContent = !ready ? "" : model.visit ? "Frame the shot, then press Record." :
      "Frame the shot. Record asks for the family's consent first.";
  }

  var startAsk = null;
  function tick() {
    var now = performance.now();
    // Not reachable: the timer stops at the last moment the kit was heard from.
    var e = elapsedAt(link.ok ? now : Math.min(now, link.lastOkAt));
    $("elapsed").textContent = Kit.clock(e == null ? 0 : e);
    if (model.visit && model.visit.elapsed_s != null) renderVisit();
    if (state() === "recording" && takeStart() == null && !startAsk && link.ok) {
      // The take's first frame was not there yet when the page asked: ask again.
      startAsk = setTimeout(function () { startAsk = null; if (takeStart() == null) resync(); }, START_ASK_MS);
    }
  }

  function renderPad() {
    var pad = $("pad");
    pad.textContent = "";
    var plain = model.labels.filter(function (l) { return l.indexOf("★") < 0; }).length;
    var seen = 0;
    model.labels.forEach(function (label) {
      var b = Kit.el("button", "tag", label);
      b.type = "button";
      b.setAttribute("data-label", label);
      if (label.indexOf("★") >= 0) b.className += " star";
      else if (++seen === plain && plain % 2 === 1) b.className += " span2";
      pad.appendChild(b);
    });
    pad.setAttribute("data-count", String(model.labels.length));
  }

  /* The take's tags and this phone's unsent taps, newest first (by the kit's clock). */
  function rows() {
    var list = [];
    model.tags.forEach(function (t) {
      if (!hiddenIds.has(t.id) && (model.take.id == null || t.take_id === model.take.id)) {
        list.push({ id: t.id, label: t.label, note: t.note, author: t.author, at: tagOffset(t), order: t.at_ns, pending: false });
      }
    });
    outbox.forEach(function (item) {
      if (!model.tags.has(item.id) && !item.undone && !hiddenIds.has(item.id)) {
        var k = kitNs(tapTime(item));
        list.push({
          id: item.id, label: item.label, note: item.note, author: root.getAttribute("data-phone"),
          at: tapOffset(item), order: k == null ? Infinity : k, pending: true,
        });
      }
    });
    list.sort(function (a, b) { return b.order - a.order; });
    return list;
  }

  var newestShown = null;
  function renderTags() {
    var list = rows();
    var ol = $("taglist");
    ol.textContent = "";
    var st = state();
    var title = $("tags-title");
    if (st === "recording") {
      title.textContent = list.length ? "Tags this take · " + list.length : "No tags yet";
      $("pad-hint").textContent = list.length ? (list.length === 1 ? "1 tag" : list.length + " tags") +
        " this take, newest first. Tap a label just after a good moment." : "Tap a label just after a good moment.";
    } else {
      var recovered = model.detail && model.detail.takes.some(function (t) { return t.id === model.take.id && t.recovered; });
      var head = recovered ? "Last take (recovered)" : "Last take";
      title.textContent = list.length ? head + " · " + list.length + (list.length === 1 ? " tag" : " tags") :
        discardable() ? head : "";
    }
    $("tags-section").hidden = st !== "recording" && !list.length && !discardable();
    list.forEach(function (row) {
      var li = Kit.el("li", "tagrow" + (row.pending ? " pending" : ""));
      li.setAttribute("data-id", row.id);
      li.appendChild(Kit.el("span", "t", row.at == null ? "…" : Kit.clock(row.at)));
      var what = Kit.el("span", "what");
      what.appendChild(Kit.el("span", "lbl", row.label));
      if (row.note) what.appendChild(Kit.el("span", "note", row.note));
      what.appendChild(Kit.el("span", "by", !row.pending ? row.author :
        link.ok ? "sending…" : "not sent yet"));
      li.appendChild(what);
      var edit = Kit.el("button", "btn small edit", "Note");
      edit.type = "button";
      edit.setAttribute("aria-label", "Note or label for " + row.label);
      var del = Kit.el("button", "btn small del", "✕");
      del.type = "button";
      del.setAttribute("aria-label", "Delete tag " + row.label);
      li.appendChild(edit);
      li.appendChild(del);
      ol.appendChild(li);
    });
    // The newest tag is always in sight: a new one brings the list back to its top.
    var newest = list.length ? list[0].id : null;
    if (newest !== newestShown) $("middle").scrollTop = 0;
    newestShown = newest;
  }

  function describe(id) {
    var t = model.tags.get(id);
    var item = outbox.get(id);
    if (!t && !item) return "Tag";
    var at = t ? tagOffset(t) : tapOffset(item);
    return (t || item).label + (at == null ? "" : " · " + Kit.clock(at));
  }

  /* ---------- the outbox: taps until acknowledged ---------- */

  function saveOutbox() {
    try {
      var items = [];
      outbox.forEach(function (i) { items.push({ id: i.id, label: i.label, note: i.note, wall: i.wall, undone: i.undone }); });
      localStorage.setItem(OUTBOX_KEY, JSON.stringify(items));
    } catch (e) { /* private mode: the in-memory outbox still retries */ }
  }

  function loadOutbox() {
    try {
      var items = JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]");
      items.forEach(function (i) {
        // From an earlier page load: performance.now() restarted, so the delay comes from Date.now().
        outbox.set(i.id, { id: i.id, label: i.label, note: i.note || "", t: null, wall: i.wall, tries: 0, inflight: false, undone: !!i.undone, patch: null });
      });
    } catch (e) { /* nothing stored */ }
  }

  function send(item) {
    if (item.inflight || !outbox.has(item.id)) return;
    item.inflight = true;
    clearTimeout(item.timer);
    var delay = item.t != null ? performance.now() - item.t : Date.now() - item.wall;
    call("POST", "/api/tags", { id: item.id, label: item.label, note: item.note, delay_ms: Math.max(0, delay) }, { timeoutMs: 5000 })
      .then(function (r) {
        item.inflight = false;
        if (r.ok) { acknowledged(item, r.body.tag); return; }
        if (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429) {
          outbox.delete(item.id);
          saveOutbox();
          renderTags();
          notify("Not saved: " + (r.body.error || r.status), 6, null, "bad");
          return;
        }
        retry(item);
      }, function () {
        item.inflight = false;
        retry(item);
      });
  }

  function retry(item) {
    var wait = RETRY_MS[Math.min(item.tries, RETRY_MS.length - 1)];
    item.tries += 1;
    item.timer = setTimeout(function () { send(item); }, wait);
  }

  function flush() { outbox.forEach(function (item) { send(item); }); }

  function acknowledged(item, tag) {
    outbox.delete(item.id);
    saveOutbox();
    model.tags.set(tag.id, tag);
    if (item.undone) {
      hiddenIds.add(tag.id);
      reliable("DELETE", "/api/tags/" + tag.id);
    } else if (item.patch) {
      reliable("PATCH", "/api/tags/" + tag.id, item.patch);
    }
    if (toast.tagId === item.id && !item.undone) toast.setText("✓ " + describe(tag.id), "good");
    renderTags();
  }

  /* Edits and deletions: retried a few times, then reported. */
  function reliable(method, path, body, tries) {
    var n = tries || 0;
    return call(method, path, body).then(function (r) {
      if (r.ok || r.status === 404) return r;
      if (r.status >= 500 && n < 5) return later(method, path, body, n);
      notify("Not done: " + (r.body.error || r.status), 6, null, "bad");
      return r;
    }, function () {
      if (n < 5) return later(method, path, body, n);
      notify("Cannot reach the kit", 6, null, "bad");
      return null;
    });
  }
  function later(method, path, body, n) {
    return new Promise(function (resolve) {
      setTimeout(function () { resolve(reliable(method, path, body, n + 1)); }, RETRY_MS[Math.min(n, RETRY_MS.length - 1)]);
    });
  }

  /* ---------- tapping, undo, notes ---------- */

  var downAt = new Map();

  function tap(label, t, button) {
    var item = { id: Kit.newId(), label: label, note: "", t: t, wall: Date.now() - (performance.now() - t), tries: 0, inflight: false, undone: false, patch: null };
    outbox.set(item.id, item);
    saveOutbox();
    send(item);
    Kit.vibrate(30);
    button.classList.remove("hit");
    void button.offsetWidth; // restart the flash animation
    button.classList.add("hit");
    showTagToast(item.id, describe(item.id) + " …");
    renderTags();
  }

  function notify(text, seconds, onUndo, kind) {
    toast.show(text, seconds, onUndo, kind);
    toast.tagId = null;
    noteButton.hidden = true;
  }

  function showTagToast(id, text) {
    toast.show(text, UNDO_S, function () { removeTag(id); });
    toast.tagId = id;
    noteButton.hidden = false;
    noteButton.onclick = function () { openSheet(id); };
  }

  function removeTag(id) {
    var label = describe(id);
    hiddenIds.add(id);
    var item = outbox.get(id);
    if (item) { item.undone = true; saveOutbox(); } else reliable("DELETE", "/api/tags/" + id);
    renderTags();
    notify("Deleted " + label, UNDO_S, function () { restoreTag(id); });
  }

  function restoreTag(id) {
    hiddenIds.delete(id);
    var item = outbox.get(id);
    if (item) { item.undone = false; saveOutbox(); } else reliable("POST", "/api/tags/" + id + "/restore");
    renderTags();
    notify("Restored " + describe(id), 3);
  }

  var sheetId = null;
  function openSheet(id) {
    var t = model.tags.get(id) || outbox.get(id);
    if (!t) return;
    sheetId = id;
    var select = $("sheet-label");
    select.textContent = "";
    var labels = model.labels.slice();
    if (labels.indexOf(t.label) < 0) labels.push(t.label);
    labels.forEach(function (l) {
      var o = Kit.el("option", "", l);
      o.value = l;
      if (l === t.label) o.selected = true;
      select.appendChild(o);
    });
    $("sheet-title").textContent = describe(id);
    $("sheet-note").value = t.note || "";
    $("sheet").hidden = false;
    $("sheet-note").focus();
  }

  function closeSheet() { $("sheet").hidden = true; sheetId = null; }

  function saveSheet(event) {
    event.preventDefault();
    var id = sheetId;
    closeSheet();
    if (!id) return;
    var values = { label: $("sheet-label").value, note: $("sheet-note").value.trim() };
    var item = outbox.get(id);
    if (item) {
      // Not acknowledged yet: the edit goes after the tap.
      item.patch = values;
      item.label = values.label;
      item.note = values.note;
      saveOutbox();
    } else {
      var old = model.tags.get(id);
      if (old) model.tags.set(id, Object.assign({}, old, values));
      reliable("PATCH", "/api/tags/" + id, values);
    }
    renderTags();
    notify("✓ Note saved: " + describe(id), 3, null, "good");
  }

  /* ---------- record and hold-to-stop ---------- */

  var recordPressedAt = -1e9;
  function record() {
    if (state() === "loading") return; // not yet known whether a visit is open
    if (!model.visit) { openVisitSheet("record"); return; } // nothing records without consent
    var button = $("record");
    button.disabled = true;
    recordPressedAt = performance.now();
    call("POST", "/api/start").then(function (r) {
      if (r.ok) { applyStatus(r.body.status); resync(); return; }
      notify(r.body.error || "The kit could not start (" + r.status + ")", 6, null, "bad");
      resync();
    }, function () {
      notify("Cannot reach the kit", 4, null, "bad");
      button.disabled = false;
    });
  }

  var stop = $("stop");
  var holdTimer = null;
  var hintTimer = null;
  // When a hold stops the take, Stop vanishes under the finger: the click the lifted
  // finger makes must not land on whatever the idle screen shows there. Clicks are
  // swallowed from the end of the hold until just after the finger lifts (10 s at most).
  var swallowUntil = 0;
  var swallowLift = false;
  document.addEventListener("click", function (e) {
    if (performance.now() < swallowUntil) { e.preventDefault(); e.stopPropagation(); }
  }, true);
  ["pointerup", "touchend", "keyup"].forEach(function (kind) {
    document.addEventListener(kind, function () {
      if (swallowLift) { swallowLift = false; swallowUntil = performance.now() + 400; }
    }, true);
  });
  function startHold() {
    if (holdTimer) return;
    clearTimeout(hintTimer);
    stop.classList.add("holding");
    stop.querySelector(".stop-label").lastChild.textContent = "Keep holding…";
    holdTimer = setTimeout(function () {
      holdTimer = null;
      swallowLift = true;
      swallowUntil = performance.now() + 10000;
      stop.classList.remove("holding");
      stop.querySelector(".stop-label").lastChild.textContent = "Stopping…";
      Kit.vibrate(80);
      call("POST", "/api/stop").then(function (r) {
        if (!r.ok) notify(r.body.error || "Could not stop (" + r.status + ")", 6, null, "bad");
        resync();
      }, function () { notify("Cannot reach the kit: hold again", 6, null, "bad"); })
        .then(function () { stop.querySelector(".stop-label").lastChild.textContent = "Hold to stop"; });
    }, HOLD_MS);
  }
  function cancelHold() {
    if (!holdTimer) return;
    clearTimeout(holdTimer);
    holdTimer = null;
    stop.classList.remove("holding");
    var label = stop.querySelector(".stop-label").lastChild;
    label.textContent = "Hold 2 s to stop";
    hintTimer = setTimeout(function () { label.textContent = "Hold to stop"; }, 2000);
  }


  /* ---------- live: events, preview, sound ---------- */

  var opened = false;
  var live = new Kit.Live({
    after: function () { return model.eventId; },
    seen: function (id) { model.eventId = id; },
    // An event on a stream opened earlier proves little (a dead link can hold a stream
    // open for a while); a request that gets through, or a stream that opens, does.
    onEvent: function (kind, data) { onEvent(kind, data); },
    onOpen: function () {
      heard();
      // Back after a break (the kit may have restarted meanwhile): what is true now.
      if (opened) resync();
      opened = true;
      flush();
    },
    showConn: function (bad) { showConn(bad); },
    reload: function () { return resync(); },
    heartbeatS: HEARTBEAT_S,
  });
  function connect() { live.connect(); }

  function onEvent(kind, data) {
    // export: a copy to a USB stick, shown on the visits page; present: the film on a screen.
    if (kind === "heartbeat" || kind === "phones" || kind === "export" || kind === "present") return;
    if (kind === "status") {
      var old = model.status;
      applyStatus(data);
      // A new state or take: fetch its tags (and, between takes, the visit's takes and film).
      if (!old || old.state !== data.state || old.take_id !== data.take_id) resync();
    } else if (kind === "tag") {
      if (data.action === "deleted") {
        model.tags.delete(data.tag_id);
        hiddenIds.delete(data.tag_id);
        renderTags();
        return;
      }
      var tag = data.tag;
      if (!tag || (model.take.id != null && tag.take_id !== model.take.id)) { resync(); return; }
      model.tags.set(tag.id, tag);
      if (data.action === "restored") hiddenIds.delete(tag.id);
      renderTags();
    } else if (kind === "labels") {
      model.labels = data.labels;
      renderPad();
    } else if (kind === "refused") {
      pendingDiscard = null;
      notify(data.reason || "The kit refused", 8, null, "bad");
      // Record pressed here just as the visit ended elsewhere: ask for consent again.
      if (/^no visit is open/.test(data.reason || "") && performance.now() - recordPressedAt < 10000) {
        recordPressedAt = -1e9;
        resync().then(function () { if (!model.visit) openVisitSheet("record"); });
        return;
      }
      resync();
    } else if (kind === "take") {
      if (pendingDiscard) discardDone();
      resync();
    } else if (kind === "device") {
      // The camera or microphone was lost, is back or missing: say it at once (the status
      // that follows keeps it in the banner while it lasts).
      notify(data.message, 8, null, data.state === "back" ? "good" : "bad");
    } else {
      resync(); // visit, cut, resync, and anything new
    }
  }

  var previewSeq = null;
  var previewRunning = false;
  var previewUrl = null;
  function previewStep() {
    if (document.hidden) { previewRunning = false; return; }
    var started = performance.now();
    var url = "/api/preview.jpg" + (previewSeq == null ? "" : "?after=" + previewSeq);
    fetch(url, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { location.href = "/pair"; return null; }
      heard();
      meter(Number(r.headers.get("X-Level-Dbfs")));
      if (r.status !== 200) return null;
      previewSeq = Number(r.headers.get("X-Frame-Seq"));
      // Decoded off screen first, then swapped in: setting a shown image's src to a frame
      // not yet decoded blanks it for a moment (a flicker, and no frame to judge by).
      return r.blob().then(function (blob) {
        var url = URL.createObjectURL(blob);
        var next = new Image();
        next.src = url;
        return next.decode().then(function () {
          var old = previewUrl;
          previewUrl = url;
          $("preview").src = url;
          $("preview-empty").hidden = true;
          if (old) URL.revokeObjectURL(old);
        }, function () {
          URL.revokeObjectURL(url); // a frame that does not decode: the last one stays
        });
      });
    }).catch(function () {
      link.previewFails += 1;
      if (link.previewFails >= PREVIEW_FAILS) unreachable();
    }).then(function () {
      setTimeout(previewStep, Math.max(50, 1000 / FPS - (performance.now() - started)));
    });
  }
  function startPreview() {
    if (previewRunning) return;
    previewRunning = true;
    previewStep();
  }

  /* The sound as a word: the loudest moment of the last 1.5 s, so it does not flicker.
   * Peaks (dBFS): above -3 is about to distort; below -48 the microphone hears little
   * (too far, or covered). The number stays in the meter's title and aria-valuetext. */
  var levels = []; // [page time, dBFS]
  function soundWord(db) {
    if (db <= -100) return "off"; // the kit reports -120 or less when it is not listening
    if (db > -3) return "too loud";
    if (db < -48) return "quiet";
    return "good";
  }

  function meter(db) {
    if (!isFinite(db)) return;
    var now = performance.now();
    levels.push([now, db]);
    while (levels.length && levels[0][0] < now - SOUND_HOLD_MS) levels.shift();
    renderSound();
  }

  function renderSound() {
    var box = $("meter");
    if (!levels.length) return;
    var db = levels[levels.length - 1][1];
    var peak = Math.max.apply(null, levels.map(function (l) { return l[1]; }));
    var fill = $("meter-fill");
    var text = $("meter-text");
    if (!link.ok) {
      // Not reachable: the last level, greyed; no word about a sound this page cannot hear.
      fill.className = "meter-fill stale";
      text.textContent = "Sound: not known";
      box.setAttribute("aria-valuetext", "not known: the kit is not reachable");
      return;
    }
    var pct = Math.max(0, Math.min(1, (db + 60) / 60));
    fill.style.transform = "scaleX(" + pct.toFixed(3) + ")";
    var word = soundWord(peak);
    fill.className = "meter-fill" + (word === "too loud" ? " clip" : db > -12 ? " hot" : "");
    text.textContent = word === "off" ? "Sound: not listening" : "Sound: " + word;
    box.setAttribute("data-sound", word);
    box.setAttribute("aria-valuenow", String(Math.max(-60, Math.round(db))));
    var number = db <= -100 ? "the microphone is not listening" : word + ", peak " + Math.round(peak) + " dBFS";
    box.setAttribute("aria-valuetext", number);
    box.title = number;
  }

  /* ---------- wiring ---------- */

  $("pad").addEventListener("pointerdown", function (e) {
    var b = e.target.closest("button.tag");
    // The event's own timestamp is when the finger landed, before any handler ran.
    var t = e.timeStamp > 0 && e.timeStamp <= performance.now() ? e.timeStamp : performance.now();
    if (b) downAt.set(b, t);
  });
  $("pad").addEventListener("click", function (e) {
    var b = e.target.closest("button.tag");
    if (!b) return;
    var now = performance.now();
    var t = downAt.get(b);
    downAt.delete(b);
    tap(b.getAttribute("data-label"), t != null && now - t < 1500 ? t : now, b);
  });
  $("taglist").addEventListener("click", function (e) {
    var b = e.target.closest("button");
    if (!b) return;
    var id = b.closest("li").getAttribute("data-id");
    if (b.classList.contains("del")) removeTag(id);
    else if (b.classList.contains("edit")) openSheet(id);
  });
  $("record").addEventListener("click", record);
  stop.addEventListener("pointerdown", function (e) {
    e.preventDefault();
    if (stop.setPointerCapture) { try { stop.setPointerCapture(e.pointerId); } catch (err) { /* fine */ } }
    startHold();
  });
  ["pointerup", "pointercancel", "lostpointercapture"].forEach(function (k) { stop.addEventListener(k, cancelHold); });
  stop.addEventListener("keydown", function (e) {
    if ((e.key === "Enter" || e.key === " ") && !e.repeat) { e.preventDefault(); startHold(); }
  });
  stop.addEventListener("keyup", cancelHold);
  stop.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  $("sheet-form").addEventListener("submit", saveSheet);
  $("visit-start").addEventListener("click", function () { openVisitSheet("start"); });
  $("visit-name").addEventListener("click", function () { if (model.visit) openVisitSheet("rename"); });
  $("visit-form").addEventListener("submit", saveVisit);
  $("visit-cancel").addEventListener("click", closeVisitSheet);
  $("consent-erase").addEventListener("input", function () { eraseEdited = true; });
  $("consent-purposes").addEventListener("change", function () { $("consent-purposes").classList.remove("missing"); });
  $("discard").addEventListener("click", openDiscard);
  $("discard-take").addEventListener("click", openDiscard);
  $("discard-last").addEventListener("click", function () { discard(false); });
  $("discard-whole").addEventListener("click", function () { discard(true); });
  $("discard-keep").addEventListener("click", function () { $("discard-sheet").hidden = true; });
  $("key-lost-ok").addEventListener("click", function () {
    try { localStorage.setItem(LOST_SEEN_KEY, model.keyLost ? model.keyLost.id : ""); } catch (e) { /* private mode */ }
    $("key-lost").hidden = true;
  });
  $("visit-end").addEventListener("click", function () { $("end-sheet").hidden = false; });
  $("end-cancel").addEventListener("click", function () { $("end-sheet").hidden = true; });
  $("end-confirm").addEventListener("click", endVisit);
  $("sheet-cancel").addEventListener("click", closeSheet);

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    resync();
    flush();
    startPreview();
  });
  window.addEventListener("online", flush);
  setInterval(tick, 250);

  model.labels = Array.prototype.map.call($("pad").querySelectorAll("button.tag"), function (b) { return b.getAttribute("data-label"); });
  renderPad();
  loadOutbox();
  call("POST", "/api/clock", { phone_time_ms: Date.now() }).catch(function () { /* a label only */ });
  resync().then(function () {
    connect();
    flush();
  });
  startPreview();
})();
