/* Visits: every visit on the kit, newest first: its case reference, whether it is open,
 * its takes and whether its film (the rough cut) is ready and up to date. Each one opens
 * its review page. */
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
    var title = Kit.el("span", "visit-title", v.case_ref || "Visit " + v.number);
    if (v.state === "open") title.appendChild(Kit.el("span", "badge", "Open"));
    var date = when(v.started_wall);
    if (date) title.appendChild(Kit.el("span", "muted", " · " + date));
    a.appendChild(title);
    var filmed = 0;
    v.take_list.forEach(function (t) { filmed += t.duration_s; });
    var recovered = v.take_list.filter(function (t) { return t.recovered; }).length;
    a.appendChild(Kit.el("span", "visit-meta",
      plural(v.takes, "take", "takes") + " · " + Kit.clock(filmed) + " filmed · " + plural(v.tags, "tag", "tags") +
      (recovered ? " · " + recovered + " recovered after a power cut or crash" : "")));
    a.appendChild(filmLine(v));
    if (v.consent) a.appendChild(Kit.el("span", "visit-consent", Kit.consentText(v.consent)));
    li.appendChild(a);
    return li;
  }

  Kit.api("GET", "/api/visits").then(function (r) {
    var status = $("visits-status");
    if (!r.ok) {
      status.textContent = r.body.error || "The kit could not list the visits (" + r.status + ")";
      status.className = "status bad";
      return;
    }
    var list = $("visits");
    list.textContent = "";
    r.body.visits.forEach(function (v) { list.appendChild(card(v)); });
    status.textContent = r.body.visits.length ? "" : "No visits yet. Start one on the home screen.";
    status.hidden = !!r.body.visits.length;
  }, function () {
    $("visits-status").textContent = "Cannot reach the kit.";
  });
})();
