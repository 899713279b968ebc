/* Visits: every visit on the kit, newest first: its case reference, whether it is open,
 * its takes and whether its film (the rough cut) is ready and up to date. Each one opens
 * its review page. A sealed visit can be taken off the kit: copied to a USB stick plugged
 * into the kit (progress, then "safe to remove"), or downloaded to this device. */
"use strict";

(function () {
  var $ = function (id) { return document.getElementById(id); };
  var HEARTBEAT_S = Number($("visits-page").getAttribute("data-heartbeat-s")) || 15;
  var STICK_POLL_MS = 3000; // while the sheet is open: sticks come and go

  var model = {
    eventId: 0,
    visits: [],
    ready: {}, // id -> the hand-off's entry for a visit that can leave the kit
    sticks: [],
    sticksError: "",
    job: null,
    kit: null,
  };
  var sheetVisit = null; // the visit whose hand-off sheet is open
  var pollTimer = null;
  var interrupted = ""; // a copy the kit's restart cut short

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function when(wall) {
    if (!wall) return "";
    var d = new Date(wall);
    if (isNaN(d)) return "";
    return d.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" }) + ", " +
      d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function bytes(n) {
    if (n == null) return "";
    if (n >= 1e9) return (n / 1e9).toFixed(1) + " GB";
    if (n >= 1e6) return (n / 1e6).toFixed(0) + " MB";
    return Math.max(1, Math.round(n / 1e3)) + " kB";
  }

  function title(v) { return v.case_ref || "Visit " + v.number; }

  function filmLine(v) {
    if (v.access === "key_lost") {
      return Kit.el("span", "visit-film sealed",
        "Sealed: the kit lost power during it. Only your organisation can open it.");
    }
    if (v.access === "sealed") return Kit.el("span", "visit-film sealed", "Sealed: only your organisation can open it");
    if (!Kit.mayReview(v)) {
      return Kit.el("span", "visit-film", v.consent ? "No film on the phone: the family did not agree to a review" :
        "No film on the phone: this visit has no consent record");
    }
    if (v.cut_error) return Kit.el("span", "visit-film bad", "The film cannot be read");
    if (v.cut && v.cut.clips && v.cut.up_to_date) {
      return Kit.el("span", "visit-film ready",
        "▶ Film ready · " + plural(v.cut.clips, "moment", "moments") + " · " + Kit.clock(v.cut.duration_s));
    }
    if (v.cut && v.cut.clips) return Kit.el("span", "visit-film", "Film being brought up to date");
    if (v.cut && v.cut.up_to_date) return Kit.el("span", "visit-film", "No moments tagged");
    if (v.takes) return Kit.el("span", "visit-film", "Film not made yet");
    return Kit.el("span", "visit-film", "Nothing filmed yet");
  }

  function card(v) {
    var li = Kit.el("li", "visit-item");
    var a = Kit.el("a", "visit" + (v.cut && v.cut.clips && v.cut.up_to_date ? " has-film" : "") +
      (v.state === "open" ? " open" : "") + (Kit.sealed(v) ? " sealed" : ""));
    a.href = "/visits/" + encodeURIComponent(v.id);
    a.setAttribute("data-visit", v.id);
    var head = Kit.el("span", "visit-title", title(v));
    if (v.state === "open") head.appendChild(Kit.el("span", "badge", "Open"));
    var date = when(v.started_wall);
    if (date) head.appendChild(Kit.el("span", "muted", " · " + date));
    a.appendChild(head);
    var filmed = 0;
    v.take_list.forEach(function (t) { filmed += t.duration_s; });
    var recovered = v.take_list.filter(function (t) { return t.recovered; }).length;
    a.appendChild(Kit.el("span", "visit-meta",
      plural(v.takes, "take", "takes") + " · " + Kit.clock(filmed) + " filmed · " + plural(v.tags, "tag", "tags") +
      (recovered ? " · " + recovered + " recovered after a power cut or crash" : "")));
    a.appendChild(filmLine(v));
    if (v.consent) a.appendChild(Kit.el("span", "visit-consent", Kit.consentText(v.consent)));
    li.appendChild(a);
    if (model.ready[v.id]) {
      var take = Kit.el("button", "btn wide handoff-open", "Take off the kit ›");
      take.type = "button";
      take.setAttribute("data-visit", v.id);
      take.setAttribute("aria-label", "Take " + title(v) + " off the kit");
      li.appendChild(take);
    }
    return li;
  }

  function renderList() {
    var status = $("visits-status");
    var list = $("visits");
    list.textContent = "";
    model.visits.forEach(function (v) { list.appendChild(card(v)); });
    status.className = "status";
    status.textContent = model.visits.length ? "" : "No visits yet. Start one on the home screen.";
    status.hidden = !!model.visits.length;
  }

  /* ---------- the copy to a USB stick ---------- */

  function phaseText(job) {
    var pct = " " + Math.round(job.fraction * 100) + "%";
    switch (job.phase) {
      case "hashing": return "Reading the visit…" + pct;
      case "writing": return "Copying to " + job.stick_label + "…" + pct;
      case "verifying": return "Checking the copy on the stick…" + pct;
      case "ejecting": return "Ejecting the stick…";
      case "done": return "Copied to " + job.stick_label + " and checked.";
      default: return "The copy did not work.";
    }
  }

  function visitName(id) {
    var v = model.visits.filter(function (x) { return x.id === id; })[0];
    return v ? title(v) : "the visit";
  }

  function renderJob() {
    var job = model.job;
    // The banner: any copy, whichever sheet is open.
    var banner = $("export-banner");
    banner.hidden = !job && !interrupted;
    banner.className = "banner export" + (job && job.phase === "done" ? " done" : "") +
      ((job && job.phase === "failed") || interrupted ? " failed" : "");
    if (interrupted && !job) {
      $("export-banner-text").textContent = interrupted;
      $("export-banner-bar").hidden = true;
    } else if (job) {
      var text = job.phase === "done" ? "✓ " + visitName(job.visit_id) + " is on " + job.stick_label +
        ". Safe to remove the stick now." : job.phase === "failed" ? job.error +
        (job.safe_to_remove ? " You can pull the stick out." : "") :
        visitName(job.visit_id) + ": " + phaseText(job);
      $("export-banner-text").textContent = text;
      $("export-banner-bar").hidden = !job.running;
      $("export-banner-fill").style.transform = "scaleX(" + job.overall + ")";
      $("export-banner-bar").setAttribute("aria-valuenow", String(Math.round(job.overall * 100)));
    }
    // The sheet: this visit's copy.
    if (!sheetVisit) return;
    var mine = job && job.visit_id === sheetVisit ? job : null;
    $("export-box").hidden = !mine && !interrupted;
    if (!mine) {
      $("export-phase").textContent = interrupted;
      $("export-bar").hidden = true;
      $("export-safe").hidden = true;
      $("export-error").hidden = true;
    } else {
      $("export-phase").textContent = phaseText(mine);
      $("export-bar").hidden = !mine.running;
      $("export-fill").style.transform = "scaleX(" + mine.overall + ")";
      $("export-bar").setAttribute("aria-valuenow", String(Math.round(mine.overall * 100)));
      $("export-safe").hidden = !(mine.phase === "done" || (mine.phase === "failed" && mine.safe_to_remove));
      $("export-safe").textContent = mine.phase === "done" ? "Safe to remove the stick now" :
        "You can pull the stick out";
      $("export-error").hidden = mine.phase !== "failed";
      $("export-error").textContent = mine.error || "";
    }
    renderSticks();
  }

  function renderSticks() {
    if (!sheetVisit) return;
    var list = $("stick-list");
    list.textContent = "";
    var busy = !!(model.job && model.job.running);
    if (model.sticksError) {
      $("usb-help").textContent = "The kit cannot look for USB sticks: " + model.sticksError;
    } else if (!model.sticks.length) {
      var copied = model.job && model.job.visit_id === sheetVisit && model.job.phase === "done";
      $("usb-help").textContent = copied ? "For another copy, plug in another stick." :
        "No USB stick found. Plug one (FAT32 or exFAT) into the kit.";
    } else {
      $("usb-help").textContent = busy ? "A copy is running: wait until it is done." : "Tap the stick to copy to:";
    }
    model.sticks.forEach(function (s) {
      var li = Kit.el("li", "stick-row");
      var b = Kit.el("button", "btn wide stick");
      b.type = "button";
      b.setAttribute("data-stick", s.id);
      b.appendChild(Kit.el("span", "stick-name", "Copy to " + s.label));
      var room = s.free != null ? bytes(s.free) + " free" : bytes(s.size);
      b.appendChild(Kit.el("span", "stick-sub", s.kind + " · " + room));
      b.disabled = busy || !s.usable;
      li.appendChild(b);
      if (!s.usable) li.appendChild(Kit.el("p", "stick-problem", s.problem));
      else if (s.max_file_bytes) li.appendChild(Kit.el("p", "stick-note", "FAT32: files over 4 GB are written in parts."));
      list.appendChild(li);
    });
  }

  function startCopy(stickId) {
    var visitId = sheetVisit;
    interrupted = "";
    $("export-box").hidden = false;
    $("export-phase").textContent = "Starting the copy…";
    $("export-error").hidden = true;
    $("export-safe").hidden = true;
    Array.prototype.forEach.call($("stick-list").querySelectorAll("button"), function (b) { b.disabled = true; });
    Kit.api("POST", "/api/visits/" + encodeURIComponent(visitId) + "/export", { to: "usb", stick: stickId }).then(function (r) {
      if (r.ok) {
        applyJob(r.body.job);
        return;
      }
      $("export-phase").textContent = "";
      $("export-error").hidden = false;
      $("export-error").textContent = r.body.error || "The kit refused (" + r.status + ")";
      refresh();
    }, function () {
      $("export-error").hidden = false;
      $("export-error").textContent = "Cannot reach the kit. Check the phone is on the kit's Wi-Fi.";
      refresh();
    });
  }

  function applyJob(job) {
    if (job && (!model.job || model.job.job_id !== job.job_id)) interrupted = "";
    model.job = job;
    if (job && (job.phase === "done" || job.phase === "failed")) {
      if (job.phase === "done") Kit.vibrate([60, 60, 60]);
      refresh(); // the stick list changes (ejected) and the visit list may too
    }
    renderJob();
  }

  /* ---------- the sheet ---------- */

  function openSheet(visitId) {
    var entry = model.ready[visitId];
    if (!entry) return;
    sheetVisit = visitId;
    $("handoff-title").textContent = "Take " + visitName(visitId) + " off the kit";
    $("download").href = entry.download_url;
    $("download").setAttribute("aria-label", "Download " + visitName(visitId) + " to this device (about " + bytes(entry.bytes) + ")");
    $("download").textContent = "Download to this device (" + bytes(entry.bytes) + ")";
    $("handoff-sheet").hidden = false;
    renderJob();
    clearInterval(pollTimer);
    pollTimer = setInterval(function () { if (!document.hidden) refresh(); }, STICK_POLL_MS);
    refresh();
  }

  function closeSheet() {
    sheetVisit = null;
    $("handoff-sheet").hidden = true;
    clearInterval(pollTimer);
  }

  /* ---------- loading, and live updates ---------- */

  /* `full`: a fresh start (the page loaded, or the event stream was lost): the events to
   * listen for begin after this answer. A poll of the sticks leaves the stream alone. */
  function applyHandoff(h, full) {
    var before = model.job;
    if (full) model.eventId = h.event_id;
    model.ready = {};
    h.ready.forEach(function (v) { model.ready[v.id] = v; });
    model.sticks = h.sticks;
    model.sticksError = h.sticks_error;
    model.kit = h.kit;
    if (before && before.running && (!h.job || h.job.job_id !== before.job_id)) {
      // The kit restarted mid-copy: the copy is gone, and so is its half.
      interrupted = "The copy to " + before.stick_label + " stopped when the kit restarted. " +
        "Nothing on the stick is a finished copy: copy again.";
    }
    model.job = h.job;
    $("handoff-fingerprint").textContent = h.kit.fingerprint;
  }

  function refresh() {
    return Kit.api("GET", "/api/handoff").then(function (r) {
      if (!r.ok) return;
      applyHandoff(r.body, false);
      renderList();
      renderJob();
    }, function () { showConn(true); });
  }

  /* The hand-off first (it carries the event id to listen after), then the visits. */
  function load() {
    var handoff = null;
    return Kit.api("GET", "/api/handoff").then(function (h) {
      handoff = h;
      return Kit.api("GET", "/api/visits");
    }).then(function (visits) {
      var status = $("visits-status");
      if (!visits.ok) {
        status.hidden = false;
        status.textContent = visits.body.error || "The kit could not list the visits (" + visits.status + ")";
        status.className = "status bad";
        return "offline";
      }
      model.visits = visits.body.visits;
      if (handoff.ok) applyHandoff(handoff.body, true);
      renderList();
      renderJob();
      if (sheetVisit && !model.ready[sheetVisit]) closeSheet(); // erased meanwhile
      showConn(false);
      return handoff.ok ? "live" : "static";
    }, function () {
      $("visits-status").hidden = false;
      $("visits-status").textContent = "Cannot reach the kit.";
      showConn(true);
      return "offline";
    });
  }

  function showConn(bad) { $("conn").hidden = !bad; }

  function onEvent(kind, data) {
    if (kind === "export") {
      // This copy's news, or a new copy (from this phone or another); never an old one's.
      if (!model.job || data.job_id === model.job.job_id || data.running) applyJob(data);
    } else if (kind === "visit" || kind === "resync" || kind === "take" || kind === "cut") {
      load();
    }
    // status (twice a second), tags, labels, phones: nothing on this page shows them
  }

  var live = new Kit.Live({
    after: function () { return model.eventId; },
    seen: function (id) { model.eventId = id; },
    onEvent: onEvent,
    onOpen: function () { showConn(false); },
    showConn: showConn,
    reload: load,
    heartbeatS: HEARTBEAT_S,
  });

  $("visits").addEventListener("click", function (e) {
    var b = e.target.closest("button.handoff-open");
    if (b) openSheet(b.getAttribute("data-visit"));
  });
  $("stick-list").addEventListener("click", function (e) {
    var b = e.target.closest("button.stick");
    if (b && !b.disabled) startCopy(b.getAttribute("data-stick"));
  });
  $("handoff-close").addEventListener("click", closeSheet);
  $("handoff-sheet").addEventListener("click", function (e) {
    if (e.target === $("handoff-sheet")) closeSheet();
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && sheetVisit) closeSheet();
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) load();
  });

  // Live updates need the event id the hand-off gives (a kit without one has no copies).
  var connected = false;
  function start() {
    load().then(function (how) {
      if (how === "live" && !connected) { connected = true; live.connect(); }
      else if (how === "offline") setTimeout(start, 5000); // not reachable yet: keep trying
    });
  }
  start();
})();
