// Training in JavaScript: the batches, the optimisers and the learning-rate schedules of scratchcnn's fit
// (train/sgd.py, train/optimisers.py), on the backward pass of backprop.js (every layer's equations), so that
// an epoch here moves the parameters as fit does. No DOM: the page, a Web Worker and node all run it. Load
// network.js and backprop.js first. It attaches one namespace, ScratchTrain (with backprop.js's equations).
//
// Everything is float64 (Float64Array), whatever the model's dtype. A batch is computed one record at a
// time: forward, then backward with ∂L/∂A = (P − onehot(y)) / N, each parameter's gradient summed over
// the batch, so that the sum is ∂L/∂θ of the batch's mean loss; then one optimiser step. Every buffer is
// allocated once, in trainer(): the record loop allocates nothing.
(function (root) {
  "use strict";

  const Net = root.ScratchNet, B = root.ScratchBackprop;
  if (!Net || !B) throw new Error("trainer.js needs network.js and backprop.js: load them first");

  const BETA1 = 0.9, BETA2 = 0.999, EPS = 1e-8;  // Adam's β₁, β₂, ε (torch.optim.Adam's, as optimisers.py)
  const STEP_GAMMA = 0.1;  // γ of the step schedule
  const OPTIMISERS = ["sgd", "momentum", "nesterov", "adam"];
  const SCHEDULES = ["constant", "step", "cosine"];
  const BUFFERS = { sgd: [], momentum: ["velocity"], nesterov: ["velocity"], adam: ["m", "s"] };
  const DEFAULTS = { optimiser: "sgd", learningRate: 0.0005, momentum: 0.9, weightDecay: 0, schedule: "constant",
    epochs: 20, batchSize: 1 };

  const size = B.size;

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
    const padded = specs.map((L, i) => B.convPadding(L, shapes[i], shapes[i + 1], i > firstWithParams));
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
        B.padInput(X, shapes[i], pad.before, pad.Xpad, pad.shape[1], pad.shape[2]);
        B.convForward(L.kernel_size, params[i].f, params[i].b, pad.Xpad, pad.shape, out, shapes[i + 1]);
      } else if (L.type === "dense") B.denseForward(params[i].W, params[i].b, X, out);
      else if (L.type === "relu") B.reluForward(X, out);
      else if (L.type === "pool" && L.how === "max") B.maxPoolForward(X, shapes[i], out, winners[i], shapes[i + 1]);
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
        B.denseWeightGrad(X, dY, g.W);
        if (g.b) B.denseBiasGrad(dY, g.b);
        if (dX) B.denseInputGrad(p.W, dY, dX);
      } else if (L.type === "conv") {
        const pad = padded[i];  // Xpad: this record's input, padded by the forward pass
        B.convFilterGrad(L.kernel_size, pad.Xpad, pad.shape, dY, outShape, g.f);
        if (g.b) B.convBiasGrad(dY, outShape, g.b);
        if (dX) {
          B.convInputGrad(L.kernel_size, p.f, dY, outShape, pad.dXpad, pad.shape, pad.before, dX, inShape);
        }
      } else if (!dX) {
        return;  // no parameters and nothing before needs ∂L/∂X
      } else if (L.type === "relu") B.reluBackward(X, dY, dX);
      else if (L.type === "flatten") B.flattenBackward(dY, dX);
      else if (L.how === "decimate") B.decimateBackward(dY, inShape, dX, outShape);
      else if (L.how === "max") B.maxPoolBackward(dY, winners[i], inShape, dX, outShape);
      else if (L.how === "avg") B.avgPoolBackward(dY, inShape, dX, outShape);
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
        lossSum += B.logSoftmaxLoss(A, y, P);
        if (B.argmax(A) === y) correct += 1;
        B.crossEntropyBackward(P, y, N, dA);
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
        B.logSoftmaxLoss(A, 0, P);
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
          lossSum += B.logSoftmaxLoss(A, labels[r], P);
          if (B.argmax(A) === labels[r]) correct += 1;
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

  const ScratchTrain = Object.assign({
    trainer, shuffle, DEFAULTS, OPTIMISERS, SCHEDULES,
    weightDecay, sgdUpdate, momentumUpdate, adamUpdate, scheduledRate,
  }, B);  // and backprop.js's equations, for reading and testing one by one
  root.ScratchTrain = ScratchTrain;
  if (typeof module !== "undefined" && module.exports) module.exports = ScratchTrain;
})(typeof self !== "undefined" ? self : globalThis);
