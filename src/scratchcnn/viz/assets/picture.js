// A user's own picture → the 28×28 image the network sees, made as data/images.py's preprocess makes it from
// the same RGBA bytes (its steps and their reasons are explained there): luminance, the paper's plane and the
// ink's side, crop, scale the longer side to 20 px with Pillow's Lanczos filter, stretch to 0..255, paste
// with the centre of mass at the centre, shifted by whole pixels. The arithmetic follows NumPy's and
// Pillow's own, float32 where they compute in float32 (Math.fround), so that the result is the same bytes,
// not just a similar picture. (`scratchcnn predict` reading a picture file first rounds its gray levels to
// whole numbers, which can move a few pixels by one level.) No DOM: the input is the RGBA bytes a canvas's
// getImageData gives. A page or a worker finds it on one global, ScratchPicture (node: module.exports too).
(function (root) {
  "use strict";

  const MNIST_SHAPE = [28, 28], MNIST_BOX = 20;  // the canvas, and the box the ink is scaled into
  const INK_FRACTION = 0.3, NOISE_PERCENTILE = 90, PAPER_FITS = 3, MAX_SIDE = 1600, MIN_CONTRAST = 16;
  const f32 = Math.fround;
  const LUMA = [0.299, 0.587, 0.114].map(f32);  // ITU-R 601, as float32: images.py's LUMA.astype(np.float32)

  class PictureError extends Error {}  // a picture that cannot be used: its message is the reason shown

  // ---- NumPy's arithmetic ------------------------------------------------------------------------------

  // np.sum of float32 values a[start], a[start + stride], ... (n of them): NumPy's pairwise summation, in
  // float32 (eight partial sums over blocks of at most 128, halves above that).
  function pairwiseSum(a, start, n, stride) {
    if (n < 8) {
      let s = 0;
      for (let i = 0; i < n; i++) s = f32(s + a[start + i * stride]);
      return s;
    }
    if (n <= 128) {
      const r = new Float32Array(8);
      for (let j = 0; j < 8; j++) r[j] = a[start + j * stride];
      let i = 8;
      for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = f32(r[j] + a[start + (i + j) * stride]);
      let s = f32(f32(f32(r[0] + r[1]) + f32(r[2] + r[3])) + f32(f32(r[4] + r[5]) + f32(r[6] + r[7])));
      for (; i < n; i++) s = f32(s + a[start + i * stride]);
      return s;
    }
    let half = Math.floor(n / 2);
    half -= half % 8;
    return f32(pairwiseSum(a, start, half, stride) + pairwiseSum(a, start + half * stride, n - half, stride));
  }
  const sum32 = (a) => pairwiseSum(a, 0, a.length, 1);

  function max(a) {
    let m = -Infinity;
    for (let i = 0; i < a.length; i++) if (a[i] > m) m = a[i];
    return m;
  }

  // Python's round() and np.rint: halves go to the even neighbour.
  function roundHalfEven(x) {
    const r = Math.round(x);  // halves up
    return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  // np.median of float64 values: the middle one, or the mean of the middle two.
  function median(values) {
    const s = Float64Array.from(values).sort(), n = s.length;
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }

  // np.percentile(a, q) of float32 values, method "linear": the virtual index (n − 1)·q/100 in float64, then
  // NumPy's _lerp in float32 (a + (b − a)·t, or b − (b − a)·(1 − t) from t = ½ on).
  function percentile32(values, q) {
    const s = Float32Array.from(values).sort(), n = s.length;
    const virtual = (n - 1) * (q / 100);
    if (virtual >= n - 1) return s[n - 1];
    const below = Math.floor(virtual), t = virtual - below, a = s[below], b = s[below + 1];
    const diff = f32(b - a);
    return t >= 0.5 ? f32(b - f32(diff * f32(1 - t))) : f32(a + f32(diff * f32(t)));
  }

  // ---- a picture as float32 luminance (to_gray) --------------------------------------------------------

  // RGBA bytes (H·W·4) → gray: Float32Array H·W on 0..255. Transparent pixels go on a backdrop that
  // contrasts with the opaque strokes: white under dark strokes, black under light ones.
  function toGray(rgba, W, H) {
    const n = W * H, gray = new Float32Array(n);
    let transparent = false;
    for (let i = 0; i < n; i++) {
      const p = 4 * i;
      gray[i] = f32(f32(f32(rgba[p] * LUMA[0]) + f32(rgba[p + 1] * LUMA[1])) + f32(rgba[p + 2] * LUMA[2]));
      if (rgba[p + 3] < 255) transparent = true;
    }
    if (!transparent) return gray;
    const alpha = new Float32Array(n), weighted = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      alpha[i] = f32(rgba[4 * i + 3] / 255);
      weighted[i] = f32(gray[i] * alpha[i]);
    }
    const opacity = sum32(alpha);
    const opaqueMean = opacity > 0 ? f32(sum32(weighted) / opacity) : 0;  // the strokes' mean gray level
    const backdrop = opaqueMean < 128 ? 255 : 0;
    for (let i = 0; i < n; i++) gray[i] = f32(f32(alpha[i] * gray[i]) + f32(f32(1 - alpha[i]) * backdrop));
    return gray;
  }

  // load_image's refusal of a picture with less than MIN_CONTRAST gray levels between its darkest and lightest.
  function checkContrast(gray) {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < gray.length; i++) { lo = Math.min(lo, gray[i]); hi = Math.max(hi, gray[i]); }
    const contrast = f32(hi - lo);
    if (contrast < MIN_CONTRAST) {
      throw new PictureError("no ink: the image is " + (contrast === 0 ? "all one colour"
        : "nearly one colour (contrast " + roundHalfEven(contrast) + " of 255)"));
    }
  }

  // ---- a large photo averaged down (shrink: Pillow's reduce(factor) of a float32 image) -----------------

  // Each output pixel is the mean of a factor×factor block; the blocks cut by the right and bottom edges
  // average what they hold. Pillow adds a block's values in float32 pairs and fours into a double.
  function shrink(gray, W, H) {
    const k = Math.ceil(Math.max(W, H) / MAX_SIDE);
    if (k <= 1) return { gray, W, H };
    const Wo = Math.floor((W - 1) / k) + 1, Ho = Math.floor((H - 1) / k) + 1, out = new Float32Array(Wo * Ho);
    const px = (x, y) => gray[y * W + x];
    for (let y = 0; y < Math.floor(H / k); y++) {  // whole blocks
      for (let x = 0; x < Math.floor(W / k); x++) {
        const x0 = x * k, y0 = y * k;
        let s = 0, yy = y0, xx;
        for (; yy < y0 + k - 1; yy += 2) {
          for (xx = x0; xx < x0 + k - 1; xx += 2) {
            s += f32(f32(f32(px(xx, yy) + px(xx + 1, yy)) + px(xx, yy + 1)) + px(xx + 1, yy + 1));
          }
          if (k & 1) s += f32(px(xx, yy) + px(xx, yy + 1));
        }
        if (k & 1) {  // the last row of an odd block, and its last pixel
          for (xx = x0; xx < x0 + k - 1; xx += 2) s += f32(px(xx, yy) + px(xx + 1, yy));
          s += px(xx, yy);
        }
        out[y * Wo + x] = s * (1 / (k * k));
      }
    }
    const blockMean = (x0, x1, y0, y1) => {  // the part blocks along the edges: plain sums in a double
      let s = 0;
      for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) s += px(xx, yy);
      return s * (1 / ((x1 - x0) * (y1 - y0)));
    };
    const xr = Math.floor(W / k), yr = Math.floor(H / k);
    if (W % k) for (let y = 0; y < yr; y++) out[y * Wo + xr] = blockMean(xr * k, W, y * k, y * k + k);
    if (H % k) for (let x = 0; x < xr; x++) out[yr * Wo + x] = blockMean(x * k, x * k + k, yr * k, H);
    if (W % k && H % k) out[yr * Wo + xr] = blockMean(xr * k, W, yr * k, H);
    return { gray: out, W: Wo, H: Ho };
  }

  // ---- the paper and the ink (paper_level, ink_side, ink) ----------------------------------------------

  // The outermost rows and columns as one list, corners twice: images.py's _border order
  // (top row, bottom row, left column, right column), with each pixel's row and column.
  function border(W, H) {
    const rows = [], cols = [];
    for (let j = 0; j < W; j++) { rows.push(0); cols.push(j); }
    for (let j = 0; j < W; j++) { rows.push(H - 1); cols.push(j); }
    for (let i = 0; i < H; i++) { rows.push(i); cols.push(0); }
    for (let i = 0; i < H; i++) { rows.push(i); cols.push(W - 1); }
    return { rows, cols, index: rows.map((r, k) => r * W + cols[k]) };
  }

  // Do the points (row, col) all lie on one line? Then the plane's slope across it cannot be seen
  // (np.linalg.matrix_rank of the design [1, row, col] is below 3).
  function collinear(rows, cols, keep) {
    const kept = [];
    for (let k = 0; k < keep.length; k++) if (keep[k]) kept.push(k);
    const k0 = kept[0], k1 = kept.find((k) => rows[k] !== rows[k0] || cols[k] !== cols[k0]);
    if (k1 === undefined) return true;
    const dr = rows[k1] - rows[k0], dc = cols[k1] - cols[k0];
    return kept.every((k) => dr * (cols[k] - cols[k0]) - dc * (rows[k] - rows[k0]) === 0);
  }

  // Least squares v ≈ a + b·row + c·col over the kept points: the normal equations with the rows and
  // columns centred (so that they are well conditioned), a Cramer's-rule solve of the 2×2 slope part.
  function fitPlane(values, rows, cols, keep) {
    let n = 0, r0 = 0, c0 = 0, v0 = 0;
    for (let k = 0; k < keep.length; k++) if (keep[k]) { n++; r0 += rows[k]; c0 += cols[k]; v0 += values[k]; }
    r0 /= n; c0 /= n; v0 /= n;
    let rr = 0, rc = 0, cc = 0, rv = 0, cv = 0;
    for (let k = 0; k < keep.length; k++) {
      if (!keep[k]) continue;
      const r = rows[k] - r0, c = cols[k] - c0, v = values[k] - v0;
      rr += r * r; rc += r * c; cc += c * c; rv += r * v; cv += c * v;
    }
    const det = rr * cc - rc * rc;
    const b = (rv * cc - cv * rc) / det, c = (cv * rr - rv * rc) / det;
    return [v0 - b * r0 - c * c0, b, c];
  }

  // The paper's gray level under each pixel (float32 H·W) and which border pixels are bare paper: start
  // from the border's most common gray level (8-level bins), then keep the border pixels close to the
  // plane fitted to those kept so far.
  function paperLevel(gray, W, H) {
    const { rows, cols, index } = border(W, H);
    const values = Float64Array.from(index, (i) => gray[i]);
    const counts = new Array(32).fill(0);
    for (const v of values) counts[Math.min(31, Math.floor(v / 8))]++;  // np.histogram(bins=32, range=(0, 256))
    const fullest = counts.indexOf(Math.max(...counts));
    const level = median(values.filter((v) => v >= 8 * fullest && v < 8 * fullest + 8));
    let keep = Array.from(values, (v) => Math.abs(v - level) <= MIN_CONTRAST), coef;
    for (let round = 0; round < PAPER_FITS; round++) {
      coef = collinear(rows, cols, keep) ? [median(values.filter((_, k) => keep[k])), 0, 0]
        : fitPlane(values, rows, cols, keep);
      const residual = Array.from(values, (v, k) => Math.abs(v - (coef[0] + coef[1] * rows[k] + coef[2] * cols[k])));
      const spread = 3 * median(residual.filter((_, k) => keep[k])) + 2;  // + 2 gray levels: a clean border
      keep = residual.map((d) => d <= spread);
    }
    const [a, b, c] = coef.map(f32);
    const paper = new Float32Array(W * H);
    for (let i = 0; i < H; i++) {
      const rowLevel = f32(a + f32(b * i));
      for (let j = 0; j < W; j++) paper[i * W + j] = f32(rowLevel + f32(c * j));  // a + b·row + c·col
    }
    return { paper, onPaper: keep, index };
  }

  // −1 when the ink is darker than the paper (the picture gets inverted), +1 when lighter: the side with
  // more pixels beyond half the largest deviation.
  function inkSide(deviation) {
    let reach = 0;
    for (let i = 0; i < deviation.length; i++) reach = Math.max(reach, Math.abs(deviation[i]));
    reach = f32(reach / 2);
    let darker = 0, lighter = 0;
    for (let i = 0; i < deviation.length; i++) {
      if (deviation[i] < -reach) darker++;
      else if (deviation[i] > reach) lighter++;
    }
    if (darker === 0 && lighter === 0) throw new PictureError("no ink: the image is all one colour");
    return darker >= lighter ? -1 : 1;
  }

  // How much ink each pixel holds (float32 H·W ≥ 0): its distance from the paper on the ink's side, less the
  // paper's own noise (the NOISE_PERCENTILE of the bare border's).
  function ink(gray, W, H) {
    const { paper, onPaper, index } = paperLevel(gray, W, H);
    const deviation = new Float32Array(W * H);
    for (let i = 0; i < deviation.length; i++) deviation[i] = f32(gray[i] - paper[i]);
    const side = inkSide(deviation);
    const amount = deviation.map((d) => Math.max(side * d, 0));
    const bare = index.filter((_, k) => onPaper[k]).map((i) => amount[i]);
    const noise = bare.length ? percentile32(bare, NOISE_PERCENTILE) : 0;
    for (let i = 0; i < amount.length; i++) amount[i] = Math.max(f32(amount[i] - noise), 0);
    if (max(amount) < MIN_CONTRAST) {
      throw new PictureError("no ink: nothing differs from the background by " + MIN_CONTRAST + " gray levels or more");
    }
    return { amount, inverted: side < 0 };
  }

  // The ink cut to the bounding box of its pixels above INK_FRACTION of the strongest: {amount, W, H}.
  function cropToInk(amount, W, H) {
    const threshold = f32(f32(INK_FRACTION) * max(amount));
    let top = H, bottom = -1, left = W, right = -1;
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        if (amount[i * W + j] > threshold) {
          top = Math.min(top, i); bottom = Math.max(bottom, i); left = Math.min(left, j); right = Math.max(right, j);
        }
      }
    }
    const w = right - left + 1, h = bottom - top + 1, out = new Float32Array(w * h);
    for (let i = 0; i < h; i++) out.set(amount.subarray((top + i) * W + left, (top + i) * W + left + w), i * w);
    return { amount: out, W: w, H: h };
  }

  // ---- scaling: Pillow's resize(size, LANCZOS) of a float32 image ---------------------------------------

  // The Lanczos kernel, a = 3: sinc(x)·sinc(x/3) on [−3, 3).
  const sinc = (x) => (x === 0 ? 1 : Math.sin(x * Math.PI) / (x * Math.PI));
  const lanczos = (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0);

  // Pillow's weights for inSize → outSize along one axis: output pixel o takes input pixels
  // first[o] .. first[o] + weights[o].length − 1. Shrinking widens the kernel by the scale (an average over
  // each output pixel's whole footprint, no aliasing); the weights are normalised to sum to 1.
  function lanczosWeights(inSize, outSize) {
    const scale = inSize / outSize, stretch = Math.max(scale, 1), support = 3 * stretch;
    const first = [], weights = [];
    for (let o = 0; o < outSize; o++) {
      const centre = (o + 0.5) * scale;
      const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
      const hi = Math.min(Math.trunc(centre + support + 0.5), inSize);
      const w = [];
      let total = 0;
      for (let x = lo; x < hi; x++) { const v = lanczos((x - centre + 0.5) * (1 / stretch)); w.push(v); total += v; }
      first.push(lo);
      weights.push(total !== 0 ? w.map((v) => v / total) : w);
    }
    return { first, weights };
  }

  // One pass along rows (horizontal) or columns: src (W×H, float32) → (outW×outH), sums in a double,
  // each result stored as float32. Rows outside [rowFrom, rowFrom + outH) of src are not needed.
  function resampleRows(src, W, outW, rows, rowFrom, k) {
    const out = new Float32Array(outW * rows);
    for (let y = 0; y < rows; y++) {
      const line = (y + rowFrom) * W;
      for (let x = 0; x < outW; x++) {
        const w = k.weights[x], x0 = k.first[x];
        let s = 0;
        for (let t = 0; t < w.length; t++) s += src[line + x0 + t] * w[t];
        out[y * outW + x] = s;
      }
    }
    return out;
  }
  function resampleColumns(src, W, outH, k) {
    const out = new Float32Array(W * outH);
    for (let y = 0; y < outH; y++) {
      const w = k.weights[y], y0 = k.first[y];
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let t = 0; t < w.length; t++) s += src[(y0 + t) * W + x] * w[t];
        out[y * W + x] = s;
      }
    }
    return out;
  }

  // src W×H → outW×outH. Pillow 13 runs the vertical pass first when the height shrinks by more than twice
  // as many pixels as the width does, else the horizontal pass first, over only the rows the vertical needs.
  function resizeLanczos(src, W, H, outW, outH) {
    const horizontal = outW !== W, vertical = outH !== H;
    const kx = lanczosWeights(W, outW), ky = lanczosWeights(H, outH);
    if (H - outH > 0 && H - outH > 2 * (W - outW)) {
      const tall = vertical ? resampleColumns(src, W, outH, ky) : src;
      return horizontal ? resampleRows(tall, W, outW, outH, 0, kx) : tall;
    }
    if (!horizontal) return resampleColumns(src, W, outH, ky);
    const from = ky.first[0], to = ky.first[outH - 1] + ky.weights[outH - 1].length;
    const wide = resampleRows(src, W, outW, vertical ? to - from : H, vertical ? from : 0, kx);
    if (!vertical) return wide;
    const shifted = { first: ky.first.map((f) => f - from), weights: ky.weights };
    return resampleColumns(wide, outW, outH, shifted);
  }

  // Scale the ink to fit the box [rows, cols] keeping its aspect ratio, one side touching the box; Lanczos's
  // slight overshoot below 0 is clipped away.
  function fitBox(crop, box) {
    const { amount, W, H } = crop, scale = Math.min(box[0] / H, box[1] / W);
    const w = Math.max(1, Math.min(box[1], roundHalfEven(W * scale)));
    const h = Math.max(1, Math.min(box[0], roundHalfEven(H * scale)));
    if (w === W && h === H) return crop;
    const out = resizeLanczos(amount, W, H, w, h);
    for (let i = 0; i < out.length; i++) if (out[i] < 0) out[i] = 0;
    return { amount: out, W: w, H: h };
  }

  // ---- pasting with the centre of mass at the centre (paste_centred) -----------------------------------

  // Ink h×w into a zero canvas rows×cols, shifted by whole pixels so that its centre of mass lands at
  // (rows/2, cols/2); ink pushed past an edge is cut off. The sums are NumPy's: float32 row, column and total.
  function pasteCentred(scaled, shape) {
    const { amount, W: w, H: h } = scaled, [Hc, Wc] = shape;
    const total = sum32(amount);
    let cy = 0, cx = 0;
    for (let i = 0; i < h; i++) cy += pairwiseSum(amount, i * w, w, 1) * i;  // Σ_i (Σ_j ink) · i
    for (let j = 0; j < w; j++) {
      let column = 0;
      for (let i = 0; i < h; i++) column = f32(column + amount[i * w + j]);
      cx += column * j;
    }
    cy /= total; cx /= total;
    const top = Math.floor(Hc / 2 - cy + 0.5), left = Math.floor(Wc / 2 - cx + 0.5);
    const canvas = new Float64Array(Hc * Wc);
    for (let i = Math.max(top, 0); i < Math.min(top + h, Hc); i++) {
      for (let j = Math.max(left, 0); j < Math.min(left + w, Wc); j++) {
        canvas[i * Wc + j] = amount[(i - top) * w + j - left];
      }
    }
    return canvas;
  }

  // The box the ink is scaled into: MNIST's 20/28 of each side.
  const inkBox = (shape) => shape.map((side) => Math.max(1, roundHalfEven((side * MNIST_BOX) / MNIST_SHAPE[0])));

  // ---- the whole preparation -----------------------------------------------------------------------------

  // rgba: the W·H·4 bytes of getImageData (Uint8ClampedArray or any array of 0..255); size [rows, cols].
  // → {pixels: Float64Array rows·cols in [0, 1] (the uint8 image preprocess makes, divided by 255), ok,
  //    inverted: the ink was darker than the paper} or {ok: false, reason, pixels: zeros} for a picture
  // without ink, with the reason scratchcnn predict gives (pixels empty for a bad size).
  function prepare(rgba, width, height, size = MNIST_SHAPE) {
    const [rows, cols] = Array.from(size, Number);
    if (!(Number.isInteger(rows) && Number.isInteger(cols) && rows >= 1 && cols >= 1)) {
      return refused(new Float64Array(0), "shape must be two positive sizes, got " + JSON.stringify(size));
    }
    const pixels = new Float64Array(rows * cols);
    try {
      if (!(width >= 1 && height >= 1)) throw new PictureError("the image has no pixels");
      if (rgba.length !== width * height * 4) {
        throw new PictureError("expected " + width * height * 4 + " RGBA bytes for " + width + "×" + height +
          ", got " + rgba.length);
      }
      const gray = toGray(rgba, width, height);
      checkContrast(gray);
      const small = shrink(gray, width, height);
      const { amount, inverted } = ink(small.gray, small.W, small.H);
      const scaled = fitBox(cropToInk(amount, small.W, small.H), inkBox([rows, cols]));
      const peak = max(scaled.amount);
      if (!(peak > 0)) throw new PictureError("no ink left after scaling the image down");
      const stretch = f32(255 / peak);  // the strongest ink becomes 255
      scaled.amount = scaled.amount.map((v) => f32(v * stretch));
      const canvas = pasteCentred(scaled, [rows, cols]);
      for (let i = 0; i < pixels.length; i++) pixels[i] = Math.min(Math.max(roundHalfEven(canvas[i]), 0), 255) / 255;
      return { pixels, ok: true, inverted };
    } catch (error) {
      if (!(error instanceof PictureError)) throw error;
      return refused(pixels, error.message);
    }
  }
  const refused = (pixels, reason) => ({ pixels, ok: false, reason, inverted: false });

  const api = { prepare, toGray, MNIST_SHAPE, MIN_CONTRAST, MAX_SIDE };
  root.ScratchPicture = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof self !== "undefined" ? self : globalThis);  // self: the page's window or the worker's global
