// The network in JavaScript: the forward pass of scratchcnn's Stack (nn/stack_layers.py), one function per
// layer type with the same equations, then the softmax. It computes and never draws: no DOM, so the
// explorer page runs it as a classic script and a Web Worker can load it with importScripts. Both find it
// on one global, ScratchNet. A network arrives as the page's JSON (explorer.py's page_data): the layers'
// configs, each layer's input shape then the output's, and the parameters "<layer index>.<name>", flat and
// row-major. Arrays are flat too: a C×H×W map is c·H·W + i·W + j.
(function (root) {
  "use strict";

  // Zeros above and left (Conv.pads()[0]); those below and right follow from the output's size.
  const padBefore = (L) => (L.padding === "same" ? (L.kernel_size - 1) >> 1 : 0);
  // X: C_in×H×W → Y: K×H'×W', stride 1; X(i+a, j+b) is the padded input: X shifted by `before`, 0 outside
  function conv(L, p, X, [Cin, Hin, Win], Y, [K, Ho, Wo]) {
    const k = L.kernel_size, before = padBefore(L), f = p.f, b = p.b;
    for (let kk = 0; kk < K; kk++) {
      for (let i = 0; i < Ho; i++) {
        const a0 = Math.max(0, before - i), a1 = Math.min(k, Hin + before - i);  // rows a inside the image
        for (let j = 0; j < Wo; j++) {
          const b0 = Math.max(0, before - j), b1 = Math.min(k, Win + before - j);
          let s = 0;
          for (let c = 0; c < Cin; c++) {
            const xo = c * Hin * Win + (i - before) * Win + j - before, fo = (kk * Cin + c) * k * k;
            for (let a = a0; a < a1; a++) {
              const xr = xo + a * Win, fr = fo + a * k;
              for (let bb = b0; bb < b1; bb++) {
                s += X[xr + bb] * f[fr + bb];  // Y_k(i, j) = Σ_c Σ_a Σ_b X_c(i+a, j+b) f_kc(a, b)
              }
            }
          }
          Y[(kk * Ho + i) * Wo + j] = b ? s + b[kk] : s;  // + b_k
        }
      }
    }
  }
  function relu(X, Y) {
    for (let i = 0; i < Y.length; i++) Y[i] = X[i] > 0 ? X[i] : 0;  // Y = max(X, 0)
  }
  // 2×2, stride 2: Y: C×H×W → Z: C×(H/2)×(W/2), an odd last row/column dropped
  function pool(L, Y, [, Hin, Win], Z, [Cn, R, Q]) {
    for (let c = 0; c < Cn; c++) {
      for (let p = 0; p < R; p++) {
        for (let q = 0; q < Q; q++) {
          const y0 = (c * Hin + 2 * p) * Win + 2 * q, y1 = y0 + Win;  // Y(2p, 2q) and Y(2p+1, 2q)
          let z = Y[y0];  // decimate: Z(p, q) = Y(2p, 2q)
          if (L.how === "avg") z = (Y[y0] + Y[y0 + 1] + Y[y1] + Y[y1 + 1]) / 4;  // Z(p, q) = ¼ Σ_{u,v} Y(2p+u, 2q+v)
          else if (L.how === "max") {
            for (const y of [y0 + 1, y1, y1 + 1]) if (Y[y] > z) z = Y[y];  // Z(p, q) = max_{u,v} Y(2p+u, 2q+v)
          }  // (strictly greater: the first maximum wins a tie, as argmax does)
          Z[(c * R + p) * Q + q] = z;
        }
      }
    }
  }
  function flatten(X, Y) {
    Y.set(X);  // (c, i, j) → c·H·W + i·W + j: row-major, the write-up's W_{j,k,p,q} order
  }
  function dense(p, X, A) {
    const n = X.length, Wt = p.W, b = p.b;
    for (let o = 0; o < A.length; o++) {
      let s = b ? b[o] : 0;  // + b_o
      const wo = o * n;
      for (let i = 0; i < n; i++) s += Wt[wo + i] * X[i];  // A_o = Σ_i W_oi X_i
      A[o] = s;
    }
  }
  // A: the C scores → P: the C probabilities
  function softmax(A, P) {
    const C = A.length;
    let m = -Infinity, total = 0;
    for (let c = 0; c < C; c++) m = Math.max(m, A[c]);  // shifting by max a_k changes nothing, avoids overflow
    for (let c = 0; c < C; c++) { P[c] = Math.exp(A[c] - m); total += P[c]; }
    for (let c = 0; c < C; c++) P[c] /= total;  // P_j = e^{a_j} / Σ_k e^{a_k}
    return P;
  }
  // Layer L (its config) with parameters p: input X of shape inShape → Y of shape outShape.
  function apply(L, p, X, inShape, Y, outShape) {
    if (L.type === "conv") conv(L, p, X, inShape, Y, outShape);
    else if (L.type === "relu") relu(X, Y);
    else if (L.type === "pool") pool(L, X, inShape, Y, outShape);
    else if (L.type === "flatten") flatten(X, Y);
    else if (L.type === "dense") dense(p, X, Y);
    else throw new Error("unknown layer type " + L.type);
  }

  // The network of page data D ({config, shapes, params}): its parameters per layer ({f, W, b} as present,
  // in the stored dtype, so the numbers are exactly the saved ones), each layer's output buffer (reused:
  // outs[i] holds layer i's output for the last input), P, and forward(X) → P.
  function network(D) {
    const cfg = D.config, specs = cfg.layers, shapes = D.shapes;  // shapes[i]: layer i's input, then the output
    const Arr = cfg.dtype === "float64" ? Float64Array : Float32Array;
    const size = (shape) => shape.reduce((a, b) => a * b, 1);
    const params = specs.map((_, i) => {
      const own = {};
      for (const name of ["f", "W", "b"]) if (D.params[i + "." + name]) own[name] = new Arr(D.params[i + "." + name]);
      return own;
    });
    const outs = specs.map((_, i) => new Float64Array(size(shapes[i + 1])));
    const P = new Float64Array(cfg.classes);
    function forward(X) {  // X: H·W pixels in [0, 1]; each layer's output is the next one's input
      let input = X;
      specs.forEach((L, i) => {
        apply(L, params[i], input, shapes[i], outs[i], shapes[i + 1]);
        input = outs[i];
      });
      return softmax(input, P);
    }
    return { config: cfg, specs, shapes, params, outs, P, forward };
  }

  root.ScratchNet = { padBefore, conv, relu, pool, flatten, dense, softmax, apply, network };
})(typeof self !== "undefined" ? self : globalThis);  // self: the page's window or the worker's global
