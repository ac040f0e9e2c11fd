(function () {
  var q = document.getElementById('q'), st = document.getElementById('status');
  var cards = Array.prototype.slice.call(document.querySelectorAll('article.card'));
  var shown = document.getElementById('shown'), empty = document.getElementById('empty');
  function apply(save) {
    var text = q.value.trim().toLowerCase(), want = st.value, n = 0;
    cards.forEach(function (c) {
      var s = c.dataset.status;
      var ok = (!text || c.dataset.sku.toLowerCase().indexOf(text) >= 0 ||
                c.dataset.name.toLowerCase().indexOf(text) >= 0) &&
               (want === 'all' || s === want || (want === 'problems' && c.dataset.problem === '1') ||
                (want === 'rejected' && c.classList.contains('rejected')));
      c.hidden = !ok; if (ok) n++;
    });
    shown.textContent = 'showing ' + n + ' of ' + cards.length;
    empty.hidden = n > 0;
    if (save) {
      var p = new URLSearchParams();
      if (q.value) p.set('q', q.value);
      if (want !== 'all') p.set('status', want);
      history.replaceState(null, '', p.toString() ? '#' + p.toString() : location.pathname);
    }
  }
  var init = new URLSearchParams(location.hash.slice(1));
  if (init.get('q')) q.value = init.get('q');
  var s0 = init.get('status');
  if (s0 && st.querySelector('option[value="' + CSS.escape(s0) + '"]')) st.value = s0;
  q.addEventListener('input', function () { apply(true); });
  st.addEventListener('change', function () { apply(true); });
  document.querySelectorAll('.chip').forEach(function (b) {
    b.addEventListener('click', function () {
      st.value = st.value === b.dataset.status ? 'all' : b.dataset.status; apply(true);
    });
  });
  apply(false);
})();
(function () {
  // Before / after, stages and rejects. Nothing here loads until asked: a card's
  // source and stages sit in data-src until its button (or "on every card") is used.
  // The layout (side by side or slider) and the rejected rows are kept in
  // localStorage, per page (its manifest and output folder).
  var body = document.body, store = 'runflow-review:' + (body.dataset.store || '');
  function load(key, fallback) {
    try { var v = localStorage.getItem(store + ':' + key); return v === null ? fallback : v; }
    catch (e) { return fallback; }
  }
  function save(key, value) { try { localStorage.setItem(store + ':' + key, value); } catch (e) {} }
  var cards = Array.prototype.slice.call(document.querySelectorAll('article.card'));
  var layout = load('layout', 'side') === 'slider' ? 'slider' : 'side';
  function reveal(img) {
    if (img.dataset.src && !img.getAttribute('src')) img.setAttribute('src', img.dataset.src);
  }
  function open(card, on) {
    var before = card.querySelector('.pic.before');
    if (!before) return;
    card.classList.toggle('open', on);
    card.classList.toggle('slider', on && layout === 'slider');
    before.hidden = !on;
    card.querySelector('.slide').hidden = !(on && layout === 'slider');
    if (on) reveal(before.querySelector('img'));
  }
  document.querySelectorAll('.lay').forEach(function (b) {
    b.setAttribute('aria-pressed', String(b.dataset.layout === layout));
    b.addEventListener('click', function () {
      layout = b.dataset.layout; save('layout', layout);
      document.querySelectorAll('.lay').forEach(function (o) {
        o.setAttribute('aria-pressed', String(o === b));
      });
      cards.forEach(function (c) { if (c.classList.contains('open')) open(c, true); });
    });
  });
  document.getElementById('every').addEventListener('change', function (ev) {
    var on = ev.target.checked;
    cards.forEach(function (c) { open(c, on); });
  });
  // Rejects: SKU/name per line, what `runflow batch --only` reads.
  var rejected = [];
  try { rejected = JSON.parse(load('rejected', '[]')) || []; } catch (e) { rejected = []; }
  var panel = document.getElementById('rejects'), file = document.getElementById('rejected-file');
  var redo = body.dataset.redo + ' --only rejected.txt --force';
  document.getElementById('redo').textContent = redo;
  function show() {
    var keys = cards.map(function (c) { return c.dataset.key; });
    rejected = rejected.filter(function (k) { return keys.indexOf(k) >= 0; });
    cards.forEach(function (c) {
      var on = rejected.indexOf(c.dataset.key) >= 0;
      c.classList.toggle('rejected', on);
      c.querySelector('.reject').setAttribute('aria-pressed', String(on));
    });
    document.getElementById('count-rejected').textContent = rejected.length;
    panel.hidden = rejected.length === 0;
    var text = '# Finals rejected in the review sheet: one SKU/name per line.\n# Redo them: ' +
      redo + '\n' + rejected.join('\n') + '\n';
    file.setAttribute('href', 'data:text/plain;charset=utf-8,' + encodeURIComponent(text));
    save('rejected', JSON.stringify(rejected));
    var st = document.getElementById('status');
    if (st.value === 'rejected') st.dispatchEvent(new Event('change'));
  }
  cards.forEach(function (c) {
    c.querySelector('.compare').addEventListener('click', function () {
      open(c, !c.classList.contains('open'));
    });
    var stages = c.querySelector('.stages');
    if (stages) stages.addEventListener('click', function () {
      var strip = c.querySelector('.strip');
      strip.hidden = !strip.hidden;
      if (!strip.hidden) strip.querySelectorAll('img').forEach(reveal);
    });
    c.querySelector('.slide').addEventListener('input', function (ev) {
      c.style.setProperty('--x', ev.target.value + '%');
    });
    c.querySelector('.reject').addEventListener('click', function () {
      var i = rejected.indexOf(c.dataset.key);
      if (i >= 0) rejected.splice(i, 1); else rejected.push(c.dataset.key);
      show();
    });
  });
  document.getElementById('copy-redo').addEventListener('click', function () {
    if (navigator.clipboard) navigator.clipboard.writeText(redo).catch(function () {});
  });
  document.getElementById('clear-rejected').addEventListener('click', function () {
    rejected = []; show();
  });
  show();
})();
