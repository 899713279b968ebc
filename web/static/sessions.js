/* Visits: every session on the kit, newest first, with its takes and whether its film
 * (the rough cut) is ready. Each one opens its review page. */
"use strict";

(function () {
  var $ = function (id) { return document.getElementById(id); };

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function when(wall) {
    if (!wall) return "";
    var d = new Date(wall);
    if (isNaN(d)) return "";
    return d.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" }) + ", " +
      d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function card(s) {
    var li = Kit.el("li", "visit-item");
    var a = Kit.el("a", "visit" + (s.cut && s.cut.clips ? " has-film" : ""));
    a.href = "/review/" + encodeURIComponent(s.id);
    a.setAttribute("data-session", s.id);
    var title = Kit.el("span", "visit-title", "Visit " + s.number);
    var date = when(s.wall_time);
    if (date) title.appendChild(Kit.el("span", "muted", " · " + date));
    a.appendChild(title);
    var filmed = 0;
    s.takes.forEach(function (t) { filmed += t.duration_s; });
    a.appendChild(Kit.el("span", "visit-meta",
      plural(s.takes.length, "take", "takes") + " · " + Kit.clock(filmed) + " filmed · " + plural(s.tags, "tag", "tags")));
    var film;
    if (s.cut_error) film = Kit.el("span", "visit-film bad", "The film cannot be read");
    else if (s.cut && s.cut.clips) {
      film = Kit.el("span", "visit-film ready",
        "▶ Film ready · " + plural(s.cut.clips, "moment", "moments") + " · " + Kit.clock(s.cut.duration_s));
    } else if (s.cut) film = Kit.el("span", "visit-film", "No moments tagged");
    else film = Kit.el("span", "visit-film", "No film yet");
    a.appendChild(film);
    li.appendChild(a);
    return li;
  }

  Kit.api("GET", "/api/sessions").then(function (r) {
    var status = $("visits-status");
    if (!r.ok) {
      status.textContent = r.body.error || "The kit could not list the visits (" + r.status + ")";
      status.className = "status bad";
      return;
    }
    var list = $("visits");
    list.textContent = "";
    r.body.sessions.forEach(function (s) { list.appendChild(card(s)); });
    status.textContent = r.body.sessions.length ? "" : "Nothing filmed yet. Press Record on the home screen.";
    status.hidden = !!r.body.sessions.length;
  }, function () {
    $("visits-status").textContent = "Cannot reach the kit.";
  });
})();
