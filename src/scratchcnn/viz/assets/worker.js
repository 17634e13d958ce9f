// The Train panel's Web Worker: trainer.js's SGD on the page's embedded sample, away from the page's thread,
// so that drawing and hovering stay smooth while it trains. lab.js builds it from the text of network.js,
// backprop.js, trainer.js and this file. It trains in slices of SLICE_MS and returns to its event loop between
// them, so that "pause", a new learning rate or a new batch size take effect at the next batch.
//
// Messages in:  init {D, train, validation, options, seed}, start, pause, step (one batch), reset {seed},
//               set {options}, drawing {drawing} (the user is drawing: rest longer), order {order} (the records of the next epoch, in this order: for tests),
//               save {dtype} (the parameters as the model file will hold them, and their accuracy).
// Messages out: status {...} after each slice, params {params} (at most PARAMS_EVERY_MS apart, and at each stop),
//               epoch {record}, stopped {reason}, saved {params, validation_accuracy, train_accuracy}.
"use strict";
(function () {
  // A rest between slices leaves the CPU to the page's drawing on a machine with few cores: REST_MS (~10 % slower),
  // and while the user draws DRAWING_REST_MS, a third of the speed: on 2 cores, frames of the stroke were
  // dropped (gaps of 50–83 ms) when the worker rested less, though the page's own thread was never busy 50 ms.
  const SLICE_MS = 25, REST_MS = 3, DRAWING_REST_MS = 50, PARAMS_EVERY_MS = 250;
  const SMOOTHING = 0.02;  // the smoothed loss: ℓ ← ℓ + α (L − ℓ)
  let D, train, validation, options, T;
  let drawing = false, running = false, epoch = 0, steps = 0, records = 0, smooth = NaN, lastParams = 0;
  let seed = 0, pass = 0, stream = null, position = 0;  // the record stream, reshuffled at each pass (fit's)
  let order = null, at = 0, given = null, atStart = null, epochStart = 0;  // the current epoch

  const say = (message, transfer) => self.postMessage(message, transfer || []);
  function trainerOptions(o) {  // the Python option names (scratchcnn.options) → trainer.js's
    return { optimiser: o.optimiser, learningRate: o.learning_rate, momentum: o.momentum,
      weightDecay: o.weight_decay, schedule: o.schedule, epochs: o.epochs, batchSize: o.batch_size };
  }
  function restart(newSeed) {  // from the initial parameters, with the same shuffle for the same seed
    seed = newSeed; T = ScratchTrain.trainer(D, trainerOptions(options));
    epoch = steps = records = pass = position = 0; smooth = NaN; order = null; running = false;
    stream = ScratchTrain.shuffle(options.train_records, seed);
  }
  function take(n) {  // the next n training records of the stream (fit's RecordStream)
    const out = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      if (position === stream.length) { pass += 1; stream = ScratchTrain.shuffle(options.train_records, seed + pass); position = 0; }
      out[r] = stream[position++];
    }
    return out;
  }
  function beginEpoch() {
    order = given || take(options.epoch_records); given = null; at = 0;
    atStart = T.parameters(); epochStart = performance.now();  // a diverged epoch goes back to these
  }
  function endEpoch() {
    const seconds = (performance.now() - epochStart) / 1000;
    const fitted = T.evaluate(train.images, train.labels, options.train_records);
    const held = validation.count ? T.evaluate(validation.images, validation.labels) : { accuracy: NaN, loss: NaN };
    epoch += 1; order = null;
    say({ type: "epoch", record: { epoch, records, train_accuracy: fitted.accuracy, train_loss: fitted.loss,
      validation_accuracy: held.accuracy, validation_loss: held.loss, seconds } });
    if (!Number.isFinite(fitted.loss) || !Number.isFinite(held.loss)) return diverged();
    if (epoch >= options.epochs) stop("done: " + epoch + " epochs (raise epochs to go on)");
  }
  function diverged() {  // as fit: the parameters after the last good epoch, and a reason
    T.setParameters(atStart); order = null;
    stop("the loss became NaN or infinite in epoch " + (epoch + 1) + ": learning rate " + options.learning_rate +
      " is too high; kept the parameters after epoch " + epoch);
    return false;
  }
  function batch() {  // one step on the next batch of the epoch; false when training stops
    if (!order) beginEpoch();
    const end = Math.min(at + options.batch_size, order.length);
    const r = T.trainBatch(train.images, train.labels, order.subarray(at, end), T.learningRate(epoch));
    if (!Number.isFinite(r.loss)) return diverged();
    steps += 1; records += end - at; at = end;
    smooth = Number.isNaN(smooth) ? r.loss : smooth + SMOOTHING * (r.loss - smooth);
    if (at === order.length) endEpoch();
    return true;
  }
  function report(force) {  // the parameters first: whoever reads a status has the parameters it describes
    if (force || performance.now() - lastParams >= PARAMS_EVERY_MS) {
      lastParams = performance.now();
      const params = T.parameters();
      say({ type: "params", params }, Object.values(params).map((a) => a.buffer));
    }
    say({ type: "status", epoch, steps, records, running, smooth, at, epochRecords: order ? order.length : 0,
      learningRate: T.learningRate(epoch), time: performance.now() });
  }
  function stop(reason) {
    running = false; say({ type: "stopped", reason }); report(true);
  }
  function slice() {
    if (!running) return;
    const t0 = performance.now();
    while (running && performance.now() - t0 < SLICE_MS) if (!batch()) break;
    report(!running);
    if (running) setTimeout(slice, drawing ? DRAWING_REST_MS : REST_MS);
  }
  function saved(dtype) {  // the parameters as the file holds them (float32 rounds), and how well those do
    const now = T.parameters(), kept = {};
    for (const [name, values] of Object.entries(now)) kept[name] = dtype === "float32" ? Float64Array.from(Float32Array.from(values)) : values;
    T.setParameters(kept);
    const held = validation.count ? T.evaluate(validation.images, validation.labels) : { accuracy: NaN };
    const fitted = T.evaluate(train.images, train.labels, options.train_records);
    T.setParameters(now);
    say({ type: "saved", params: kept, validation_accuracy: held.accuracy, train_accuracy: fitted.accuracy, epoch });
  }

  self.onmessage = (event) => {
    const m = event.data;
    if (m.type === "init") {
      ({ D, train, validation, options } = m);
      restart(m.seed); report(true);
    } else if (m.type === "start" && !running) {
      running = true; setTimeout(slice, 0);
    } else if (m.type === "pause") {
      running = false; report(true);
    } else if (m.type === "step" && !running) {
      batch(); report(true);
    } else if (m.type === "reset") {
      restart(m.seed); report(true);
    } else if (m.type === "set") {
      const before = options;
      options = Object.assign({}, options, m.options);
      T.setOptions(trainerOptions(options));
      if (options.train_records !== before.train_records) {  // a new training subset: a new stream
        stream = ScratchTrain.shuffle(options.train_records, seed + pass); position = 0;
      }
      report(true);
    } else if (m.type === "drawing") {
      drawing = m.drawing;
    } else if (m.type === "order") {
      given = Int32Array.from(m.order);
    } else if (m.type === "save") {
      saved(m.dtype);
    }
  };
})();
