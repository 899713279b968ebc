/* Home: live state, preview and level, Record / hold-to-Stop, the tag pad and the take's tags.
 *
 * Taps are never lost: each tap is kept in an outbox (and in localStorage)
 * with its performance.now() time and an id made here, and sent until the
 * kit acknowledges it. Every send carries the delay since the tap, so the kit
 * stamps the tap's instant however late the send gets through; the id stops
 * a retried tap being stored twice.
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
  var OUTBOX_KEY = "kit.outbox.v1";
  var LOST_SEEN_KEY = "kit.keylost.seen.v1"; // the key-lost visit this phone said OK to
  var STATE_NAMES = {
    idle: "Ready", recording: "REC", finalising: "Saving take…",
    cutting: "Making the cut", error: "Problem", loading: "Connecting…",
  };

  var model = {
    status: null, statusAt: 0, take: { id: null, started_ns: null }, visit: null, visitAt: 0,
    labels: [], tags: new Map(), eventId: 0, keyLost: null,
  };
  var outbox = new Map(); // tag id -> {id, label, note, t, wall, tries, inflight, undone, patch}
  var hiddenIds = new Set(); // deleted here, before the kit confirmed it
  var toast = new Kit.Toast($("toast"));
  var noteButton = $("toast-note");

  /* ---------- state ---------- */

  function state() { return model.status ? model.status.state : "loading"; }

  function elapsedAt(t) {
    var s = model.status;
    if (!s || s.state !== "recording") return null;
    return s.elapsed_s + (t - model.statusAt) / 1000;
  }

  function tagOffset(tag) {
    if (model.take.started_ns == null) return null;
    return (tag.at_ns - model.take.started_ns) / 1e9;
  }

  function applyStatus(status) {
    model.status = status;
    model.statusAt = performance.now();
    renderStatus();
  }

  function applyState(s) {
    model.eventId = s.event_id;
    model.take = s.take;
    model.visit = s.visit;
    model.visitAt = performance.now();
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
      Kit.api("GET", "/api/consent").then(function (r) {
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
    var call;
    if (mode === "rename") {
      call = Kit.api("PATCH", "/api/visits/" + encodeURIComponent(v.id), { case_ref: ref });
    } else {
      var consent = consentFromForm();
      if (!consent) return;
      call = Kit.api("POST", "/api/visits", { case_ref: ref, consent: consent });
    }
    $("visit-save").disabled = true;
    call.then(function (r) {
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
    Kit.api("POST", "/api/visits/" + encodeURIComponent(v.id) + "/end").then(function (r) {
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

  function renderDiscard() { $("discard").hidden = !discardable(); }

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
    Kit.api("POST", "/api/discard", { whole: whole }).then(function (r) {
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
    resyncing = Kit.api("GET", "/api/state").then(function (r) {
      if (r.ok) applyState(r.body);
    }, function () { showConn(true); }).then(function () {
      resyncing = null;
      if (resyncAgain) { resyncAgain = false; resync(); }
    });
    return resyncing;
  }

  /* ---------- rendering ---------- */

  function renderStatus() {
    var s = model.status;
    var st = state();
    root.setAttribute("data-state", st);
    var name = STATE_NAMES[st] || st;
    if (st === "cutting" && s.cut_progress != null) name += " " + Math.round(s.cut_progress * 100) + "%";
    $("state-text").textContent = name;
    if (s) {
      ["storage", "storage-rec"].forEach(function (id) {
        var storage = $(id);
        storage.textContent = Math.floor(s.minutes_left) + " min left";
        storage.classList.toggle("low", !!s.low_storage);
      });
    }
    var error = $("error");
    // "No visit is open" is old news once one is.
    var shown = s && s.error && !(model.visit && /^no visit is open/.test(s.error)) ? s.error : "";
    error.hidden = !shown;
    if (shown) error.textContent = shown;
    var record = $("record");
    // In the error state Record stays live: the kit retries the camera on the next start.
    var ready = st === "idle" || st === "error";
    record.disabled = !ready;
    record.lastChild.textContent = ready ? "Record" : (STATE_NAMES[st] || st);
    renderHint();
    renderDiscard();
    var review = $("review-link");
    review.hidden = !(s && s.visit_id) || st === "recording";
    if (s && s.visit_id) review.href = "/visits/" + encodeURIComponent(s.visit_id);
    tick();
  }

  function renderHint() {
    var st = state();
    var ready = st === "idle" || st === "error";
    $("hint").textContent = !ready ? "" : model.visit ? "Frame the shot, then press Record." :
      "Frame the shot. Record asks for the family's consent first.";
  }

  function tick() {
    var e = elapsedAt(performance.now());
    if (e != null) $("elapsed").textContent = Kit.clock(e);
    if (model.visit && model.visit.elapsed_s != null) renderVisit();
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
  }

  function rows() {
    var list = [];
    model.tags.forEach(function (t) {
      if (!hiddenIds.has(t.id) && (model.take.id == null || t.take_id === model.take.id)) {
        list.push({ id: t.id, label: t.label, note: t.note, author: t.author, at: tagOffset(t), pending: false });
      }
    });
    outbox.forEach(function (item) {
      if (!model.tags.has(item.id) && !item.undone && !hiddenIds.has(item.id)) {
        list.push({
          id: item.id, label: item.label, note: item.note, author: root.getAttribute("data-phone"),
          at: item.t != null ? elapsedAt(item.t) : null, pending: true,
        });
      }
    });
    list.sort(function (a, b) { return (b.at == null ? 1e12 : b.at) - (a.at == null ? 1e12 : a.at); });
    return list;
  }

  function renderTags() {
    var list = rows();
    var ol = $("taglist");
    ol.textContent = "";
    var st = state();
    var title = $("tags-title");
    if (st === "recording") title.textContent = list.length ? "Tags this take · " + list.length : "No tags yet";
    else title.textContent = list.length ? "Last take · " + list.length + (list.length === 1 ? " tag" : " tags") :
      discardable() ? "Last take" : "";
    $("tags-section").hidden = st !== "recording" && !list.length && !discardable();
    list.forEach(function (row) {
      var li = Kit.el("li", "tagrow" + (row.pending ? " pending" : ""));
      li.setAttribute("data-id", row.id);
      li.appendChild(Kit.el("span", "t", row.at == null ? "…" : Kit.clock(row.at)));
      var what = Kit.el("span", "what");
      what.appendChild(Kit.el("span", "lbl", row.label));
      if (row.note) what.appendChild(Kit.el("span", "note", row.note));
      what.appendChild(Kit.el("span", "by", row.pending ? "sending…" : row.author));
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
  }

  function showConn(bad) { $("conn").hidden = !bad; }

  function describe(id) {
    var t = model.tags.get(id) || outbox.get(id);
    if (!t) return "Tag";
    var at = t.at_ns != null ? tagOffset(t) : (t.t != null ? elapsedAt(t.t) : null);
    return t.label + (at == null ? "" : " · " + Kit.clock(at));
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
    Kit.api("POST", "/api/tags", { id: item.id, label: item.label, note: item.note, delay_ms: Math.max(0, delay) }, { timeoutMs: 5000 })
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
    showConn(true);
    var wait = RETRY_MS[Math.min(item.tries, RETRY_MS.length - 1)];
    item.tries += 1;
    item.timer = setTimeout(function () { send(item); }, wait);
  }

  function flush() { outbox.forEach(function (item) { send(item); }); }

  function acknowledged(item, tag) {
    outbox.delete(item.id);
    saveOutbox();
    showConn(false);
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
    return Kit.api(method, path, body).then(function (r) {
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
    Kit.api("POST", "/api/start").then(function (r) {
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
      Kit.api("POST", "/api/stop").then(function (r) {
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

  /* ---------- live: events, preview, level ---------- */

  var live = new Kit.Live({
    after: function () { return model.eventId; },
    seen: function (id) { model.eventId = id; },
    onEvent: function (kind, data) { onEvent(kind, data); },
    onOpen: function () { flush(); },
    showConn: function (bad) { showConn(bad); },
    reload: function () { return resync(); },
    heartbeatS: HEARTBEAT_S,
  });
  function connect() { live.connect(); }

  function onEvent(kind, data) {
    // export: a copy to a USB stick, shown on the visits page (4 events a second at most).
    if (kind === "heartbeat" || kind === "phones" || kind === "export") return;
    if (kind === "status") {
      var old = model.status;
      if (old && old.state === data.state && old.take_id === data.take_id) {
        // Status events lack started_ns and now_ns: keep the ones from the last resync.
        applyStatus(Object.assign({}, old, data));
      } else {
        resync(); // a new state or take: fetch its start and tags
      }
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
    } else {
      resync(); // take, cut, resync, and anything new
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
      meter(Number(r.headers.get("X-Level-Dbfs")));
      if (r.status !== 200) return null;
      previewSeq = Number(r.headers.get("X-Frame-Seq"));
      return r.blob().then(function (blob) {
        var img = $("preview");
        var old = previewUrl;
        previewUrl = URL.createObjectURL(blob);
        img.onload = function () { if (old) URL.revokeObjectURL(old); };
        img.src = previewUrl;
        $("preview-empty").hidden = true;
      });
    }).catch(function () { /* the next step tries again */ }).then(function () {
      setTimeout(previewStep, Math.max(50, 1000 / FPS - (performance.now() - started)));
    });
  }
  function startPreview() {
    if (previewRunning) return;
    previewRunning = true;
    previewStep();
  }

  function meter(db) {
    if (!isFinite(db)) return;
    var pct = Math.max(0, Math.min(1, (db + 60) / 60));
    var fill = $("meter-fill");
    fill.style.transform = "scaleX(" + pct.toFixed(3) + ")";
    fill.className = "meter-fill" + (db > -3 ? " clip" : db > -12 ? " hot" : "");
    $("meter").setAttribute("aria-valuenow", String(Math.round(db)));
    // The kit reports -120 dBFS or less when it is not listening (e.g. between takes).
    $("meter-text").textContent = db <= -100 ? "mic: not listening" : db <= -60 ? "mic: silent" : "mic " + Math.round(db) + " dB";
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
  Kit.api("POST", "/api/clock", { phone_time_ms: Date.now() }).catch(function () { /* a label only */ });
  resync().then(function () {
    connect();
    flush();
  });
  startPreview();
})();
