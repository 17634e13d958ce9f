// The backward pass in JavaScript: scratchcnn's Stack layers (nn/stack_layers.py) one function per equation,
// the equation beside the line that computes it, and the forward pieces training needs beside network.js's.
// trainer.js (the batches and the optimisers) is built on it. No DOM: the page, a Web Worker and node run it.
// It attaches one namespace, ScratchBackprop; load network.js first (its padBefore gives a conv's padding).
//
// Four layers have their own forward here: conv and dense, which hold nearly all the arithmetic, in faster
// forms of network.js's sums; ReLU and max pooling, which keep NaN as NumPy does (a diverging run then stops
// where fit stops) and, for max, remember each window's winner for the backward pass. Everything is float64.
(function (root) {
  "use strict";

  const Net = root.ScratchNet;
  if (!Net) throw new Error("backprop.js needs network.js: load it first (it defines ScratchNet)");
  const size = (shape) => shape.reduce((a, b) => a * b, 1);

  // ---- the forward pieces of training -------------------------------------------------------------------
  // NumPy's ReLU and max pooling let NaN through (np.maximum, argmax), network.js's drop it (for drawing).

  function reluForward(X, Y) {
    for (let i = 0; i < Y.length; i++) {
      const x = X[i];
      Y[i] = x > 0 || x !== x ? x : 0;  // Y = max(X, 0), NaN kept
    }
  }

  // 2×2 max pooling that also records each window's winner u·2 + v for the backward pass: the first
  // maximum in the order (0,0), (0,1), (1,0), (1,1) wins a tie, and the first NaN beats everything (argmax's rule).
  function maxPoolForward(Y, [, Hin, Win], Z, winner, [Cn, R, Q]) {
    for (let c = 0; c < Cn; c++) {
      for (let p = 0; p < R; p++) {
        for (let q = 0; q < Q; q++) {
          const y0 = (c * Hin + 2 * p) * Win + 2 * q, y1 = y0 + Win;
          let best = 0, z = Y[y0];
          for (let w = 1; w < 4 && z === z; w++) {  // (a NaN z has won: stop)
            const y = Y[w === 1 ? y0 + 1 : w === 2 ? y1 : y1 + 1];
            if (y > z || y !== y) { best = w; z = y; }  // strictly greater: an earlier equal value keeps the win
          }
          const o = (c * R + p) * Q + q;
          Z[o] = z;  // Z(p, q) = max_{u,v} Y(2p+u, 2q+v)
          winner[o] = best;
        }
      }
    }
  }

  // A_o = Σ_i W_oi X_i (+ b_o), network.js's dense with four partial sums per row: one running sum waits on
  // each addition before the next (~4× slower). NumPy's BLAS sums in its own order too.
  function denseForward(W, bias, X, A) {
    const n = X.length, n4 = n - (n % 4);
    for (let o = 0; o < A.length; o++) {
      const wo = o * n;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
      for (; i < n4; i += 4) {
        s0 += W[wo + i] * X[i];  // A_o = Σ_i W_oi X_i
        s1 += W[wo + i + 1] * X[i + 1];
        s2 += W[wo + i + 2] * X[i + 2];
        s3 += W[wo + i + 3] * X[i + 3];
      }
      for (; i < n; i++) s0 += W[wo + i] * X[i];
      A[o] = bias ? (s0 + s1) + (s2 + s3) + bias[o] : (s0 + s1) + (s2 + s3);  // + b_o
    }
  }

  // ln P and P from the scores A, as NumPy's log_softmax: returns −ln P_y, the record's loss.
  function logSoftmaxLoss(A, y, P) {
    const C = A.length;
    let m = -Infinity, total = 0;
    for (let c = 0; c < C; c++) m = Math.max(m, A[c]);  // shifting by max_k a_k changes nothing, avoids overflow
    for (let c = 0; c < C; c++) total += Math.exp(A[c] - m);
    const lnTotal = Math.log(total);
    for (let c = 0; c < C; c++) P[c] = Math.exp(A[c] - m - lnTotal);  // ln P_j = a_j − ln Σ_k e^{a_k}
    return -(A[y] - m - lnTotal);  // L = −ln P_y
  }

  // The index of the largest score, as NumPy's argmax: the first maximum, or the first NaN if there is one.
  function argmax(A) {
    let best = 0;
    for (let c = 0; c < A.length; c++) {
      if (A[c] !== A[c]) return c;
      if (A[c] > A[best]) best = c;
    }
    return best;
  }

  // ---- the backward equations: from ∂L/∂(a layer's output) to its parameters' and its input's gradients --
  // The parameters' gradients are added (+=) so that a batch's records sum into them.

  function crossEntropyBackward(P, y, N, dA) {
    for (let c = 0; c < P.length; c++) dA[c] = (P[c] - (c === y ? 1 : 0)) / N;  // ∂L/∂A = (P − onehot(y)) / N
  }

  // The long loops over a dense layer's weights go four at a time: V8 does not unroll, and this is ~1.4× faster.
  function denseWeightGrad(X, dA, dW) {
    const n = X.length, n4 = n - (n % 4);
    for (let o = 0; o < dA.length; o++) {
      const g = dA[o], wo = o * n;
      if (g === 0) continue;  // a row that ReLU switched off adds nothing
      let i = 0;
      for (; i < n4; i += 4) {
        dW[wo + i] += g * X[i];  // ∂L/∂W = ∂L/∂A ⊗ X: ∂L/∂W_oi = ∂L/∂A_o X_i
        dW[wo + i + 1] += g * X[i + 1];
        dW[wo + i + 2] += g * X[i + 2];
        dW[wo + i + 3] += g * X[i + 3];
      }
      for (; i < n; i++) dW[wo + i] += g * X[i];
    }
  }

  function denseBiasGrad(dA, db) {
    for (let o = 0; o < dA.length; o++) db[o] += dA[o];  // ∂L/∂b = ∂L/∂A
  }

  function denseInputGrad(W, dA, dX) {
    const n = dX.length, n4 = n - (n % 4);
    dX.fill(0);
    for (let o = 0; o < dA.length; o++) {
      const g = dA[o], wo = o * n;
      if (g === 0) continue;
      let i = 0;
      for (; i < n4; i += 4) {
        dX[i] += W[wo + i] * g;  // ∂L/∂X = Wᵀ ∂L/∂A: ∂L/∂X_i = Σ_o W_oi ∂L/∂A_o
        dX[i + 1] += W[wo + i + 1] * g;
        dX[i + 2] += W[wo + i + 2] * g;
        dX[i + 3] += W[wo + i + 3] * g;
      }
      for (; i < n; i++) dX[i] += W[wo + i] * g;
    }
  }

  function reluBackward(X, dY, dX) {
    for (let i = 0; i < dX.length; i++) dX[i] = X[i] > 0 ? dY[i] : 0;  // ∂L/∂X = ∂L/∂Y · [X > 0]
  }

  function flattenBackward(dY, dX) {
    dX.set(dY);  // the same numbers, read as C×H×W again
  }

  // Pooling: each Y pixel receives the share of ∂L/∂Z it contributed; an odd last row/column receives 0.
  function decimateBackward(dZ, [, Hin, Win], dY, [Cn, R, Q]) {
    dY.fill(0);
    for (let c = 0; c < Cn; c++) {
      for (let p = 0; p < R; p++) {
        for (let q = 0; q < Q; q++) {
          dY[(c * Hin + 2 * p) * Win + 2 * q] = dZ[(c * R + p) * Q + q];  // ∂L/∂Y(2p, 2q) = ∂L/∂Z(p, q)
        }
      }
    }
  }

  function maxPoolBackward(dZ, winner, [, Hin, Win], dY, [Cn, R, Q]) {
    dY.fill(0);
    for (let c = 0; c < Cn; c++) {
      for (let p = 0; p < R; p++) {
        for (let q = 0; q < Q; q++) {
          const o = (c * R + p) * Q + q, w = winner[o];
          // ∂L/∂Y(2p+u, 2q+v) = ∂L/∂Z(p, q) for the winner (u, v), 0 for the other three
          dY[(c * Hin + 2 * p + (w >> 1)) * Win + 2 * q + (w & 1)] = dZ[o];
        }
      }
    }
  }

  function avgPoolBackward(dZ, [, Hin, Win], dY, [Cn, R, Q]) {
    dY.fill(0);
    for (let c = 0; c < Cn; c++) {
      for (let p = 0; p < R; p++) {
        for (let q = 0; q < Q; q++) {
          const g = dZ[(c * R + p) * Q + q] / 4, y0 = (c * Hin + 2 * p) * Win + 2 * q, y1 = y0 + Win;
          dY[y0] = g; dY[y0 + 1] = g; dY[y1] = g; dY[y1 + 1] = g;  // ∂L/∂Y(2p+u, 2q+v) = ¼ ∂L/∂Z(p, q)
        }
      }
    }
  }

  // ---- convolution, stride 1, over a zero-padded copy of its input ------------------------------------------
  // Each conv layer keeps its input padded: Xpad, C_in×H_p×W_p with H_p = H' + k − 1, X shifted by `before`
  // rows and columns, the zeros around it written once. X(i+a, j+b) is then Xpad(i+a, j+b), with no bounds to
  // test in the forward pass or in ∂L/∂f, and the zeros multiply as NumPy's padded arrays do.

  function padInput(X, [Cin, Hin, Win], before, Xpad, Hp, Wp) {
    for (let c = 0; c < Cin; c++) {
      for (let i = 0; i < Hin; i++) {
        const xr = (c * Hin + i) * Win, pr = (c * Hp + i + before) * Wp + before;
        for (let j = 0; j < Win; j++) Xpad[pr + j] = X[xr + j];  // Xpad_c(i + before, j + before) = X_c(i, j)
      }
    }
  }

  // Y_k(i, j) = Σ_c Σ_a Σ_b X_c(i+a, j+b) f_kc(a, b) + b_k: network.js's conv on the padded input, for blocks of
  // 2×4 outputs at once, so that each f_kc(a, b) read serves eight sums (2–3× faster than one at a time);
  // the columns left over go in 2×1 blocks, an odd last row one output at a time.
  function convForward(k, f, bias, Xpad, [Cin, Hp, Wp], Y, [K, Ho, Wo]) {
    const plane = Hp * Wp;
    for (let kk = 0; kk < K; kk++) {
      const fk = kk * Cin * k * k, bk = bias ? bias[kk] : 0;
      for (let i = 0; i + 1 < Ho; i += 2) {
        let j = 0;
        for (; j + 4 <= Wo; j += 4) {
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0, t0 = 0, t1 = 0, t2 = 0, t3 = 0;  // Y(i, j..j+3), Y(i+1, j..j+3)
          for (let c = 0; c < Cin; c++) {
            for (let a = 0; a < k; a++) {
              const xr = c * plane + (i + a) * Wp + j, fr = fk + (c * k + a) * k;
              for (let b = 0; b < k; b++) {
                const w = f[fr + b], x = xr + b, z = x + Wp;  // f_kc(a, b); X_c(i+a, j+b); X_c(i+1+a, j+b)
                s0 += w * Xpad[x]; s1 += w * Xpad[x + 1]; s2 += w * Xpad[x + 2]; s3 += w * Xpad[x + 3];
                t0 += w * Xpad[z]; t1 += w * Xpad[z + 1]; t2 += w * Xpad[z + 2]; t3 += w * Xpad[z + 3];
              }
            }
          }
          const y0 = (kk * Ho + i) * Wo + j, y1 = y0 + Wo;
          Y[y0] = s0 + bk; Y[y0 + 1] = s1 + bk; Y[y0 + 2] = s2 + bk; Y[y0 + 3] = s3 + bk;  // + b_k
          Y[y1] = t0 + bk; Y[y1 + 1] = t1 + bk; Y[y1 + 2] = t2 + bk; Y[y1 + 3] = t3 + bk;
        }
        for (; j < Wo; j++) {
          let s = 0, t = 0;  // Y(i, j), Y(i+1, j)
          for (let c = 0; c < Cin; c++) {
            for (let a = 0; a < k; a++) {
              const xr = c * plane + (i + a) * Wp + j, fr = fk + (c * k + a) * k;
              for (let b = 0; b < k; b++) {
                s += f[fr + b] * Xpad[xr + b];
                t += f[fr + b] * Xpad[xr + Wp + b];
              }
            }
          }
          Y[(kk * Ho + i) * Wo + j] = s + bk;
          Y[(kk * Ho + i + 1) * Wo + j] = t + bk;
        }
      }
      if (Ho % 2) {
        const yr = (kk * Ho + Ho - 1) * Wo;
        for (let j = 0; j < Wo; j++) Y[yr + j] = convAt(k, f, fk, Xpad, Cin, plane, Wp, Ho - 1, j) + bk;
      }
    }
  }

  // One output: Σ_c Σ_a Σ_b Xpad_c(i+a, j+b) f_kc(a, b), f_k starting at fk.
  function convAt(k, f, fk, Xpad, Cin, plane, Wp, i, j) {
    let s = 0;
    for (let c = 0; c < Cin; c++) {
      for (let a = 0; a < k; a++) {
        const xr = c * plane + (i + a) * Wp + j, fr = fk + (c * k + a) * k;
        for (let b = 0; b < k; b++) s += Xpad[xr + b] * f[fr + b];
      }
    }
    return s;
  }

  // The backward sums run over the outputs with ∂L/∂Y_k(i, j) ≠ 0 only: a ReLU or a pooling after the
  // convolution zeroes most of them (decimate and max: three in four), and a zero adds nothing.
  function convFilterGrad(k, Xpad, [Cin, Hp, Wp], dY, [K, Ho, Wo], df) {
    const plane = Hp * Wp;
    for (let kk = 0; kk < K; kk++) {
      for (let i = 0; i < Ho; i++) {
        for (let j = 0; j < Wo; j++) {
          const g = dY[(kk * Ho + i) * Wo + j];
          if (g === 0) continue;
          for (let c = 0; c < Cin; c++) {
            for (let a = 0; a < k; a++) {
              const xr = c * plane + (i + a) * Wp + j, fr = ((kk * Cin + c) * k + a) * k;
              for (let b = 0; b < k; b++) {
                df[fr + b] += g * Xpad[xr + b];  // ∂L/∂f_kc(a, b) = Σ_{i,j} ∂L/∂Y_k(i, j) X_c(i+a, j+b)
              }
            }
          }
        }
      }
    }
  }

  function convBiasGrad(dY, [K, Ho, Wo], db) {
    const n = Ho * Wo;
    for (let kk = 0; kk < K; kk++) {
      let s = 0;
      for (let o = kk * n; o < (kk + 1) * n; o++) s += dY[o];
      db[kk] += s;  // ∂L/∂b_k = Σ_{i,j} ∂L/∂Y_k(i, j)
    }
  }

  // ∂L/∂Xpad_c(u, v) = Σ_k Σ_a Σ_b ∂L/∂Y_k(u−a, v−b) f_kc(a, b): the full cross-correlation of ∂L/∂Y (k−1 zeros
  // on every side) with the flipped filters f_kc(k−1−a, k−1−b). Computed the other way round, the same sum:
  // each ∂L/∂Y_k(i, j) goes back to the k×k pixels Xpad_c(i+a, j+b) it was made from, times f_kc(a, b).
  // Then the padding is cut off: ∂L/∂X_c(u, v) = ∂L/∂Xpad_c(u + before, v + before).
  function convInputGrad(k, f, dY, [K, Ho, Wo], dXpad, [Cin, Hp, Wp], before, dX, [, Hin, Win]) {
    const plane = Hp * Wp;
    dXpad.fill(0);
    for (let kk = 0; kk < K; kk++) {
      for (let i = 0; i < Ho; i++) {
        for (let j = 0; j < Wo; j++) {
          const g = dY[(kk * Ho + i) * Wo + j];
          if (g === 0) continue;
          for (let c = 0; c < Cin; c++) {
            for (let a = 0; a < k; a++) {
              const xr = c * plane + (i + a) * Wp + j, fr = ((kk * Cin + c) * k + a) * k;
              for (let b = 0; b < k; b++) {
                dXpad[xr + b] += g * f[fr + b];  // ∂L/∂Xpad_c(i+a, j+b) += ∂L/∂Y_k(i, j) f_kc(a, b)
              }
            }
          }
        }
      }
    }
    for (let c = 0; c < Cin; c++) {
      for (let u = 0; u < Hin; u++) {
        const xr = (c * Hin + u) * Win, pr = (c * Hp + u + before) * Wp + before;
        for (let v = 0; v < Win; v++) dX[xr + v] = dXpad[pr + v];  // ∂L/∂X_c(u, v) = ∂L/∂Xpad_c(u+before, v+before)
      }
    }
  }

  // A conv layer's padded input (and its gradient's, when the layers before need ∂L/∂X); null for other layers.
  function convPadding(L, [Cin], [, Ho, Wo], needsInputGrad) {
    if (L.type !== "conv") return null;
    const shape = [Cin, Ho + L.kernel_size - 1, Wo + L.kernel_size - 1], n = size(shape);
    const dXpad = needsInputGrad ? new Float64Array(n) : null;
    return { before: Net.padBefore(L), shape, Xpad: new Float64Array(n), dXpad };
  }

  const ScratchBackprop = { size, reluForward, maxPoolForward, denseForward, logSoftmaxLoss, argmax, crossEntropyBackward, denseWeightGrad, denseBiasGrad, denseInputGrad, reluBackward, flattenBackward, decimateBackward, maxPoolBackward, avgPoolBackward, padInput, convForward, convAt, convFilterGrad, convBiasGrad, convInputGrad, convPadding };
  root.ScratchBackprop = ScratchBackprop;
  if (typeof module !== "undefined" && module.exports) module.exports = ScratchBackprop;
})(typeof self !== "undefined" ? self : globalThis);
