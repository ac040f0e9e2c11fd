(function () {
  // Registered before any <img> is parsed: a picture that loads is marked
  // data-loaded="1"; one that cannot be found (the page copied without its
  // output folder) is marked "0", its box says so, and a note explains.
  function seen(ev) {
    var img = ev.target;
    if (!img || img.tagName !== 'IMG') return;
    if (ev.type === 'load') { img.dataset.loaded = '1'; return; }
    img.dataset.loaded = '0';
    if (img.parentNode && img.parentNode.classList) img.parentNode.classList.add('broken');
    var note = document.getElementById('missing');
    if (note) note.hidden = false;
  }
  document.addEventListener('load', seen, true);
  document.addEventListener('error', seen, true);
})();
