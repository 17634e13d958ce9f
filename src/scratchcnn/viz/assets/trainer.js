// Training in JavaScript: the backward pass of scratchcnn's Stack (nn/stack_layers.py), one function per
// backward equation with the equation beside the line that computes it, and the optimisers and schedules
// of train/optimisers.py, so that an epoch here moves the parameters as scratchcnn's fit does. No DOM: the
// page, a Web Worker (importScripts) and node (require) all run it. It attaches one namespace, ScratchTrain.
//
// The forward pass is network.js's equations (load network.js first: flatten, decimate and average pooling
// are its functions). Four layers have their own forward here: conv and dense, which hold nearly all the
// arithmetic, in faster forms of the same sums; ReLU and max pooling, which keep NaN as NumPy does (a
// diverging run then stops where fit stops) and, for max, remember each window's winner for the backward pass.
//
// Everything is float64 (Float64Array), whatever the model's dtype. A batch is computed one record at a
// time: forward, then backward with ∂L/∂A = (P − onehot(y)) / N, each parameter's gradient summed over
// the batch, so that the sum is ∂L/∂θ of the batch's mean loss; then one optimiser step. Every buffer is
// allocated once, in trainer(): the record loop allocates nothing.
(function (root) {
  "use strict";

  const Net = root.ScratchNet;
  if (!Net) throw new Error("trainer.js needs network.js: load it first (it defines ScratchNet)");

  const BETA1 = 0.9, BETA2 = 0.999, EPS = 1e-8;  // Adam's β₁, β₂, ε (torch.optim.Adam's, as optimisers.py)
  const STEP_GAMMA = 0.1;  // γ of the step schedule
  const OPTIMISERS = ["sgd", "momentum", "nesterov", "adam"];
  const SCHEDULES = ["constant", "step", "cosine"];
  const BUFFERS = { sgd: [], momentum: ["velocity"], nesterov: ["velocity"], adam: ["m", "s"] };
  const DEFAULTS = { optimiser: "sgd", learningRate: 0.0005, momentum: 0.9, weightDecay: 0, schedule: "constant",
    epochs: 20, batchSize: 1 };

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

  // ---- optimisers (torch.optim's conventions, as optimisers.py): θ, its gradient g, its buffers ----------

  function weightDecay(theta, g, lambda, decayed) {
    for (let i = 0; i < theta.length; i++) decayed[i] = g[i] + lambda * theta[i];  // g ← g + λ θ (L2: λ/2 ‖θ‖²)
  }

  function sgdUpdate(theta, g, lr) {
    const n = theta.length, n4 = n - (n % 4);  // four at a time, as the dense gradients
    let i = 0;
    for (; i < n4; i += 4) {
      theta[i] -= lr * g[i];  // θ ← θ − η g
      theta[i + 1] -= lr * g[i + 1];
      theta[i + 2] -= lr * g[i + 2];
      theta[i + 3] -= lr * g[i + 3];
    }
    for (; i < n; i++) theta[i] -= lr * g[i];
  }

  function momentumUpdate(theta, g, v, lr, mu, nesterov) {
    for (let i = 0; i < theta.length; i++) {
      v[i] = v[i] * mu + g[i];  // v ← μ v + g
      theta[i] -= nesterov ? lr * (g[i] + mu * v[i]) : lr * v[i];  // θ ← θ − η (g + μ v)  or  θ ← θ − η v
    }
  }

  function adamUpdate(theta, g, m, s, lr, t) {
    const corrected = 1 - Math.pow(BETA1, t);  // 1 − β₁ᵗ: m's bias towards its zero start
    const root2 = Math.sqrt(1 - Math.pow(BETA2, t)), step = lr / corrected;
    for (let i = 0; i < theta.length; i++) {
      m[i] += (1 - BETA1) * (g[i] - m[i]);  // m ← β₁ m + (1 − β₁) g   (torch's lerp form)
      s[i] = s[i] * BETA2 + (1 - BETA2) * g[i] * g[i];  // s ← β₂ s + (1 − β₂) g²
      theta[i] -= (step * m[i]) / (Math.sqrt(s[i]) / root2 + EPS);  // θ ← θ − η m̂ / (√ŝ + ε)
    }
  }

  // η_e for the epoch e (from 0) of E, as schedule_for: constant; step: ×γ every ⌈E/3⌉; cosine over E.
  function scheduledRate(schedule, base, epoch, epochs) {
    if (schedule === "step") {
      const every = Math.max(1, Math.ceil(epochs / 3));
      return base * Math.pow(STEP_GAMMA, Math.floor(epoch / every));  // η_e = η₀ γ^⌊e/every⌋
    }
    if (schedule === "cosine") return base * (1 + Math.cos(Math.PI * epoch / epochs)) / 2;  // η₀ (1 + cos(π e/E)) / 2
    return base;  // η_e = η₀
  }

  // A conv layer's padded input (and its gradient's, when the layers before need ∂L/∂X); null for other layers.
  function convPadding(L, [Cin], [, Ho, Wo], needsInputGrad) {
    if (L.type !== "conv") return null;
    const shape = [Cin, Ho + L.kernel_size - 1, Wo + L.kernel_size - 1], n = size(shape);
    const dXpad = needsInputGrad ? new Float64Array(n) : null;
    return { before: Net.padBefore(L), shape, Xpad: new Float64Array(n), dXpad };
  }

  // ---- the trainer ----------------------------------------------------------------------------------------

  function checkedOptions(o) {
    if (!OPTIMISERS.includes(o.optimiser)) throw new Error("optimiser must be one of " + OPTIMISERS.join(", "));
    if (!SCHEDULES.includes(o.schedule)) throw new Error("schedule must be one of " + SCHEDULES.join(", "));
    if (!(o.learningRate > 0 && Number.isFinite(o.learningRate))) throw new Error("learningRate must be > 0");
    if (!(o.momentum >= 0 && o.momentum < 1)) throw new Error("momentum must lie in [0, 1)");
    if (!(o.weightDecay >= 0 && Number.isFinite(o.weightDecay))) throw new Error("weightDecay must be ≥ 0");
    for (const key of ["epochs", "batchSize"]) {
      if (!(Number.isInteger(o[key]) && o[key] >= 1)) throw new Error(key + " must be a whole number ≥ 1");
    }
    return o;
  }

  // A trainer of the network of page data D (explorer.py's page_data: config, shapes, params "<i>.<name>"), with
  // opts {optimiser, learningRate η₀, momentum μ, weightDecay λ, schedule, epochs E (the schedule's), batchSize B}.
  //   T.params: per layer {f?, W?, b?}, the live Float64Arrays;  T.outs: each layer's output of the last record
  //   T.forward(X) → P (T.P, reused);  T.trainBatch(images, labels, indices, η) → {loss (mean), correct}
  //   T.epoch(images, labels, order, e, onBatch?) → {steps, loss}, η = T.learningRate(e), batches of B, stopping
  //     at a non-finite loss; onBatch({step: t so far, loss, correct, size}) after each applied batch
  //   T.evaluate(images, labels, count?) → {accuracy, loss};  T.setOptions(partial) (a new optimiser, μ or λ
  //     resets the optimiser);  T.parameters() / T.setParameters(same) / T.gradients(): "<i>.<name>" copies
  //   T.optimiserState() → {optimiser, t, buffers: {"<buffer>.<i>.<name>"}}, as optimisers.py's state()
  // images: uint8, record r at r·H·W (pixel / 255, as Stack.scale); labels: integers; indices, order: record numbers.
  function trainer(D, opts) {
    const specs = D.config.layers, shapes = D.shapes, n = specs.length;
    let options = checkedOptions(Object.assign({}, DEFAULTS, opts || {}));
    const pixels = size(shapes[0]);
    const params = specs.map((_, i) => {
      const own = {};
      for (const name of ["f", "W", "b"]) {
        const values = D.params[i + "." + name];
        if (values) own[name] = Float64Array.from(values);
      }
      return own;
    });
    const names = [];  // "<i>.<name>" in page data's order: each layer's f or W, then b
    params.forEach((own, i) => { for (const name of Object.keys(own)) names.push([i, name]); });
    const firstWithParams = params.findIndex((own) => Object.keys(own).length > 0);
    const grads = params.map((own) => {
      const g = {};
      for (const name of Object.keys(own)) g[name] = new Float64Array(own[name].length);
      return g;
    });
    const outs = specs.map((_, i) => new Float64Array(size(shapes[i + 1])));
    const douts = specs.map((_, i) => new Float64Array(size(shapes[i + 1])));  // ∂L/∂(layer i's output)
    const isMax = (L) => L.type === "pool" && L.how === "max";
    const winners = specs.map((L, i) => (isMax(L) ? new Uint8Array(outs[i].length) : null));  // u·2 + v per window
    const padded = specs.map((L, i) => convPadding(L, shapes[i], shapes[i + 1], i > firstWithParams));
    const X0 = new Float64Array(pixels), P = new Float64Array(D.config.classes), dA = douts[n - 1];
    const decayed = new Float64Array(Math.max(...names.map(([i, name]) => params[i][name].length)));  // g + λ θ
    let buffers = {}, t = 0;  // the optimiser's buffers ("<buffer>" → per layer {name: array}) and its step count

    function resetOptimiser() {
      buffers = {};
      for (const kind of BUFFERS[options.optimiser]) {
        buffers[kind] = params.map((own) => {
          const b = {};
          for (const name of Object.keys(own)) b[name] = new Float64Array(own[name].length);
          return b;
        });
      }
      t = 0;
    }
    resetOptimiser();

    function forwardLayer(i, X) {
      const L = specs[i], out = outs[i];
      if (L.type === "conv") {
        const pad = padded[i];
        padInput(X, shapes[i], pad.before, pad.Xpad, pad.shape[1], pad.shape[2]);
        convForward(L.kernel_size, params[i].f, params[i].b, pad.Xpad, pad.shape, out, shapes[i + 1]);
      } else if (L.type === "dense") denseForward(params[i].W, params[i].b, X, out);
      else if (L.type === "relu") reluForward(X, out);
      else if (L.type === "pool" && L.how === "max") maxPoolForward(X, shapes[i], out, winners[i], shapes[i + 1]);
      else Net.apply(L, params[i], X, shapes[i], out, shapes[i + 1]);
    }

    function forwardRecord(X) {  // → A, the class scores (outs[n − 1])
      let input = X;
      for (let i = 0; i < n; i++) {
        forwardLayer(i, input);
        input = outs[i];
      }
      return input;
    }

    // Layer i's gradients from ∂L/∂(its output) douts[i]: its parameters' (added), and ∂L/∂X into dX if asked.
    function backwardLayer(i, X, dX) {
      const L = specs[i], dY = douts[i], inShape = shapes[i], outShape = shapes[i + 1];
      const p = params[i], g = grads[i];
      if (L.type === "dense") {
        denseWeightGrad(X, dY, g.W);
        if (g.b) denseBiasGrad(dY, g.b);
        if (dX) denseInputGrad(p.W, dY, dX);
      } else if (L.type === "conv") {
        const pad = padded[i];  // Xpad: this record's input, padded by the forward pass
        convFilterGrad(L.kernel_size, pad.Xpad, pad.shape, dY, outShape, g.f);
        if (g.b) convBiasGrad(dY, outShape, g.b);
        if (dX) {
          convInputGrad(L.kernel_size, p.f, dY, outShape, pad.dXpad, pad.shape, pad.before, dX, inShape);
        }
      } else if (!dX) {
        return;  // no parameters and nothing before needs ∂L/∂X
      } else if (L.type === "relu") reluBackward(X, dY, dX);
      else if (L.type === "flatten") flattenBackward(dY, dX);
      else if (L.how === "decimate") decimateBackward(dY, inShape, dX, outShape);
      else if (L.how === "max") maxPoolBackward(dY, winners[i], inShape, dX, outShape);
      else if (L.how === "avg") avgPoolBackward(dY, inShape, dX, outShape);
      else throw new Error("unknown layer " + JSON.stringify(L));
    }

    // From dA = ∂L/∂A back to the first layer with parameters; the layers before it need no gradient.
    function backwardRecord(X) {
      for (let i = n - 1; i >= firstWithParams; i--) {
        backwardLayer(i, i === 0 ? X : outs[i - 1], i > firstWithParams ? douts[i - 1] : null);
      }
    }

    function loadRecord(images, index) {
      const offset = index * pixels;
      for (let p = 0; p < pixels; p++) X0[p] = images[offset + p] / 255;  // scale = uint8 / 255
    }

    function step(lr) {
      t += 1;
      const { optimiser, momentum: mu, weightDecay: lambda } = options;
      for (const [i, name] of names) {
        const theta = params[i][name];
        let g = grads[i][name];
        if (lambda) {  // into a scratch array: grads keep ∂L/∂θ itself, for gradients()
          weightDecay(theta, g, lambda, decayed);
          g = decayed;
        }
        if (optimiser === "sgd") sgdUpdate(theta, g, lr);
        else if (optimiser === "adam") adamUpdate(theta, g, buffers.m[i][name], buffers.s[i][name], lr, t);
        else momentumUpdate(theta, g, buffers.velocity[i][name], lr, mu, optimiser === "nesterov");
      }
    }

    // The batch order[start..end): its mean loss and correct count land in `last`; one step if the loss is finite.
    const last = { loss: NaN, correct: 0 };
    function runBatch(images, labels, order, start, end, lr) {
      const N = end - start;
      for (const [i, name] of names) grads[i][name].fill(0);
      let lossSum = 0, correct = 0;
      for (let r = start; r < end; r++) {
        const index = order[r], y = labels[index];
        loadRecord(images, index);
        const A = forwardRecord(X0);
        lossSum += logSoftmaxLoss(A, y, P);
        if (argmax(A) === y) correct += 1;
        crossEntropyBackward(P, y, N, dA);
        backwardRecord(X0);
      }
      last.loss = lossSum / N;  // L = −ln P_y, averaged over the batch
      last.correct = correct;
      if (Number.isFinite(last.loss)) step(lr);  // a non-finite loss is not applied
    }

    const T = {
      params, outs, P,
      get t() { return t; },
      get options() { return Object.assign({}, options); },
      forward(X) {
        const A = forwardRecord(X);
        logSoftmaxLoss(A, 0, P);
        return P;
      },
      trainBatch(images, labels, indices, lr) {
        runBatch(images, labels, indices, 0, indices.length, lr);
        return { loss: last.loss, correct: last.correct };
      },
      epoch(images, labels, order, epochIndex, onBatch) {
        const lr = T.learningRate(epochIndex);
        let steps = 0;
        for (let start = 0; start < order.length; start += options.batchSize) {  // B read per batch: changeable
          const end = Math.min(start + options.batchSize, order.length);
          runBatch(images, labels, order, start, end, lr);
          if (!Number.isFinite(last.loss)) break;  // as fit's epoch: stop, the bad batch unapplied
          steps += 1;
          if (onBatch) onBatch({ step: t, loss: last.loss, correct: last.correct, size: end - start });
        }
        return { steps, loss: last.loss };
      },
      evaluate(images, labels, count) {
        const N = count == null ? labels.length : Math.min(count, labels.length);  // null or undefined: all
        if (N === 0) return { accuracy: NaN, loss: NaN };
        let lossSum = 0, correct = 0;
        for (let r = 0; r < N; r++) {
          loadRecord(images, r);
          const A = forwardRecord(X0);
          lossSum += logSoftmaxLoss(A, labels[r], P);
          if (argmax(A) === labels[r]) correct += 1;
        }
        return { accuracy: correct / N, loss: lossSum / N };
      },
      setOptions(partial) {
        const next = checkedOptions(Object.assign({}, options, partial));
        const reset = ["optimiser", "momentum", "weightDecay"].some((key) => next[key] !== options[key]);
        options = next;
        if (reset) resetOptimiser();
      },
      resetOptimiser,
      learningRate(epochIndex) {
        return scheduledRate(options.schedule, options.learningRate, epochIndex, options.epochs);
      },
      parameters() {
        const out = {};
        for (const [i, name] of names) out[i + "." + name] = params[i][name].slice();
        return out;
      },
      setParameters(values) {
        for (const [i, name] of names) {
          const key = i + "." + name, source = values[key];
          if (!source || source.length !== params[i][name].length) {
            throw new Error("setParameters: " + key + " needs " + params[i][name].length + " numbers");
          }
        }
        for (const [i, name] of names) params[i][name].set(values[i + "." + name]);
      },
      gradients() {  // ∂L/∂θ of the last batch (the mean loss's; weight decay not included)
        const out = {};
        for (const [i, name] of names) out[i + "." + name] = grads[i][name].slice();
        return out;
      },
      optimiserState() {
        const out = {};
        if (t > 0) {  // like optimisers.py, whose buffers appear at the first step
          for (const kind of Object.keys(buffers)) {
            for (const [i, name] of names) out[kind + "." + i + "." + name] = buffers[kind][i][name].slice();
          }
        }
        return { optimiser: options.optimiser, t, buffers: out };
      },
    };
    return T;
  }

  // A seeded permutation of 0..n−1: mulberry32's numbers driving a Fisher–Yates shuffle.
  function shuffle(n, seed) {
    let state = seed >>> 0;
    function random() {  // mulberry32: a 32-bit state, uniform in [0, 1)
      state = (state + 0x6d2b79f5) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 15), z | 1);
      z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
      return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
    }
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1)), swap = order[i];
      order[i] = order[j];
      order[j] = swap;
    }
    return order;
  }

  const ScratchTrain = {
    trainer, shuffle, DEFAULTS, OPTIMISERS, SCHEDULES,
    // the equations, for reading and testing one by one
    crossEntropyBackward, denseWeightGrad, denseBiasGrad, denseInputGrad, reluBackward, flattenBackward,
    decimateBackward, maxPoolBackward, avgPoolBackward, convFilterGrad, convBiasGrad, convInputGrad,
    padInput, convForward, denseForward, reluForward, maxPoolForward, logSoftmaxLoss, argmax,
    weightDecay, sgdUpdate, momentumUpdate, adamUpdate, scheduledRate,
  };
  root.ScratchTrain = ScratchTrain;
  if (typeof module !== "undefined" && module.exports) module.exports = ScratchTrain;
})(typeof self !== "undefined" ? self : globalThis);
