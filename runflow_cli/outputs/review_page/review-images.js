(function () {
  // Registered before any <img> is parsed: a picture that loads is marked
  // data-loaded="1"; one that cannot be found (the page copied without its
  // output folder) is marked "0", its box says so, and a note explains. A source
  // photo (asked for with "before / after") that fails from its preview is tried
  // at its URL; failing there too (offline), its box says so, and no note.
  function seen(ev) {
    var img = ev.target;
    if (!img || img.tagName !== 'IMG') return;
    if (ev.type === 'load') { img.dataset.loaded = '1'; return; }
    var back = img.dataset.fallback;
    if (img.classList.contains('src') && back && img.getAttribute('src') !== back) {
      img.setAttribute('src', back); return;
    }
    img.dataset.loaded = '0';
    var box = img.parentNode;
    if (box && box.classList) box.classList.add('broken');
    if (img.classList.contains('src')) { if (box && box.classList) box.classList.add('src-off'); return; }
    var note = document.getElementById('missing');
    if (note) note.hidden = false;
  }
  document.addEventListener('load', seen, true);
  document.addEventListener('error', seen, true);
})();
