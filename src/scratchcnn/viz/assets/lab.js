// The Train panel: controls, live curves and weights, and saving, for the training that worker.js runs in a
// Web Worker (network.js's forward pass, backprop.js's backward pass, trainer.js's optimisers; float64). The page
// stays the explorer: each time the worker sends its parameters, the Layers panel, P and the evidence are
// redrawn with them, so the kernels f_k and the maps Y_k, Z_k of the current input change as it learns.
"use strict";
(function () {
  const lab = JSON.parse(document.getElementById("lab-data").textContent);
  if (!lab) return;  // a page without a training sample: no Train panel
  const $ = (id) => document.getElementById(id), S = window.scratchcnn, D = S.data;
  const { canvas, paint, absmax, scaleText } = S.draw;
  $("lab-row").hidden = false;

  // ---- the sample: uint8 images in base64, decoded once ------------------------------------------
  function decode(part) {
    const raw = atob(part.base64), images = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) images[i] = raw.charCodeAt(i);
    return { images, labels: Int32Array.from(part.labels), count: part.count };
  }
  let train = null, validation = null;  // decoded after the page has loaded: drawing works at once
  $("lab-sample").textContent = lab.train.count.toLocaleString("en") + " training and " +
    lab.validation.count.toLocaleString("en") + " validation records of " + lab.dataset;

  // ---- the worker: built from the page's own scripts, so the page stays one file -------------------
  const source = ["network-js", "backprop-js", "trainer-js", "worker-js"].map((id) => $(id).textContent).join("\n;\n");
  const worker = new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })));
  const fields = { learning_rate: "lab-lr", batch_size: "lab-batch", optimiser: "lab-optimiser",
    epoch_records: "lab-epoch-records", train_records: "lab-train-records", epochs: "lab-epochs" };
  let options = Object.assign({ train_records: lab.train.count, epoch_records: lab.train.count }, lab.options);
  const history = [], steps = [];  // per epoch records; [epoch + fraction, smoothed loss] points
  const STATUS_EVERY_MS = 200, MAX_POINTS = 2000;  // keep the page's thread light while the worker trains
  let shownAt = -Infinity, status = null, rate = 0, lastStatus = null, savedNote = "", latest = null, current = null;
  const queue = [];  // what the controls said before the worker had its data
  const send = (message) => (train ? worker.postMessage(message) : queue.push(message));

  function showOptions() {
    for (const [name, id] of Object.entries(fields)) $(id).value = options[name];
    $("lab-seed").value = options.seed;
  }
  function readOptions() {  // the controls → options; a bad number keeps the old value
    const next = Object.assign({}, options);
    for (const [name, id] of Object.entries(fields)) {
      const v = $(id).value;
      if (name === "optimiser") { next[name] = v; continue; }
      const n = Number(v), whole = name !== "learning_rate";  // η > 0; the counts whole numbers ≥ 1
      const ok = Number.isFinite(n) && (whole ? Number.isInteger(n) && n >= 1 : n > 0);
      next[name] = ok ? n : options[name];
    }
    next.train_records = Math.min(next.train_records, lab.train.count);
    return next;
  }
  function init() {  // the sample moves to the worker (transferred, not copied): the page keeps no copy
    train = decode(lab.train); validation = decode(lab.validation);
    lab.train.base64 = lab.validation.base64 = null;
    worker.postMessage({ type: "init", D: { config: D.config, specs: D.specs, shapes: D.shapes, params: D.params },
      train: { images: train.images, labels: train.labels, count: train.count },
      validation: { images: validation.images, labels: validation.labels, count: validation.count },
      options, seed: options.seed }, [train.images.buffer, validation.images.buffer]);
    queue.splice(0).forEach((message) => worker.postMessage(message));
  }

  // ---- controls ---------------------------------------------------------------------------------
  for (const [key, preset] of Object.entries(lab.presets)) {
    const opt = document.createElement("option");
    opt.value = key; opt.textContent = preset.label; $("lab-preset").appendChild(opt);
  }
  function usePreset(key) {
    const preset = lab.presets[key];
    if (!preset) return;
    const { label, reset, ...values } = preset;
    options = Object.assign({}, options, values); showOptions();
    if (reset) resetRun(); else send({ type: "set", options });
  }
  function resetRun() {
    history.length = 0; steps.length = 0; savedNote = "";
    options.seed = Number.isInteger(Number($("lab-seed").value)) ? Number($("lab-seed").value) : options.seed;
    send({ type: "set", options }); send({ type: "reset", seed: options.seed }); drawCurves();
  }
  $("draw").addEventListener("pointerdown", () => send({ type: "drawing", drawing: true }));
  window.addEventListener("pointerup", () => send({ type: "drawing", drawing: false }));
  $("lab-preset").addEventListener("change", (e) => usePreset(e.target.value));
  $("lab-start").addEventListener("click", () => send({ type: "start" }));
  $("lab-pause").addEventListener("click", () => send({ type: "pause" }));
  $("lab-step").addEventListener("click", () => send({ type: "step" }));
  $("lab-reset").addEventListener("click", resetRun);
  $("lab-save").addEventListener("click", () => send({ type: "save", dtype: D.config.dtype }));
  for (const id of Object.values(fields)) {
    $(id).addEventListener("change", () => {
      options = readOptions(); showOptions(); $("lab-preset").value = ""; send({ type: "set", options });
    });
  }

  // ---- what the worker says ---------------------------------------------------------------------
  const handlers = {
    status(m) {
      status = m;
      if (Number.isFinite(m.smooth) && m.steps) steps.push([m.epoch + (m.epochRecords ? m.at / m.epochRecords : 0), m.smooth]);
      if (steps.length > MAX_POINTS) steps.splice(0, steps.length, ...steps.filter((_, i) => i % 2 === 0));
      if (m.running && m.time - shownAt < STATUS_EVERY_MS) return;  // the text changes a few times a second
      rate = m.running && lastStatus && m.time > lastStatus.time ? (m.steps - lastStatus.steps) / ((m.time - lastStatus.time) / 1000) : 0;
      shownAt = m.time; lastStatus = m;
      $("lab-start").disabled = m.running; $("lab-pause").disabled = !m.running; $("lab-step").disabled = m.running;
      showStatus();
    },
    params(m) {  // drawn at the next frame, the latest only: the worker may send faster than the page draws
      if (!latest) requestAnimationFrame(() => { S.setParameters(latest); drawWeights(); latest = null; });
      latest = current = m.params;
    },
    epoch(m) { history.push(m.record); drawCurves(); showStatus(); },
    stopped(m) { note(m.reason); },
    saved(m) { download(m); },
  };
  worker.onmessage = (event) => handlers[event.data.type](event.data);
  worker.onerror = (event) => note("the training worker failed: " + event.message);
  function note(text) { $("lab-note").hidden = !text; $("lab-note").textContent = text || ""; }

  const pct = (v) => (Number.isFinite(v) ? (100 * v).toFixed(2) + " %" : "–");
  function showStatus() {
    if (!status) return;
    const last = history[history.length - 1], done = Math.max(status.epoch, last ? last.epoch : 0);
    const within = status.running || (status.at > 0 && status.at < status.epochRecords);  // an epoch under way
    $("lab-status").textContent = (status.running ? "training" : status.steps ? "paused" : "not started") +
      (within ? " · epoch " + (done + 1) + " of " + options.epochs : " · " + done + " of " + options.epochs + " epochs done") +
      " · step " + status.steps.toLocaleString("en") + " · " + rate.toFixed(0) + " steps/s" +
      " · η " + status.learningRate.toPrecision(3) +
      (Number.isFinite(status.smooth) ? " · loss (smoothed) " + status.smooth.toFixed(4) : "") +
      (last ? " · after epoch " + last.epoch + ": train " + pct(last.train_accuracy) + ", validation " +
        pct(last.validation_accuracy) : "") + savedNote;
  }

  // ---- curves: accuracy and loss per epoch, the smoothed loss per step ---------------------------
  function plot(el, series, yMax, legendBelow) {  // legendBelow: in the lower right, where curves rarely go
    const ctx = el.getContext("2d"), w = el.width, h = el.height, L = 42, R = 8, T0 = 8, B = 26;
    ctx.clearRect(0, 0, w, h); ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = "#444";
    const xMax = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[0])));
    const x = (v) => L + (v / xMax) * (w - L - R), y = (v) => T0 + (1 - Math.min(v, yMax) / yMax) * (h - T0 - B);
    ctx.strokeStyle = "#eee";
    for (let t = 0; t <= 4; t++) {
      const v = (yMax * t) / 4;
      ctx.beginPath(); ctx.moveTo(L, y(v)); ctx.lineTo(w - R, y(v)); ctx.stroke();
      ctx.fillText(yMax === 1 ? v.toFixed(2) : v.toPrecision(2), 4, y(v) + 4);
    }
    ctx.fillText("epoch (max " + xMax.toFixed(0) + ")", w / 2 - 30, h - 6);  // the quantity: the plot's heading
    series.forEach((s, n) => {
      ctx.strokeStyle = s.colour; ctx.lineWidth = s.thin ? 1 : 2; ctx.beginPath();
      s.points.forEach(([px, py], i) => (i ? ctx.lineTo(x(px), y(py)) : ctx.moveTo(x(px), y(py))));
      const top = legendBelow ? h - B - 10 - 13 * (series.length - 1) : T0 + 24;
      ctx.stroke(); ctx.fillStyle = s.colour; ctx.fillText(s.name, w - R - 130, top + 13 * n);
    });
  }
  function drawCurves() {
    const per = (key) => history.filter((r) => Number.isFinite(r[key])).map((r) => [r.epoch, r[key]]);
    plot($("lab-accuracy"), [{ name: "train", colour: "#2a6fb0", points: per("train_accuracy") },
      { name: "validation", colour: "#e08020", points: per("validation_accuracy") }], 1, true);
    const losses = [...per("train_loss"), ...per("validation_loss"), ...steps].map((p) => p[1]);
    const top = Math.max(0.1, Math.min(5, ...(losses.length ? [Math.max(...losses) * 1.1] : [1])));
    plot($("lab-loss"), [{ name: "per step (smoothed)", colour: "#999", thin: true, points: steps },
      { name: "train", colour: "#2a6fb0", points: per("train_loss") },
      { name: "validation", colour: "#e08020", points: per("validation_loss") }], top, false);
  }

  // ---- the dense weights W per class: the last dense layer's rows, as maps when it reads maps ---------
  const specs = D.config.layers, last = specs.map((L) => L.type).lastIndexOf("dense");
  const mapsIn = last > 0 && specs[last - 1].type === "flatten" && D.shapes[last - 1].length === 3;
  const [K, R, Q] = mapsIn ? D.shapes[last - 1] : [1, 1, D.shapes[last][0]];
  const C = D.config.classes, weightCanvases = [];
  $("lab-weights-title").textContent = mapsIn
    ? "dense weights W_j per class j: its " + K + " maps of " + R + "×" + Q + " (red +, blue −; one scale)"
    : "dense weights W_j per class j over the last layer's " + Q + " inputs (red +, blue −; one scale)";
  for (let j = 0; j < C; j++) {
    const fig = document.createElement("figure"), row = [];
    for (let k = 0; k < K; k++) {
      const el = canvas(Q, R);
      el.style.width = (mapsIn ? 3 * Q : Math.min(300, 3 * Q)) + "px"; el.style.height = (mapsIn ? 3 * R : 12) + "px";
      row.push(el); fig.appendChild(el);
    }
    const cap = document.createElement("figcaption"); cap.textContent = D.class_names[j];
    fig.appendChild(cap); $("lab-weights").appendChild(fig); weightCanvases.push(row);
  }
  function drawWeights() {
    const W = S.params[last].W, scale = absmax(W), area = R * Q;
    weightCanvases.forEach((row, j) => row.forEach((el, k) => paint(el, W, (j * K + k) * area, Q, R, scale, false)));
    $("lab-weights-title").title = "scale " + scaleText(scale);
  }

  // ---- save: the model file, in the project's own format (scratchcnn.Stack) -------------------------
  function download(m) {
    const bytes = ScratchFiles.modelNpz(lab.header, m.params, D.config.dtype);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    a.download = "lab-model.npz"; document.body.appendChild(a); a.click(); a.remove();
    savedNote = " · saved lab-model.npz after epoch " + m.epoch + ": validation accuracy " +
      pct(m.validation_accuracy) + " (as saved, " + D.config.dtype + ")";
    S.lastSave = m; showStatus();
  }

  // For tests and the curious: the worker and the run's state.
  S.lab = { worker, history, options: () => options, status: () => status, parameters: () => current, send,
    usePreset, resetRun,
    setOptions(values) { options = Object.assign({}, options, values); showOptions(); send({ type: "set", options }); } };
  showOptions(); drawCurves(); drawWeights();
  if (document.readyState === "complete") setTimeout(init, 0);
  else window.addEventListener("load", () => setTimeout(init, 0));
})();
