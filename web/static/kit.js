/* Shared helpers for the kit's pages. Plain JS, no build step, no framework.
 *
 * The hotspot serves plain HTTP, which is not a "secure context": no
 * crypto.randomUUID, no clipboard API, no wake lock. Nothing here uses them (the
 * home screen keeps the screen on with a video where the Wake Lock API is missing:
 * awake.js).
 */
"use strict";

window.Kit = (function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  /* The live events' kinds, from the kit's own list (kit.daemon.events.EventKind). */
  var kindsMeta = document.querySelector('meta[name="kit-event-kinds"]');
  var eventKinds = kindsMeta ? kindsMeta.getAttribute("content").split(" ") : [];

  /* A JSON request. Resolves to {ok, status, body}; rejects only when the
   * network fails or the request times out. Sends the phone's CSRF token. */
  function api(method, path, body, options) {
    var opts = options || {};
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = null;
    var headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (opts.headers) {
      Object.keys(opts.headers).forEach(function (k) { headers[k] = opts.headers[k]; });
    }
    var init = {
      method: method,
      headers: headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    };
    if (controller) {
      init.signal = controller.signal;
      timer = setTimeout(function () { controller.abort(); }, opts.timeoutMs || 8000);
    }
    return fetch(path, init).then(function (response) {
      if (timer) clearTimeout(timer);
      if (response.status === 401 && !opts.noRedirect) {
        location.href = "/pair";
      }
      return response.text().then(function (text) {
        var parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
        return { ok: response.ok, status: response.status, body: parsed || {} };
      });
    }, function (err) {
      if (timer) clearTimeout(timer);
      throw err;
    });
  }

  /* A random id for a tap, made on the phone (works without a secure context). */
  function newId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += ("0" + bytes[i].toString(16)).slice(-2);
    return out;
  }

  /* 75.4 -> "1:15"; 3725 -> "1:02:05". */
  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var ss = ("0" + (s % 60)).slice(-2);
    return h ? h + ":" + ("0" + m).slice(-2) + ":" + ss : m + ":" + ss;
  }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  /* "2027-01-29" -> a local Date for that day, or null. */
  function parseDay(text) {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
    return m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : null;
  }

  /* "2027-01-29" -> "29 Jan 2027": no locale guesswork about which number is the month. */
  function dayLabel(text) {
    var d = parseDay(text);
    return d ? d.getDate() + " " + MONTHS[d.getMonth()] + " " + d.getFullYear() : text;
  }

  /* A wall-clock label (UTC ISO 8601, or "") -> "14:02" in the phone's time, or "". */
  function timeLabel(wall) {
    var d = wall ? new Date(wall) : null;
    return d && !isNaN(d) ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
  }

  /* A visit's consent -> "Consent: parent · review, supervision · erase by 29 Jan 2027". */
  function consentText(c) {
    if (!c) return "";
    return "Consent: " + c.given_by + " · " + c.purposes.join(", ") + " · erase by " + dayLabel(c.erase_by);
  }

  /* Whether the family agreed to the shared review (the film on a phone) for this visit;
   * a visit with no consent record (recorded before the kit asked) shows no film either. */
  function mayReview(visit) {
    return !visit || (!!visit.consent && visit.consent.purposes.indexOf("review") >= 0);
  }

  /* A sealed visit: ended and sealed, or its key lost to a power cut. */
  function sealed(visit) {
    return !!visit && (visit.access === "sealed" || visit.access === "key_lost");
  }

  function vibrate(ms) {
    // Android only; iPhones ignore it, so a visible confirmation is the real feedback.
    if (navigator.vibrate) {
      try { navigator.vibrate(ms); } catch (e) { /* not allowed here */ }
    }
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* A toast with an optional action, shown for `seconds` (with a countdown on the action). */
  function Toast(root) {
    this.root = root;
    this.text = root.querySelector(".toast-text");
    this.undo = root.querySelector(".undo");
    this.timer = null;
    this.onUndo = null;
    var self = this;
    this.undo.addEventListener("click", function () {
      var action = self.onUndo;
      self.hide();
      if (action) action();
    });
  }
  Toast.prototype.show = function (message, seconds, onUndo, kind) {
    var self = this;
    clearInterval(this.timer);
    this.root.hidden = false;
    this.root.className = "toast" + (kind ? " " + kind : "");
    this.text.textContent = message;
    this.onUndo = onUndo || null;
    this.undo.hidden = !onUndo;
    var until = performance.now() + seconds * 1000;
    var tick = function () {
      var left = Math.ceil((until - performance.now()) / 1000);
      if (left <= 0) { self.hide(); return; }
      if (onUndo) self.undo.textContent = "Undo " + left;
    };
    tick();
    this.timer = setInterval(tick, 250);
  };
  Toast.prototype.setText = function (message, kind) {
    this.text.textContent = message;
    this.root.className = "toast" + (kind ? " " + kind : "");
  };
  Toast.prototype.hide = function () {
    clearInterval(this.timer);
    this.root.hidden = true;
    this.onUndo = null;
  };

  /* The kit's live events (server-sent events), resumed after the last id the page saw.
   *
   * opts: after() -> the last event id seen; seen(id); onEvent(kind, data);
   * onOpen(); showConn(bad); reload() -> a promise that fetches the state afresh;
   * heartbeatS. A stream the browser gives up on (401, 503) is reopened after a
   * reload; one silent for two heartbeats is dead whatever the browser thinks, and
   * so is one that was asleep when the page comes back. */
  function Live(opts) {
    this.opts = opts;
    this.es = null;
    this.lastActivity = performance.now();
    var self = this;
    setInterval(function () {
      if (!document.hidden && self.quietMs() > (opts.heartbeatS * 2 + 5) * 1000) self.restart();
    }, 5000);
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) return;
      if (!self.es || self.es.readyState === EventSource.CLOSED || self.quietMs() > opts.heartbeatS * 1000 + 5000) self.connect();
    });
  }
  Live.prototype.quietMs = function () { return performance.now() - this.lastActivity; };
  Live.prototype.restart = function () {
    var self = this;
    self.opts.showConn(true);
    return self.opts.reload().then(function () { self.connect(); });
  };
  Live.prototype.connect = function () {
    var self = this;
    var opts = self.opts;
    if (self.es) self.es.close();
    var es = new EventSource("/api/events?after=" + opts.after());
    self.es = es;
    self.lastActivity = performance.now();
    es.onopen = function () { self.lastActivity = performance.now(); opts.showConn(false); opts.onOpen(); };
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) {
        // Refused (e.g. 401, 503): the browser gives up, so try again ourselves.
        opts.showConn(true);
        setTimeout(function () { if (self.es === es) self.restart(); }, 3000);
      } else {
        setTimeout(function () { if (self.es === es && es.readyState !== EventSource.OPEN) opts.showConn(true); }, 3000);
      }
    };
    eventKinds.forEach(function (kind) {
      es.addEventListener(kind, function (e) {
        self.lastActivity = performance.now();
        if (e.lastEventId) opts.seen(Number(e.lastEventId));
        opts.onEvent(kind, e.data ? JSON.parse(e.data) : {});
      });
    });
  };

  /* Copy the captive-portal banner's address (execCommand works without a secure context). */
  document.addEventListener("DOMContentLoaded", function () {
    var copy = document.getElementById("limited-copy");
    var input = document.getElementById("limited-address");
    if (copy && input) {
      copy.addEventListener("click", function () {
        input.focus();
        input.select();
        input.setSelectionRange(0, input.value.length);
        var done = false;
        try { done = document.execCommand("copy"); } catch (e) { done = false; }
        copy.textContent = done ? "Copied" : "Select and copy";
      });
    }
  });

  return {
    api: api, newId: newId, clock: clock, vibrate: vibrate, el: el, Toast: Toast, csrf: csrf,
    eventKinds: eventKinds, Live: Live, parseDay: parseDay, dayLabel: dayLabel,
    timeLabel: timeLabel, consentText: consentText, mayReview: mayReview, sealed: sealed,
  };
})();
