/* A screen waiting for the guider's phone (/present): it goes to the visit a remote opens
 * (GET /api/present?visits=0, every 2 s), and lists the films that can be shown (every
 * 30 s), by visit number and day, each to show here or to use this phone as its remote. */
"use strict";

(function () {
  var $ = function (id) { return document.getElementById(id); };
  var seen = null; // the ``open`` on show when this page loaded: a newer one is followed

  function dayText(day) { return day ? Kit.dayLabel(day) : ""; }

  function render(list) {
    var ul = $("visits");
    ul.textContent = "";
    list.forEach(function (v) {
      var li = Kit.el("li", "visit-row");
      var what = Kit.el("span", "visit-what");
      what.appendChild(Kit.el("b", "", "Visit " + v.number));
      what.appendChild(Kit.el("span", "muted", [dayText(v.day), v.moments + (v.moments === 1 ? " moment" : " moments")].filter(Boolean).join(" · ")));
      li.appendChild(what);
      var here = Kit.el("a", "btn", "Show here");
      here.href = "/present/" + encodeURIComponent(v.visit_id);
      var remote = Kit.el("a", "btn primary", "Remote");
      remote.href = "/present/" + encodeURIComponent(v.visit_id) + "/remote";
      remote.setAttribute("aria-label", "Use this phone as the remote of visit " + v.number);
      li.appendChild(here);
      li.appendChild(remote);
      ul.appendChild(li);
    });
    $("list").hidden = list.length === 0;
  }

  var polls = 0;
  function poll() {
    var listing = polls++ % 15 === 0; // the list every 30 s: it reads every visit's cut
    return Kit.api("GET", "/api/present" + (listing ? "" : "?visits=0")).then(function (r) {
      if (!r.ok) return;
      var showing = r.body.showing;
      var opened = showing ? showing.opened : 0;
      if (seen === null) {
        seen = opened;
      } else if (showing && opened > seen) {
        location.replace("/present/" + encodeURIComponent(showing.visit_id));
        return;
      }
      $("showing").hidden = !showing;
      if (showing) $("showing-link").href = "/present/" + encodeURIComponent(showing.visit_id);
      if (r.body.visits) render(r.body.visits);
    }, function () { /* the next poll tries again */ });
  }

  poll();
  setInterval(function () { if (!document.hidden) poll(); }, 2000);
})();
