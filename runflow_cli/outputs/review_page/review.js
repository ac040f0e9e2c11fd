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
               (want === 'all' || s === want || (want === 'problems' && c.dataset.problem === '1'));
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
