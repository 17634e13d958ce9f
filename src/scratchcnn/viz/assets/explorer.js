// The explorer page in the browser: drawing, the picker, the Layers panel and the hover details. The network
// itself (the forward pass, layer by layer, and the softmax) is network.js, inlined before this file:
// ScratchNet.network builds it from the page's JSON. explorer.py inlines both into the page it writes; the
// page links to nothing, so it works from disk, offline.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("model-data").textContent);
  const { params, outs, P, forward } = ScratchNet.network(D);  // outs[i]: layer i's output, for the last X
  const cfg = D.config, specs = cfg.layers, shapes = D.shapes;  // shapes[i]: layer i's input, then the output
  const H = cfg.input_shape[0], Wd = cfg.input_shape[1], C = cfg.classes, HW = H * Wd;
  const $ = (id) => document.getElementById(id);

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
      const d = img.data, o = 4 * i;  // no array per pixel: while training, the page repaints often
      d[o] = r; d[o + 1] = g; d[o + 2] = bl; d[o + 3] = 255;
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

  // ---- the Layers panel: each convolution with its activation and pooling, one row per filter ----------
  // A block: conv layer `conv`, the layer drawn as Y_k (the conv, or the ReLU after it) and the one drawn
  // as Z_k (the pooling after it, or the ReLU after that), if any. The seed network has one block.
  const padBefore = ScratchNet.padBefore;
  const next = (i, type) => specs[i + 1] !== undefined && specs[i + 1].type === type;
  const blocks = [];
  specs.forEach((L, i) => {
    if (L.type !== "conv") return;
    const y = next(i, "relu") ? i + 1 : i, pool = next(y, "pool") ? y + 1 : -1;
    const z = pool < 0 ? -1 : next(pool, "relu") ? pool + 1 : pool;
    const [Cin, Hin, Win] = shapes[i], [K, Ho, Wo] = shapes[i + 1], [, R, Q] = pool < 0 ? [] : shapes[pool + 1];
    blocks.push({ conv: i, y, pool, z, Cin, Hin, Win, K, Ho, Wo, R, Q, k: L.kernel_size, before: padBefore(L),
      n: blocks.length + 1, maps: [] });
  });
  const drawEl = $("draw"), inputEl = $("input");
  drawEl.width = Wd; drawEl.height = H; inputEl.width = Wd; inputEl.height = H;
  const scaleLabel = (id) => Object.assign(document.createElement("div"), { className: "scale", id });  // "±max"
  function mapCanvas(w, h, side) {  // the longer side `side` CSS pixels, the pixels square
    const el = canvas(w, h, "map"), s = side / Math.max(w, h);
    el.style.width = w * s + "px"; el.style.height = h * s + "px";
    return el;
  }
  function buildBlock(blk) {
    const sfx = blk.n > 1 ? "-" + blk.n : "", side = blk.n > 1 ? 96 : 168, table = document.createElement("table");
    const relu = blk.y !== blk.conv, kernels = blk.Cin === 1;
    table.className = "layers";
    const kernel = "<th>kernel f<sub>k</sub> (" + blk.k + "×" + blk.k + ")</th>";
    table.innerHTML = "<tr><th></th>" + (kernels ? kernel : "") +
      "<th>convolved Y<sub>k</sub>" + (relu ? " (after ReLU)" : "") + "</th>" +
      (blk.z < 0 ? "" : "<th>pooled Z<sub>k</sub> (" + specs[blk.pool].how + ")</th>") + "</tr>";
    for (let c = 0; c < blk.K; c++) {
      const tr = document.createElement("tr"), n = c + 1, m = {};
      const cells = [[document.createTextNode("k = " + n)]];
      if (kernels) {
        m.fk = canvas(blk.k, blk.k, "kern"); m.fs = scaleLabel("scale-f" + n + sfx); cells.push([m.fk, m.fs]);
      }
      m.yk = mapCanvas(blk.Wo, blk.Ho, side); m.ys = scaleLabel("scale-Y" + n + sfx); cells.push([m.yk, m.ys]);
      m.yk.addEventListener("mousemove", (e) => showY(blk, c, e));
      if (blk.z >= 0) {
        m.zk = mapCanvas(blk.Q, blk.R, side); m.zs = scaleLabel("scale-Z" + n + sfx); cells.push([m.zk, m.zs]);
        m.zk.addEventListener("mousemove", (e) => showZ(blk, c, e));
      }
      for (const el of [m.yk, m.zk]) if (el) el.addEventListener("mouseleave", hideWindow);
      for (const nodes of cells) { const td = document.createElement("td"); td.append(...nodes); tr.appendChild(td); }
      table.appendChild(tr);
      blk.maps.push(m);
    }
    if (blocks.length > 1) {  // a deeper stack: say which layers each table shows
      const h = document.createElement("h3"), last = Math.max(blk.y, blk.z);
      h.textContent = "convolution " + blk.n + " of " + blocks.length + ": layers " + (blk.conv + 1) + "–" +
        (last + 1) + ", " + D.specs.slice(blk.conv, last + 1).join(" → ") + (kernels ? "" : " (its " + blk.Cin +
        "-channel kernels f_kc: see scratchcnn figures)");
      $("layers").appendChild(h);
    }
    $("layers").appendChild(table);
  }
  blocks.forEach(buildBlock);
  if (!blocks.length) $("layers").textContent = "This network has no convolution: no maps to draw.";
  if (blocks.some((blk) => blk.Cin > 1 || blk.before > 0 || params[blk.conv].b)) {
    $("detail").querySelector(".hint").innerHTML = "Y<sub>k</sub>(i, j) = Σ<sub>c</sub> Σ<sub>a,b</sub> " +
      "X<sub>c</sub>(i+a−p, j+b−p) f<sub>kc</sub>(a, b) (+ b<sub>k</sub>), X<sub>c</sub> the layer's input " +
      "channel c, 0 outside the image; p the padding above and left.";
  }
  // Each map on its own colour scale ±max|map| by default, so a weak filter's maps stay visible; with
  // "shared scale" ticked, one scale per column (the column's max), so maps of a column can be compared.
  function paintMaps(shared) {
    for (const blk of blocks) {
      const columns = [[outs[blk.y], blk.Ho * blk.Wo, "yk", "ys", blk.Wo, blk.Ho]];
      if (blk.Cin === 1) columns.push([params[blk.conv].f, blk.k * blk.k, "fk", "fs", blk.k, blk.k]);
      if (blk.z >= 0) columns.push([outs[blk.z], blk.R * blk.Q, "zk", "zs", blk.Q, blk.R]);
      for (const [vals, area, key, label, w, h] of columns) {
        const whole = absmax(vals);
        blk.maps.forEach((m, c) => {
          const s = shared ? whole : absmax(vals, c * area, (c + 1) * area);
          paint(m[key], vals, c * area, w, h, s, false); m[label].textContent = scaleText(s);
        });
      }
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
  let picked = -1;  // the test image shown as it is (−2: the user's picture), until the user draws on it or clears it
  const listeners = [];  // evidence.js, lab.js: told after each update
  let pending = false;  // an update asked for and not yet done: at most one per frame while drawing or training
  function requestUpdate() {
    if (!pending) { pending = true; requestAnimationFrame(() => { if (pending) update(); }); }
  }
  const flush = () => { if (pending) update(); };  // before reading what the page shows
  function update() {
    pending = false;
    X = $("centre").checked && picked === -1 ? centre(G) : Float64Array.from(G);
    let reps = 0;
    const t0 = performance.now();
    do { forward(X); reps++; } while (reps < 10 && performance.now() - t0 < 5);  // repeated: the clock is coarse
    const ms = (performance.now() - t0) / reps;
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
      : picked === -2 ? "your picture, prepared as scratchcnn predict prepares it"
        : $("centre").checked ? "the drawing, centred and scaled" : "the canvas as drawn";
    for (const fn of listeners) fn();
  }

  // ---- hovering: where a pixel of Y_k or Z_k came from ------------------------------------------
  function cell(e, w, h) {  // offsetX/Y: from the pixels' edge, inside the border
    const el = e.target;
    const i = Math.floor(e.offsetY / el.clientHeight * h), j = Math.floor(e.offsetX / el.clientWidth * w);
    return [Math.max(0, Math.min(h - 1, i)), Math.max(0, Math.min(w - 1, j))];
  }
  function showWindow(blk, i, j, rows, cols) {  // rows × cols pixels of X from (i, j), clipped to the image
    if (blk.conv > 0) return hideWindow();  // a deeper layer's window lies in maps, not in X
    const el = $("window"), sh = inputEl.clientHeight / H, sw = inputEl.clientWidth / Wd;
    const i0 = Math.max(0, i), j0 = Math.max(0, j), i1 = Math.min(H, i + rows);
    const j1 = Math.min(Wd, j + cols);
    Object.assign(el.style, { display: "block", top: (1 + i0 * sh) + "px", left: (1 + j0 * sw) + "px",
      height: (i1 - i0) * sh + "px", width: (j1 - j0) * sw + "px" });
  }
  function hideWindow() { $("window").style.display = "none"; }
  function grid(k, fn) {
    let s = "<table>";
    for (let a = 0; a < k; a++) { s += "<tr>"; for (let bb = 0; bb < k; bb++) s += fn(a, bb); s += "</tr>"; }
    return s + "</table>";
  }
  // The terms x·w of Y_k(i, j) for input channel c: x = X_c(i+a−p, j+b−p) (0 in the padding), w = f_kc(a, b).
  function yTerms(blk, kk, c, i, j) {
    const input = blk.conv === 0 ? X : outs[blk.conv - 1], f = params[blk.conv].f, k = blk.k, terms = [];
    let s = 0;
    for (let a = 0; a < k; a++) for (let bb = 0; bb < k; bb++) {
      const r = i + a - blk.before, q = j + bb - blk.before;
      const inside = r >= 0 && q >= 0 && r < blk.Hin && q < blk.Win;
      const x = inside ? input[(c * blk.Hin + r) * blk.Win + q] : 0, w = f[((kk * blk.Cin + c) * k + a) * k + bb];
      s += x * w; terms.push({ x, w, inside });
    }
    return { terms, s };
  }
  function showY(blk, kk, e) {
    const [i, j] = cell(e, blk.Wo, blk.Ho), n = kk + 1, k = blk.k, b = params[blk.conv].b, p = blk.before;
    const relu = blk.y !== blk.conv, at = "(" + i + ", " + j + ")", sub = "<sub>" + n + "</sub>";
    const shift = p ? "−" + p : "", which = blk.n > 1 ? "convolution " + blk.n + ": " : "";
    showWindow(blk, i - p, j - p, k, k);
    let html = "<h2>" + which + "Y" + sub + at + " = " + fmt(outs[blk.y][(kk * blk.Ho + i) * blk.Wo + j]) + "</h2>";
    let s = b ? b[kk] : 0;
    if (blk.Cin === 1) {
      const { terms, s: sum } = yTerms(blk, kk, 0, i, j), nz = terms.filter((t) => t.x !== 0);
      s += sum;
      html += "<p>Y" + sub + at + " = Σ<sub>a,b</sub> X(" + i + "+a" + shift + ", " + j + "+b" + shift + ") f" + sub +
        "(a, b)" + (b ? " + b" + sub : "") + (relu ? ", then ReLU max(·, 0)" : "") + "</p>" +
        "<p>window of " + (blk.conv ? "its input" : "X") + " (grey: zero padding)</p>" + grid(k, (a, bb) => {
          const t = terms[a * k + bb];
          return "<td" + (t.inside ? "" : " class='pad'") + ">" + fmt(t.x) + "</td>";
        }) + "<p>kernel f" + sub + "</p>" + grid(k, (a, bb) => "<td>" + fmt(terms[a * k + bb].w) + "</td>") +
        "<p class='eq'>= " + (nz.length ? nz.map((t) => fmt(t.x) + "×" + fmt(t.w)).join(" + ") : "0") +
        (nz.length < terms.length ? " (+ " + (terms.length - nz.length) + " terms with X = 0)" : "");
    } else {  // C_in channels of k×k terms: too many to list, so one partial sum per channel
      const parts = [];
      for (let c = 0; c < blk.Cin; c++) { const t = yTerms(blk, kk, c, i, j).s; parts.push(t); s += t; }
      html += "<p>Y" + sub + at + " = Σ<sub>c</sub> Σ<sub>a,b</sub> X<sub>c</sub>(" + i + "+a" + shift + ", " + j +
        "+b" + shift + ") f<sub>" + n + "c</sub>(a, b)" + (b ? " + b" + sub : "") + (relu ? ", then ReLU" : "") +
        "; X<sub>c</sub>: channel c of layer " + blk.conv + "'s output</p><p>Σ<sub>a,b</sub> of each channel:</p>" +
        "<table>" + parts.map((v, c) => "<tr><td>c = " + (c + 1) + "</td><td>" + fmt(v) + "</td></tr>").join("") +
        "</table><p class='eq'>= " + parts.map(fmt).join(" + ");
    }
    html += (b ? " + " + fmt(b[kk]) : "") + "<br>= " + fmt(s) +
      (relu ? "<br>ReLU: max(" + fmt(s) + ", 0) = " + fmt(Math.max(s, 0)) : "") + "</p>";
    $("detail").innerHTML = html;
  }
  function showZ(blk, kk, e) {
    const [p, q] = cell(e, blk.Q, blk.R), n = kk + 1, how = specs[blk.pool].how, Y = outs[blk.y];
    const y0 = (kk * blk.Ho + 2 * p) * blk.Wo + 2 * q, L = specs[blk.conv];
    const centre = L.padding === "bottom-right" ? 0 : ((blk.k - 1) >> 1) - blk.before;  // Y(i, j) ↔ X(i+centre)
    const one = how === "decimate" ? 1 : 2;
    showWindow(blk, 2 * p + centre, 2 * q + centre, one, one);
    const four = [Y[y0], Y[y0 + 1], Y[y0 + blk.Wo], Y[y0 + blk.Wo + 1]].map(fmt);
    const sub = "<sub>" + n + "</sub>", at = "(" + p + ", " + q + ")";
    const rule = { decimate: "Y" + sub + "(" + 2 * p + ", " + 2 * q + ") (decimation keeps even i, j)",
      max: "max(" + four.join(", ") + ")", avg: "(" + four.join(" + ") + ") / 4" }[how];
    $("detail").innerHTML = "<h2>" + (blk.n > 1 ? "convolution " + blk.n + ": " : "") + "Z" + sub + at + " = " +
      fmt(outs[blk.z][(kk * blk.R + p) * blk.Q + q]) + "</h2>" +
      "<p>from Y" + sub + " rows " + 2 * p + "–" + (2 * p + 1) + ", columns " + 2 * q + "–" + (2 * q + 1) + "</p>" +
      "<p class='eq'>Z" + sub + at + " = " + rule + (blk.z !== blk.pool ? ", then ReLU max(·, 0)" : "") + "</p>";
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
    stroke(last[0], last[1], last[0], last[1]); requestUpdate();
  });
  drawEl.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = pos(e); stroke(last[0], last[1], p[0], p[1]); last = p; requestUpdate();
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
    probabilities() { flush(); return Array.from(shown); },
    outputs() { flush(); return Array.from(outs, (out) => Array.from(out)); },  // each layer's, for the current input
    input() { flush(); return Array.from(X); },
    imageCount: images.length,
    image(n) { return Array.from(images[n]); },
    selectImage,
    timeForward(reps) {  // mean milliseconds of one forward pass over reps runs on the current input
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) forward(X);
      return (performance.now() - t0) / reps;
    },
    // For the page's other scripts: the network, drawing helpers, and hooks into the input and parameters.
    data: D, params, outs, P, blocks,
    draw: { canvas, paint, mapCanvas, absmax, scaleText },
    onUpdate(fn) { listeners.push(fn); },
    flush,
    setParameters(named) {  // {"<layer>.<name>": numbers}: e.g. what the Train panel's worker has trained
      for (const [key, values] of Object.entries(named)) {
        const [i, name] = key.split(".");
        params[+i][name].set(values);
      }
      requestUpdate();
    },
    setPicture(pixels) {  // H·W floats in [0, 1], already prepared: the input as it is
      G.set(pixels); picked = -2; select(null); update();
    },
  };
  if (images.length) selectImage(0); else update();
})();
