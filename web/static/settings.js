/* Settings: tag labels, this phone's name, pairing another phone, paired phones, and the
 * kit's signing fingerprint. */
"use strict";

(function () {
  var $ = function (id) { return document.getElementById(id); };
  var me = $("settings").getAttribute("data-phone-id");
  var toast = new Kit.Toast($("toast"));
  var VIG_LABELS = JSON.parse($("settings").getAttribute("data-default-labels") || "[]");
  var saved = [];

  /* ---------- labels ---------- */

  function editorLabels() {
    return Array.prototype.map.call($("label-list").querySelectorAll("input"), function (i) {
      return i.value.replace(/\s+/g, " ").trim();
    });
  }

  function validate() {
    var labels = editorLabels();
    var seen = {};
    var ok = labels.length > 0 && labels.length <= 12;
    labels.forEach(function (l) {
      var key = l.toLowerCase();
      if (!l || seen[key]) ok = false;
      seen[key] = true;
    });
    var changed = JSON.stringify(labels) !== JSON.stringify(saved);
    $("label-save").disabled = !(ok && changed);
    $("label-add").disabled = labels.length >= 12;
    return ok;
  }

  function renderLabels(labels) {
    var list = $("label-list");
    list.textContent = "";
    labels.forEach(function (label, i) {
      var li = Kit.el("li", "label-row");
      var input = Kit.el("input", "text-input");
      input.value = label;
      input.maxLength = 40;
      input.setAttribute("aria-label", "Label " + (i + 1));
      li.appendChild(input);
      [["up", "↑", "Move up"], ["remove", "✕", "Remove"]].forEach(function (b) {
        var button = Kit.el("button", "btn small " + b[0], b[1]);
        button.type = "button";
        button.setAttribute("aria-label", b[2] + ": " + label);
        if (b[0] === "up" && i === 0) button.disabled = true;
        li.appendChild(button);
      });
      list.appendChild(li);
    });
    validate();
  }

  $("label-list").addEventListener("input", validate);
  $("label-list").addEventListener("click", function (e) {
    var b = e.target.closest("button");
    if (!b) return;
    var labels = editorLabels();
    var rowsArr = Array.prototype.slice.call($("label-list").children);
    var i = rowsArr.indexOf(b.closest("li"));
    if (b.classList.contains("up") && i > 0) labels.splice(i - 1, 2, labels[i], labels[i - 1]);
    else if (b.classList.contains("remove")) labels.splice(i, 1);
    renderLabels(labels);
  });
  $("label-add").addEventListener("click", function () {
    var labels = editorLabels();
    labels.push("");
    renderLabels(labels);
    var inputs = $("label-list").querySelectorAll("input");
    inputs[inputs.length - 1].focus();
  });
  $("label-reset").addEventListener("click", function () { renderLabels(VIG_LABELS); });

  function putLabels(labels, undoable) {
    var before = saved;
    return Kit.api("PUT", "/api/labels", { labels: labels }).then(function (r) {
      if (!r.ok) { toast.show(r.body.error || "Not saved (" + r.status + ")", 6, null, "bad"); return; }
      saved = r.body.labels;
      renderLabels(saved);
      toast.show("Labels saved", 10, undoable ? function () { putLabels(before, false); } : null, "good");
    }, function () { toast.show("Cannot reach the kit", 4, null, "bad"); });
  }
  $("label-save").addEventListener("click", function () {
    if (validate()) putLabels(editorLabels(), true);
  });

  /* ---------- phones ---------- */

  function ago(s) {
    if (s == null) return "not seen since the kit started";
    if (s < 60) return "active now";
    if (s < 3600) return "seen " + Math.round(s / 60) + " min ago";
    return "seen " + Math.round(s / 3600) + " h ago";
  }

  function renderPhones(phones) {
    var list = $("phone-list");
    list.textContent = "";
    phones.forEach(function (p) {
      var li = Kit.el("li", "phone-row" + (p.revoked ? " revoked" : ""));
      li.setAttribute("data-id", p.id);
      var what = Kit.el("span", "what");
      what.appendChild(Kit.el("span", "lbl", p.name + (p.me ? " (this phone)" : "")));
      var when = p.paired_at ? "paired " + new Date(p.paired_at).toLocaleDateString() + " · " : "";
      what.appendChild(Kit.el("span", "by", p.revoked ? "removed" : when + ago(p.seen_ago_s)));
      li.appendChild(what);
      var b;
      if (p.revoked) {
        b = Kit.el("button", "btn small restore", "Let back in");
      } else if (p.me) {
        b = Kit.el("button", "btn small danger unpair", "Unpair");
      } else {
        b = Kit.el("button", "btn small danger revoke", "Remove");
      }
      b.type = "button";
      li.appendChild(b);
      list.appendChild(li);
    });
  }

  function loadPhones() {
    return Kit.api("GET", "/api/phones").then(function (r) { if (r.ok) renderPhones(r.body.phones); });
  }

  var confirmTimer = null;
  $("phone-list").addEventListener("click", function (e) {
    var b = e.target.closest("button");
    if (!b) return;
    var id = b.closest("li").getAttribute("data-id");
    var name = b.closest("li").querySelector(".lbl").textContent;
    if (b.classList.contains("revoke")) {
      Kit.api("DELETE", "/api/phones/" + id).then(function (r) {
        loadPhones();
        if (r.ok) {
          toast.show("Removed " + name, 10, function () {
            Kit.api("POST", "/api/phones/" + id + "/restore").then(loadPhones);
          });
        }
      });
    } else if (b.classList.contains("restore")) {
      Kit.api("POST", "/api/phones/" + id + "/restore").then(loadPhones);
    } else if (b.classList.contains("unpair")) {
      // Unpairing this phone cannot be undone from here (it needs the code again): confirm first.
      if (!b.classList.contains("confirm")) {
        b.classList.add("confirm");
        b.textContent = "Tap again to unpair";
        clearTimeout(confirmTimer);
        confirmTimer = setTimeout(function () { b.classList.remove("confirm"); b.textContent = "Unpair"; }, 4000);
        return;
      }
      Kit.api("DELETE", "/api/phones/" + id).then(function () { location.href = "/pair"; });
    }
  });

  $("my-name-save").addEventListener("click", function () {
    var name = $("my-name").value.trim();
    if (!name) return;
    Kit.api("PATCH", "/api/phones/" + me, { name: name }).then(function (r) {
      if (r.ok) { toast.show("Renamed to " + r.body.phone.name, 3, null, "good"); loadPhones(); }
      else toast.show(r.body.error || "Not renamed", 6, null, "bad");
    });
  });

  /* ---------- load ---------- */

  function load() {
    Kit.api("GET", "/api/labels").then(function (r) {
      if (r.ok) { saved = r.body.labels; renderLabels(saved); }
    });
    Kit.api("GET", "/api/pairing").then(function (r) {
      if (!r.ok) return;
      $("pair-code").textContent = r.body.code.slice(0, 3) + " " + r.body.code.slice(3);
      $("pair-address").textContent = r.body.link.replace(/^https?:\/\//, "").replace(/\/pair\?.*$/, "");
    });
    loadPhones();
    // The kit's signing fingerprint, from the hand-off (a kit without one hides the card).
    Kit.api("GET", "/api/handoff").then(function (r) {
      if (r.ok) $("kit-fingerprint").textContent = r.body.kit.fingerprint;
      else $("kit-card").hidden = true;
    }, function () { /* offline: it shows once the page reloads */ });
  }
  document.addEventListener("visibilitychange", function () { if (!document.hidden) loadPhones(); });
  load();
})();
