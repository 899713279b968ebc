/* The controls of the page, for tests/web/layout.py: each visible interactive element
 * (a checkbox through its label), where it is, whether a finger reaches it, and whether a
 * box cuts it off. Run by Playwright's page.evaluate. */
(() => {
  const vw = window.innerWidth, vh = window.innerHeight;
  const sel = 'button, a[href], input:not([type=hidden]), select, textarea, [role=button], summary';
  const shown = (e) => {
    if (e.closest('[hidden]')) return false;
    const cs = getComputedStyle(e);
    if (cs.display === 'none' || cs.visibility !== 'visible') return false;
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const backdropOf = (e) =>
    e && e.closest ? e.closest('.sheet-backdrop, [aria-modal="true"]') : null;
  const describe = (e) => (e.id ? '#' + e.id : e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).trim().split(/\s+/).join('.') : ''))
    + (e.textContent ? ' "' + e.textContent.trim().slice(0, 24) + '"' : '');
  // The nearest box that clips e and scrolls (a list), or that clips it without scrolling.
  const clip = (e) => {
    const r = e.getBoundingClientRect();
    for (let a = e.parentElement; a && a !== document.body && a !== document.documentElement; a = a.parentElement) {
      const cs = getComputedStyle(a);
      const over = cs.overflowX + ' ' + cs.overflowY;
      if (!/(auto|scroll|hidden|clip)/.test(over)) continue;
      const ar = a.getBoundingClientRect();
      const cut = r.top < ar.top - 1 || r.bottom > ar.bottom + 1 || r.left < ar.left - 1 || r.right > ar.right + 1;
      if (!cut) continue;
      return /(auto|scroll)/.test(over) ? 'scrolls' : 'clipped by ' + describe(a);
    }
    return '';
  };
  // A sheet open over the page: only what is in it, or what it leaves uncovered, counts.
  const modal = Array.from(document.querySelectorAll('.sheet-backdrop, [aria-modal="true"]')).some(shown);
  // In a bar that sticks to the edge of a scrolling box (the sheet's buttons): what scrolls
  // under it is reached by scrolling.
  const sticky = (e) => {
    for (let a = e; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).position === 'sticky') return true;
    }
    return false;
  };
  const out = [];
  const seen = new Set();
  for (const raw of document.querySelectorAll(sel)) {
    let e = raw;
    if ((e.type === 'checkbox' || e.type === 'radio') && e.closest('label')) e = e.closest('label');
    if (seen.has(e) || !shown(e)) continue;
    seen.add(e);
    const r = e.getBoundingClientRect();
    const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
    let reach = 'offscreen';
    if (cx >= 0 && cx <= vw && cy >= 0 && cy <= vh) {
      const hit = document.elementFromPoint(cx, cy);
      if (hit && (hit === e || e.contains(hit))) reach = 'yes';
      else if (backdropOf(hit) && backdropOf(hit) !== backdropOf(e)) reach = 'under-sheet';
      else reach = 'covered by ' + (hit ? describe(hit) : 'nothing');
    }
    if (modal && reach !== 'yes' && !backdropOf(e)) reach = 'under-sheet';
    out.push({
      name: describe(e), left: r.left, top: r.top + window.scrollY, right: r.right,
      bottom: r.bottom + window.scrollY, width: r.width, height: r.height,
      viewTop: r.top, viewBottom: r.bottom, reach: reach, clip: clip(e), sticky: sticky(e),
      owner: Array.from(document.querySelectorAll(sel)).filter(o => o !== e && (o.contains(e) || e.contains(o))).length,
    });
  }
  return {
    controls: out, vw: vw, vh: vh,
    scrollWidth: document.documentElement.scrollWidth,
    scrollHeight: document.documentElement.scrollHeight,
  };
})
