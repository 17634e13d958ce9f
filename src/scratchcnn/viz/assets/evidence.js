// The Evidence panel: why the network chose its class, not only which. The last dense layer d computes each
// class's score as a sum, A_j = Σ_i W_{j,i} x_i + b_j; each term W_{j,i} x_i is what input i contributed to
// class j. When x is the flattened pooled maps Z (the write-up's network), the terms form maps again,
// W_{j,k}(p, q) Z_k(p, q): one row per class, one small map per k, drawn red where the pixel pushed class j up
// and blue where it pushed it down, with one colour scale for the whole table so the rows can be compared.
// When the last layer reads a hidden vector (lenet: dense 84 → dense 10), each row is a 1×n strip instead.
// It redraws after every update of the input or the parameters (window.scratchcnn.onUpdate, explorer.js),
// which happens while the user draws and while the Train panel trains, so it reuses its buffers and images.
"use strict";
(function () {
  const S = window.scratchcnn;
  const D = S.data, specs = D.config.layers, shapes = D.shapes, names = D.class_names;
  const $ = (id) => document.getElementById(id);
  const size = (shape) => shape.reduce((a, b) => a * b, 1);

  // ---- computing (no DOM) ---------------------------------------------------------------------------

  function lastDense() {
    for (let i = specs.length - 1; i >= 0; i--) if (specs[i].type === "dense") return i;
    return -1;
  }
  // What the last dense layer d reads: the flattened maps [K, R, Q] of the flatten layer d − 1 ("maps"),
  // or a vector of n hidden units ("hidden", drawn as one map 1×n).
  function layout(d) {
    const n = size(shapes[d]), C = size(shapes[d + 1]);
    const flat = d > 0 && specs[d - 1].type === "flatten" ? shapes[d - 1] : null;
    if (flat && flat.length >= 2 && size(flat) === n) {
      const [K, R, Q] = flat.length === 3 ? flat : [1, ...flat];
      return { form: "maps", d, n, C, K, R, Q };
    }
    return { form: "hidden", d, n, C, K: 1, R: 1, Q: n };
  }
  // E_j(i) = W_{j,i} x_i, the term of input i in class j's score; A_j their sum plus b_j; partial[j·K + k]
  // the sum over map k alone. The terms are added in network.js's order (b_j first, then i = 0, 1, …), so A_j
  // is exactly the layer's output.
  function contributions(W, b, x, C, n, K, E, A, partial) {
    const area = n / K;
    for (let j = 0; j < C; j++) {
      const row = j * n;
      let s = b ? b[j] : 0;  // + b_j
      for (let k = 0; k < K; k++) {
        let part = 0;
        for (let i = k * area, end = i + area; i < end; i++) {
          const e = W[row + i] * x[i];  // W_{j,k}(p, q) Z_k(p, q), i = k·R·Q + p·Q + q
          E[row + i] = e;
          part += e;
          s += e;  // A_j = Σ_{k,p,q} W_{j,k}(p, q) Z_k(p, q) + b_j
        }
        partial[j * K + k] = part;
      }
      A[j] = s;
    }
  }
  function absmax(a) {
    let m = 0;
    for (let i = 0; i < a.length; i++) { const v = Math.abs(a[i]); if (v > m) m = v; }
    return m;
  }
  // RGBA bytes of `count` values from `offset`: red for +scale, white for 0, blue for −scale (as the Layers panel).
  function diverging(bytes, vals, offset, count, scale) {
    const inv = scale > 0 ? 1 / scale : 0;
    for (let i = 0; i < count; i++) {
      const t = Math.max(-1, Math.min(1, vals[offset + i] * inv)), u = Math.round(255 * (1 - Math.abs(t))), o = 4 * i;
      bytes[o] = t >= 0 ? 255 : u; bytes[o + 1] = u; bytes[o + 2] = t >= 0 ? u : 255; bytes[o + 3] = 255;
    }
  }

  // ---- the table ------------------------------------------------------------------------------------

  const d = lastDense(), panel = $("evidence");
  if (d < 1) {  // (a dense layer reads a vector: layer 0, reading the image, cannot be one)
    $("evidence-hint").textContent = "This network has no dense layer: there is no class score to take apart.";
    S.evidence = () => ({ classes: [] });
    return;
  }
  const L = layout(d), { C, n, K, R, Q } = L, area = R * Q;
  const W = S.params[d].W, b = S.params[d].b || null, x = S.outs[d - 1] || null;
  const E = new Float64Array(C * n), A = new Float64Array(C), partial = new Float64Array(C * K);
  let scale = 0, best = 0;

  const plusB = b ? " + b<sub>j</sub>" : "", colours = ". Red pushed class j up, blue down; one colour scale for the " +
    "whole table.";
  if (L.form === "hidden") {
    $("evidence-hint").innerHTML = "The last layer (layer " + (d + 1) + ", " + D.specs[d] + ") reads " + n +
      " hidden units, not maps: each strip shows W<sub>j,i</sub> x<sub>i</sub> for i = 1…" + n + ", x being the " +
      "output of layer " + d + " (" + D.specs[d - 1] + "), the terms of A<sub>j</sub> = Σ<sub>i</sub> " +
      "W<sub>j,i</sub> x<sub>i</sub>" + plusB + colours;
  } else if (d === 1) {  // flatten, dense: the maps are the input X itself
    $("evidence-hint").innerHTML = "This network's only dense layer reads the input X directly: each map is " +
      "W<sub>j</sub>(p, q) X(p, q), the terms of A<sub>j</sub> = Σ<sub>p,q</sub> W<sub>j</sub>(p, q) X(p, q)" +
      plusB + colours;
  }

  // Each map's longer side in CSS pixels: smaller as there are more maps per row; a strip at most 420 px wide.
  const side = L.form === "hidden" ? Math.min(420, 5 * n) : K <= 4 ? 64 : K <= 8 ? 42 : K <= 16 ? 32 : 22;
  const fmt = (v) => (Math.abs(v) < 5e-5 ? "0.0000" : v.toFixed(4));
  const caption = document.createElement("p"), table = document.createElement("table"), rows = [];
  caption.className = "scale"; caption.id = "evidence-scale";
  table.className = "evidence";
  const what = L.form === "maps" ? (d === 1 ? "W<sub>j</sub> ⊙ X" : "W<sub>j,k</sub> ⊙ Z<sub>k</sub>, k = 1…" + K)
    : "W<sub>j,i</sub> x<sub>i</sub>, i = 1…" + n;
  table.innerHTML = "<tr><th>class j</th><th>" + what + "</th><th>Σ</th>" + (b ? "<th>+ b<sub>j</sub></th>" : "") +
    "<th>= A<sub>j</sub></th><th>P<sub>j</sub></th></tr>";
  for (let j = 0; j < C; j++) {
    const tr = document.createElement("tr"), maps = document.createElement("td");
    const row = { tr, contexts: [], images: [] };
    const cell = (cls) => {
      const td = document.createElement("td");
      td.className = cls; tr.appendChild(td);
      return td;
    };
    cell("name").textContent = names[j] !== undefined ? names[j] : String(j);
    tr.appendChild(maps);
    maps.className = "maps";
    for (let k = 0; k < K; k++) {
      const el = S.draw.canvas(Q, R, "ev"), s = side / Math.max(R, Q);
      el.style.width = Q * s + "px"; el.style.height = Math.max(R * s, L.form === "hidden" ? 12 : 0) + "px";
      if (L.form === "maps") {  // the map's own sum, on hover (not rewritten at every redraw: it costs)
        el.addEventListener("mouseenter", () => {
          el.title = "k = " + (k + 1) + ": Σ_{p,q} W_{j,k}(p, q) Z_k(p, q) = " + fmt(partial[j * K + k]);
        });
      }
      maps.appendChild(el);
      row.contexts.push(el.getContext("2d"));
      row.images.push(row.contexts[k].createImageData(Q, R));
    }
    row.sum = cell("num"); row.bias = b ? cell("num") : null; row.total = cell("num total"); row.p = cell("num");
    table.appendChild(tr);
    rows.push(row);
  }
  panel.replaceChildren(caption, table);

  function compute() {
    contributions(W, b, x, C, n, K, E, A, partial);
    scale = absmax(E);
    best = 0;
    for (let j = 1; j < C; j++) if (S.P[j] > S.P[best]) best = j;
  }
  function render() {
    compute();
    rows.forEach((row, j) => {
      for (let k = 0; k < K; k++) {
        const img = row.images[k];
        diverging(img.data, E, j * n + k * area, area, scale);
        row.contexts[k].putImageData(img, 0, 0);
      }
      row.sum.textContent = fmt(A[j] - (b ? b[j] : 0));
      if (row.bias) row.bias.textContent = fmt(b[j]);
      row.total.textContent = fmt(A[j]);
      row.p.textContent = (100 * S.P[j]).toFixed(1) + " %";
      row.tr.classList.toggle("top", j === best);
    });
    caption.textContent = "colour scale " + S.draw.scaleText(scale) + " (the largest |term| in the table), for " +
      "every " + (L.form === "maps" ? "map" : "strip") + "; the predicted class, " +
      (names[best] !== undefined ? names[best] : best) + ", is highlighted.";
  }
  // Redrawn only while on screen: the user draws at the top of the page, and a wide network's table costs
  // milliseconds; scrolled into view, it catches up with the input and parameters of the moment.
  let onScreen = true, stale = false;
  const redraw = () => { if (onScreen) render(); else stale = true; };
  if (typeof IntersectionObserver !== "undefined") {
    new IntersectionObserver((entries) => {
      onScreen = entries[entries.length - 1].isIntersecting;
      if (onScreen && stale) { stale = false; render(); }
    }).observe(panel);
  }
  render();
  S.onUpdate(redraw);

  // For tests: the table's numbers, computed afresh for the current input and parameters.
  S.evidence = () => {
    compute();
    return {
      form: L.form, layer: d, shape: L.form === "maps" ? [K, R, Q] : [n], scale, predicted: best,
      classes: Array.from(A, (total, j) => ({
        total, bias: b ? b[j] : 0, probability: S.P[j], contributions: Array.from(E.subarray(j * n, (j + 1) * n)),
      })),
    };
  };
  S.timeEvidence = (reps) => {  // mean milliseconds of one redraw of the panel
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) render();
    return (performance.now() - t0) / reps;
  };
})();
