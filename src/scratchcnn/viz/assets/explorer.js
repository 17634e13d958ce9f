// The explorer's network, in the browser: the forward pass of scratchcnn's ConvNet, the same equations
// as nn/layers.py and nn/model.py, for every option: K filters of k×k, zero padding k−1 at the
// bottom/right, activation none|relu, pool decimate|max|avg (2×2, stride 2, odd sizes drop the last
// row/column), A = W Z (+ b), softmax. explorer.py inlines this file into the page it writes; the page
// links to nothing, so it works from disk, offline.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("model-data").textContent);
  const cfg = D.config, H = cfg.input_shape[0], Wd = cfg.input_shape[1], K = cfg.filters, k = cfg.kernel_size;
  const C = cfg.classes, R = H >> 1, Q = Wd >> 1, HW = H * Wd, RQ = R * Q, relu = cfg.activation === "relu";
  const Arr = cfg.dtype === "float64" ? Float64Array : Float32Array;  // the exact stored parameters
  const f = new Arr(D.f), Wt = new Arr(D.W), b = D.b ? new Arr(D.b) : null;
  const Y = new Float64Array(K * HW), Z = new Float64Array(K * RQ), A = new Float64Array(C), P = new Float64Array(C);
  const $ = (id) => document.getElementById(id);

  // ---- the forward pass: model.py's equations -------------------------------------------------
  function forward(X) {
    for (let c = 0; c < K; c++) {  // Y_c(i, j) = Σ_a Σ_b X(i+a, j+b) f_c(a, b), then the activation
      const fo = c * k * k, yo = c * HW;
      for (let i = 0; i < H; i++) {
        const amax = Math.min(k, H - i);
        for (let j = 0; j < Wd; j++) {
          const bmax = Math.min(k, Wd - j);
          let s = 0;
          for (let a = 0; a < amax; a++) {
            const xr = (i + a) * Wd + j, fr = fo + a * k;
            for (let bb = 0; bb < bmax; bb++) s += X[xr + bb] * f[fr + bb];
          }
          Y[yo + i * Wd + j] = relu && s < 0 ? 0 : s;
        }
      }
    }
    for (let c = 0; c < K; c++) {  // 2×2 pooling, stride 2
      for (let p = 0; p < R; p++) {
        for (let q = 0; q < Q; q++) {
          const y0 = c * HW + 2 * p * Wd + 2 * q;
          let z;
          if (cfg.pool === "decimate") z = Y[y0];
          else if (cfg.pool === "avg") z = (Y[y0] + Y[y0 + 1] + Y[y0 + Wd] + Y[y0 + Wd + 1]) / 4;
          else z = Math.max(Y[y0], Y[y0 + 1], Y[y0 + Wd], Y[y0 + Wd + 1]);
          Z[c * RQ + p * Q + q] = z;
        }
      }
    }
    const n = K * RQ;
    let m = -Infinity;
    for (let c = 0; c < C; c++) {  // A = W Z (+ b)
      let s = b ? b[c] : 0;
      const wo = c * n;
      for (let i = 0; i < n; i++) s += Wt[wo + i] * Z[i];
      A[c] = s;
      if (s > m) m = s;
    }
    let total = 0;
    for (let c = 0; c < C; c++) { P[c] = Math.exp(A[c] - m); total += P[c]; }  // softmax
    for (let c = 0; c < C; c++) P[c] /= total;
    return P;
  }

  // ---- drawing: a soft round brush on an H×W grid ---------------------------------------------
  const G = new Float64Array(HW);  // what was drawn (or picked), 0..1
  let X = new Float64Array(HW);    // the network's input
  const unit = Math.min(H, Wd) / 28, r0 = 0.7 * unit, r1 = 2.0 * unit;  // full ink inside r0, none beyond r1
  function stroke(x0, y0, x1, y1) {
    const dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    const i0 = Math.max(0, Math.floor(Math.min(y0, y1) - r1)), i1 = Math.min(H - 1, Math.ceil(Math.max(y0, y1) + r1));
    const j0 = Math.max(0, Math.floor(Math.min(x0, x1) - r1)), j1 = Math.min(Wd - 1, Math.ceil(Math.max(x0, x1) + r1));
    for (let i = i0; i <= i1; i++) {
      for (let j = j0; j <= j1; j++) {
        const px = j + 0.5, py = i + 0.5;
        const t = len2 ? Math.max(0, Math.min(1, ((px - x0) * dx + (py - y0) * dy) / len2)) : 0;
        const d = Math.hypot(px - x0 - t * dx, py - y0 - t * dy);
        if (d >= r1) continue;
        let a = d <= r0 ? 1 : (r1 - d) / (r1 - r0);
        a = a * a * (3 - 2 * a);  // smooth, anti-aliased edge
        G[i * Wd + j] = 1 - (1 - G[i * Wd + j]) * (1 - a);  // ink adds up towards 1
      }
    }
  }

  // MNIST's preparation (images.py): crop to the ink, fit the longer side to 20/28, peak 1, centre of mass central.
  function centre(src) {
    let peak = 0;
    for (let i = 0; i < HW; i++) peak = Math.max(peak, src[i]);
    if (peak <= 0) return Float64Array.from(src);
    let top = H, bot = -1, left = Wd, right = -1;
    for (let i = 0; i < H; i++) for (let j = 0; j < Wd; j++) {
      if (src[i * Wd + j] > 0.3 * peak) {
        top = Math.min(top, i); bot = Math.max(bot, i); left = Math.min(left, j); right = Math.max(right, j);
      }
    }
    const h = bot - top + 1, w = right - left + 1;
    const boxH = Math.max(1, Math.round(H * 20 / 28)), boxW = Math.max(1, Math.round(Wd * 20 / 28));
    const s = Math.min(boxH / h, boxW / w);
    const oh = Math.max(1, Math.min(boxH, Math.round(h * s))), ow = Math.max(1, Math.min(boxW, Math.round(w * s)));
    const sy = h / oh, sx = w / ow, scaled = new Float64Array(oh * ow);
    const S = 4;  // S×S samples per output pixel, bilinear: smooth when enlarging, averaging when shrinking
    const at = (y, x) => {
      y -= 0.5; x -= 0.5;
      const yi = Math.floor(y), xi = Math.floor(x), fy = y - yi, fx = x - xi;
      const v = (r, c) => (r < 0 || c < 0 || r >= h || c >= w) ? 0 : src[(top + r) * Wd + left + c];
      return (1 - fy) * ((1 - fx) * v(yi, xi) + fx * v(yi, xi + 1))
        + fy * ((1 - fx) * v(yi + 1, xi) + fx * v(yi + 1, xi + 1));
    };
    let speak = 0, mass = 0, cy = 0, cx = 0;
    for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      let acc = 0;
      for (let u = 0; u < S; u++) {
        for (let v = 0; v < S; v++) acc += at((i + (u + 0.5) / S) * sy, (j + (v + 0.5) / S) * sx);
      }
      acc /= S * S;
      scaled[i * ow + j] = acc; speak = Math.max(speak, acc); mass += acc; cy += acc * i; cx += acc * j;
    }
    const out = new Float64Array(HW);
    if (speak <= 0) return out;
    const t = Math.floor(H / 2 - cy / mass + 0.5), l = Math.floor(Wd / 2 - cx / mass + 0.5);
    for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      const r = i + t, c = j + l;
      if (r >= 0 && c >= 0 && r < H && c < Wd) out[r * Wd + c] = Math.min(1, scaled[i * ow + j] / speak);
    }
    return out;
  }

  // ---- pictures -------------------------------------------------------------------------------
  function canvas(w, h, cls) {
    const el = document.createElement("canvas");
    el.width = w; el.height = h; el.className = "px " + (cls || "");
    return el;
  }
  // gray: MNIST's own convention, as in the figures and `predict --save`: 0 black, 1 white (white ink on black).
  function paint(el, vals, offset, w, h, scale, gray) {
    const ctx = el.getContext("2d"), img = ctx.createImageData(w, h);
    for (let i = 0; i < w * h; i++) {
      const v = vals[offset + i];
      let r, g, bl;
      if (gray) { r = g = bl = Math.round(255 * Math.max(0, Math.min(1, v))); }
      else {
        const t = scale > 0 ? Math.max(-1, Math.min(1, v / scale)) : 0, u = Math.round(255 * (1 - Math.abs(t)));
        if (t >= 0) { r = 255; g = bl = u; } else { r = g = u; bl = 255; }
      }
      img.data.set([r, g, bl, 255], 4 * i);
    }
    ctx.putImageData(img, 0, 0);
  }
  const absmax = (a, from = 0, to = a.length) => {
    let m = 0;
    for (let i = from; i < to; i++) m = Math.max(m, Math.abs(a[i]));
    return m;
  };
  const scaleText = (v) => "±" + (v >= 1000 ? v.toFixed(0) : v.toPrecision(4));
  const fmt = (v) => (Math.abs(v) < 5e-4 ? "0.000" : v.toFixed(3));

  const drawEl = $("draw"), inputEl = $("input");
  drawEl.width = Wd; drawEl.height = H; inputEl.width = Wd; inputEl.height = H;
  const layers = $("layers"), maps = [];
  layers.innerHTML = "<tr><th></th><th>kernel f<sub>k</sub> (" + k + "×" + k + ")</th><th>convolved Y<sub>k</sub>" +
    (relu ? " (after ReLU)" : "") + "</th><th>pooled Z<sub>k</sub> (" + cfg.pool + ")</th></tr>";
  const scaleLabel = (id) => {  // the "±max" printed under a map
    const el = document.createElement("div"); el.className = "scale"; el.id = id; return el;
  };
  for (let c = 0; c < K; c++) {
    const tr = document.createElement("tr"), fk = canvas(k, k, "kern");
    const yk = canvas(Wd, H, "map"), zk = canvas(Q, R, "map"), n = c + 1;
    const m = { fk, yk, zk, fs: scaleLabel("scale-f" + n), ys: scaleLabel("scale-Y" + n),
      zs: scaleLabel("scale-Z" + n) };
    const cells = [[document.createTextNode("k = " + n)], [fk, m.fs], [yk, m.ys], [zk, m.zs]];
    for (const nodes of cells) { const td = document.createElement("td"); td.append(...nodes); tr.appendChild(td); }
    layers.appendChild(tr);
    yk.addEventListener("mousemove", (e) => showY(c, e)); zk.addEventListener("mousemove", (e) => showZ(c, e));
    yk.addEventListener("mouseleave", hideWindow); zk.addEventListener("mouseleave", hideWindow);
    maps.push(m);
  }
  // Each map on its own colour scale ±max|map| by default, so a weak filter's maps stay visible; with
  // "shared scale" ticked, one scale per column (the column's max), so maps of a column can be compared.
  function paintMaps(shared) {
    const columns = [[f, k * k, "fk", "fs", k, k], [Y, HW, "yk", "ys", Wd, H], [Z, RQ, "zk", "zs", Q, R]];
    for (const [vals, size, key, label, w, h] of columns) {
      const whole = absmax(vals);
      maps.forEach((m, c) => {
        const s = shared ? whole : absmax(vals, c * size, (c + 1) * size);
        paint(m[key], vals, c * size, w, h, s, false); m[label].textContent = scaleText(s);
      });
    }
  }

  const names = D.class_names, bars = [];
  for (let c = 0; c < C; c++) {
    const row = document.createElement("div"); row.className = "bar";
    row.innerHTML = '<span class="name"></span><span class="track"><div class="fill"></div></span>' +
      '<span class="val"></span>';
    row.querySelector(".name").textContent = names[c];
    $("bars").appendChild(row); bars.push(row);
  }

  let shown = new Float64Array(C);
  let picked = -1;  // the test image shown as it is, until the user draws on it or clears it
  function update() {
    X = $("centre").checked && picked < 0 ? centre(G) : Float64Array.from(G);
    const t0 = performance.now();
    for (let r = 0; r < 10; r++) forward(X);  // 10 times: the browser's clock is coarse
    const ms = (performance.now() - t0) / 10;
    shown = Float64Array.from(P);
    paint(drawEl, G, 0, Wd, H, 1, true); paint(inputEl, X, 0, Wd, H, 1, true);
    paintMaps($("shared-scale").checked);
    let best = 0;
    for (let c = 1; c < C; c++) if (P[c] > P[best]) best = c;
    bars.forEach((row, c) => {
      row.classList.toggle("top", c === best);
      row.querySelector(".fill").style.width = (100 * P[c]).toFixed(1) + "%";
      row.querySelector(".val").textContent = (100 * P[c]).toFixed(1) + " %";
    });
    $("prediction").textContent = "→ " + names[best] + " (" + (100 * P[best]).toFixed(1) + " %)";
    $("timing").textContent = "forward pass in this page: " + (ms < 0.01 ? "< 0.01" : ms.toFixed(2)) + " ms";
    $("input-note").textContent = picked >= 0 ? "test image " + D.images.indices[picked] +
      ", as it is: already centred and scaled (the checkbox applies to drawings)"
      : $("centre").checked ? "the drawing, centred and scaled" : "the canvas as drawn";
  }

  // ---- hovering: where a pixel of Y_k or Z_k came from ------------------------------------------
  function cell(e, w, h) {  // offsetX/Y: from the pixels' edge, inside the border
    const el = e.target;
    const i = Math.floor(e.offsetY / el.clientHeight * h), j = Math.floor(e.offsetX / el.clientWidth * w);
    return [Math.max(0, Math.min(h - 1, i)), Math.max(0, Math.min(w - 1, j))];
  }
  function showWindow(i, j, rows, cols) {
    const el = $("window"), sh = inputEl.clientHeight / H, sw = inputEl.clientWidth / Wd;
    Object.assign(el.style, { display: "block", top: (1 + i * sh) + "px", left: (1 + j * sw) + "px",
      height: Math.min(rows, H - i) * sh + "px", width: Math.min(cols, Wd - j) * sw + "px" });
  }
  function hideWindow() { $("window").style.display = "none"; }
  function grid(fn) {
    let s = "<table>";
    for (let a = 0; a < k; a++) { s += "<tr>"; for (let bb = 0; bb < k; bb++) s += fn(a, bb); s += "</tr>"; }
    return s + "</table>";
  }
  function yTerms(c, i, j) {
    const terms = [];
    let s = 0;
    for (let a = 0; a < k; a++) for (let bb = 0; bb < k; bb++) {
      const inside = i + a < H && j + bb < Wd, x = inside ? X[(i + a) * Wd + j + bb] : 0, w = f[c * k * k + a * k + bb];
      s += x * w; terms.push({ x, w, inside });
    }
    return { terms, s };
  }
  function showY(c, e) {
    const [i, j] = cell(e, Wd, H), { terms, s } = yTerms(c, i, j), n = c + 1;
    showWindow(i, j, k, k);
    const nz = terms.filter((t) => t.x !== 0);
    const at = "(" + i + ", " + j + ")", sub = "<sub>" + n + "</sub>";
    $("detail").innerHTML = "<h2>Y" + sub + at + " = " + fmt(Y[c * HW + i * Wd + j]) + "</h2>" +
      "<p>Y" + sub + at + " = Σ<sub>a,b</sub> X(" + i + "+a, " + j + "+b) f" + sub + "(a, b)" +
      (relu ? ", then ReLU max(·, 0)" : "") + "</p>" +
      "<p>window of X (grey: zero padding)</p>" + grid((a, bb) => {
        const t = terms[a * k + bb];
        return "<td" + (t.inside ? "" : " class='pad'") + ">" + fmt(t.x) + "</td>";
      }) +
      "<p>kernel f<sub>" + n + "</sub></p>" + grid((a, bb) => "<td>" + fmt(terms[a * k + bb].w) + "</td>") +
      "<p class='eq'>= " + (nz.length ? nz.map((t) => fmt(t.x) + "×" + fmt(t.w)).join(" + ") : "0") +
      (nz.length < terms.length ? " (+ " + (terms.length - nz.length) + " terms with X = 0)" : "") +
      "<br>= " + fmt(s) + (relu ? "<br>ReLU: max(" + fmt(s) + ", 0) = " + fmt(Math.max(s, 0)) : "") + "</p>";
  }
  function showZ(c, e) {
    const [p, q] = cell(e, Q, R), n = c + 1, y0 = c * HW + 2 * p * Wd + 2 * q;
    showWindow(2 * p, 2 * q, cfg.pool === "decimate" ? 1 : 2, cfg.pool === "decimate" ? 1 : 2);
    const four = [Y[y0], Y[y0 + 1], Y[y0 + Wd], Y[y0 + Wd + 1]].map(fmt);
    const how = { decimate: "Y<sub>" + n + "</sub>(" + 2 * p + ", " + 2 * q + ") (decimation keeps even i, j)",
      max: "max(" + four.join(", ") + ")", avg: "(" + four.join(" + ") + ") / 4" }[cfg.pool];
    const sub = "<sub>" + n + "</sub>", at = "(" + p + ", " + q + ")";
    $("detail").innerHTML = "<h2>Z" + sub + at + " = " + fmt(Z[c * RQ + p * Q + q]) + "</h2>" +
      "<p>from Y" + sub + " rows " + 2 * p + "–" + (2 * p + 1) + ", columns " + 2 * q + "–" + (2 * q + 1) + ":</p>" +
      "<p class='eq'>Z" + sub + at + " = " + how + "</p>";
  }

  // ---- input: pointer (mouse, pen, touch), clear, test images -----------------------------------
  let last = null;
  const pos = (e) => {  // in input pixels, from the drawing's edge inside the border
    const r = drawEl.getBoundingClientRect();
    return [(e.clientX - r.left - drawEl.clientLeft) / drawEl.clientWidth * Wd,
      (e.clientY - r.top - drawEl.clientTop) / drawEl.clientHeight * H];
  };
  drawEl.addEventListener("pointerdown", (e) => {
    e.preventDefault(); drawEl.setPointerCapture(e.pointerId); last = pos(e); picked = -1;
    stroke(last[0], last[1], last[0], last[1]); update();
  });
  drawEl.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = pos(e); stroke(last[0], last[1], p[0], p[1]); last = p; update();
  });
  const up = () => { last = null; };
  drawEl.addEventListener("pointerup", up); drawEl.addEventListener("pointercancel", up);
  function select(el) {
    document.querySelectorAll("#picker figure").forEach((x) => x.classList.toggle("sel", x === el));
  }
  $("clear").addEventListener("click", () => { G.fill(0); picked = -1; select(null); update(); });
  $("centre").checked = D.centre_default;  // once, at load: after that the checkbox is the user's alone
  $("centre").addEventListener("change", update);
  $("shared-scale").addEventListener("change", update);

  const images = [];
  if (D.images) {
    const raw = atob(D.images.base64);
    for (let n = 0; n < D.images.labels.length; n++) {
      const px = new Uint8Array(HW);
      for (let i = 0; i < HW; i++) px[i] = raw.charCodeAt(n * HW + i);
      images.push(px);
      const fig = document.createElement("figure"), th = canvas(Wd, H), cap = document.createElement("figcaption");
      paint(th, Float64Array.from(px, (v) => v / 255), 0, Wd, H, 1, true);
      cap.textContent = names[D.images.labels[n]];
      fig.title = "test image " + D.images.indices[n] + ": " + names[D.images.labels[n]];
      fig.append(th, cap); $("picker").appendChild(fig);
      fig.addEventListener("click", () => selectImage(n));
    }
  } else {
    $("no-picker").hidden = false; $("no-picker").textContent = D.images_note || "No test images embedded.";
  }
  function selectImage(n) {  // a test image is already prepared: it is the input as it is, whatever the checkbox
    for (let i = 0; i < HW; i++) G[i] = images[n][i] / 255;
    picked = n; select(document.querySelectorAll("#picker figure")[n]); update();
  }

  window.scratchcnn = {
    config: cfg,
    predict(pixels) {  // pixels: H·W floats in [0, 1]; the page's own pictures are left as they were
      const out = Array.from(forward(Float64Array.from(pixels))); forward(X); return out;
    },
    probabilities() { return Array.from(shown); },
    input() { return Array.from(X); },
    imageCount: images.length,
    image(n) { return Array.from(images[n]); },
    selectImage,
    timeForward(reps) {  // mean milliseconds of one forward pass over reps runs on the current input
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) forward(X);
      return (performance.now() - t0) / reps;
    },
  };
  if (images.length) selectImage(0); else update();
})();
