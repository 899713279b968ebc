/* Showing a visit to the family: what the screen and the remote share.
 *
 * Present.Live: the visit's own event stream (/api/present/<visit>/events), which carries
 * only what a screen may hear: `present` events (commands, screens' reports), a cut of the
 * visit finished, the visit ended or sealed. Resumed after the last id seen (the browser's
 * own reconnects send Last-Event-ID); a stream silent for two heartbeats, or asleep while
 * the page was hidden, is opened again after the page has fetched its data afresh.
 *
 * Present.time(t): 3.4667 -> "0:03.46" (hundredths, truncated: a frame step shows). */
"use strict";

window.Present = (function () {
  var KINDS = ["present", "cut", "visit", "resync", "heartbeat"];

  function time(seconds) {
    var s = Math.max(0, seconds || 0);
    var whole = Math.floor(s);
    return Kit.clock(whole) + "." + ("0" + Math.floor((s - whole) * 100 + 1e-6)).slice(-2);
  }

  function rateName(rate) { return rate === 0.5 ? "½×" : rate === 0.25 ? "¼×" : "1×"; }

  /* opts: visit, after (the event id the page's data is as of), heartbeatS,
   * onEvent(kind, data), reload() -> a promise (fetch the data afresh), showConn(bad). */
  function Live(opts) {
    this.opts = opts;
    this.last = opts.after || 0;
    this.es = null;
    this.heard = performance.now();
    var self = this;
    setInterval(function () {
      if (!document.hidden && self.quietMs() > (opts.heartbeatS * 2 + 5) * 1000) self.restart();
    }, 3000);
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) return;
      if (!self.es || self.es.readyState === EventSource.CLOSED || self.quietMs() > opts.heartbeatS * 1000 + 5000) self.restart();
    });
  }
  Live.prototype.quietMs = function () { return performance.now() - this.heard; };
  Live.prototype.restart = function () {
    var self = this;
    self.opts.showConn(true);
    return Promise.resolve(self.opts.reload()).then(function () { self.connect(); }, function () { self.connect(); });
  };
  Live.prototype.connect = function () {
    var self = this;
    var opts = self.opts;
    if (self.es) self.es.close();
    var es = new EventSource("/api/present/" + encodeURIComponent(opts.visit) + "/events?after=" + self.last);
    self.es = es;
    self.heard = performance.now();
    es.onopen = function () { self.heard = performance.now(); opts.showConn(false); };
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) {
        opts.showConn(true); // refused (401, 503, …): the browser gives up, so try again
        setTimeout(function () { if (self.es === es) self.restart(); }, 3000);
      } else {
        setTimeout(function () { if (self.es === es && es.readyState !== EventSource.OPEN) opts.showConn(true); }, 3000);
      }
    };
    KINDS.forEach(function (kind) {
      es.addEventListener(kind, function (e) {
        self.heard = performance.now();
        if (e.lastEventId) self.last = Number(e.lastEventId); // a resync may go back (a restart)
        if (kind === "heartbeat") return;
        opts.onEvent(kind, e.data ? JSON.parse(e.data) : {});
      });
    });
  };

  return { Live: Live, time: time, rateName: rateName };
})();
