// The user's own picture: a PNG or JPEG picked with "Your picture…" or dropped on the drawing canvas is
// decoded by the browser, prepared as `scratchcnn predict` prepares it (picture.js: grayscale, inverted when
// the paper is light, cropped to the ink, scaled to 20/28 of the input, centred by mass) and becomes the
// network's input. Before and after: a thumbnail of the original with one line saying what was done, in
// #picture-note; the Input X panel shows what the network sees. A picture that cannot be used (not an
// image, no ink) gets one line there and changes nothing else.
"use strict";
(function () {
  const S = window.scratchcnn;
  const [H, Wd] = S.data.config.input_shape;
  const $ = (id) => document.getElementById(id);
  const note = $("picture-note"), drawEl = $("draw"), THUMB = 48;  // the thumbnail's longer side, CSS pixels

  function preparePicture(rgba, width, height) {
    return ScratchPicture.prepare(rgba, width, height, [H, Wd]);
  }

  // A file's bytes → its pixels: RGBA bytes at its natural size, as stored (no colour management, no
  // premultiplied alpha, as Pillow reads them), and the bitmap for the thumbnail.
  async function decode(blob) {
    const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const { width, height } = bitmap;
    const canvas = document.createElement("canvas");
    canvas.width = width; canvas.height = height;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    return { bitmap, width, height, rgba: ctx.getImageData(0, 0, width, height).data };
  }

  // The ink box's longer side, as images.py's ink_box: 20/28 of the input's side (20 px for 28×28).
  function boxText() {
    const rows = Math.max(1, Math.round(H * 20 / 28)), cols = Math.max(1, Math.round(Wd * 20 / 28));
    return rows === cols ? rows + " px" : "fit " + rows + "×" + cols + " px";
  }
  function describe(name, width, height, result) {
    const colours = result.inverted ? "inverted (dark ink on light paper)" : "not inverted (light ink on dark paper)";
    return "your picture " + name + ", " + width + "×" + height + ": " + colours + ", cropped, scaled to " +
      boxText() + ", centred by mass (after: Input X)";
  }

  // The note says something about the input it was written for; once the input changes (a drawing, a test
  // image), it no longer applies and is hidden.
  let noteFor = null;
  function say(text, thumbnail) {
    const line = document.createElement("span");
    line.textContent = text;
    note.replaceChildren(...(thumbnail ? [thumbnail, line] : [line]));
    note.classList.toggle("bad", !thumbnail);
    note.hidden = false;
    noteFor = S.input();
  }
  S.onUpdate(() => {
    if (noteFor === null || note.hidden) return;
    const now = S.input();
    if (now.some((v, i) => v !== noteFor[i])) note.hidden = true;
  });
  function thumbnailOf(bitmap) {
    const s = THUMB / Math.max(bitmap.width, bitmap.height);
    const w = Math.max(1, Math.round(bitmap.width * s)), h = Math.max(1, Math.round(bitmap.height * s));
    const el = document.createElement("canvas");
    el.width = w * 2; el.height = h * 2;  // twice the CSS size: sharp on high-density screens
    el.style.width = w + "px"; el.style.height = h + "px"; el.className = "thumb";
    const ctx = el.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, 0, 0, el.width, el.height);
    return el;
  }

  // One picture (a File or Blob) → the input. Resolves to prepare's result with the note's text (and the
  // picture's size), or {ok: false, reason, note} when it could not be decoded. Only the latest picture
  // counts: a slower earlier one finishing later is dropped.
  let latest = 0;
  async function usePicture(blob, name) {
    const mine = ++latest;
    let picture;
    try {
      picture = await decode(blob);
    } catch (error) {
      if (mine !== latest) return { ok: false, reason: "superseded" };
      const text = "could not read " + name + " as a picture (PNG or JPEG): nothing changed";
      say(text);
      return { ok: false, reason: "not a picture the browser can decode", note: text };
    }
    if (mine !== latest) { picture.bitmap.close(); return { ok: false, reason: "superseded" }; }
    const { bitmap, width, height, rgba } = picture;
    let result;
    try {
      result = preparePicture(rgba, width, height);
    } catch (error) {  // a bug, not a property of the picture, but still one line and nothing else changes
      result = { ok: false, reason: "could not prepare it (" + error.message + ")" };
    }
    let text;
    if (result.ok) {
      S.setPicture(result.pixels);
      text = describe(name, width, height, result);
      say(text, thumbnailOf(bitmap));
    } else {
      text = "your picture " + name + ", " + width + "×" + height + ", cannot be used: " + result.reason +
        "; nothing changed";
      say(text);
    }
    bitmap.close();
    return Object.assign({}, result, { note: text, width, height });
  }

  // ---- picking and dropping ---------------------------------------------------------------------------
  const file = $("picture-file");
  file.addEventListener("change", () => {
    const chosen = file.files[0];
    file.value = "";  // picking the same file again still fires "change"
    if (chosen) usePicture(chosen, chosen.name);
  });
  const carriesFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files");
  drawEl.addEventListener("dragover", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();  // without it the browser refuses the drop
    e.dataTransfer.dropEffect = "copy";
    drawEl.classList.add("dropping");
  });
  drawEl.addEventListener("dragleave", () => drawEl.classList.remove("dropping"));
  drawEl.addEventListener("drop", (e) => {
    e.preventDefault();
    e.stopPropagation();
    drawEl.classList.remove("dropping");
    const dropped = e.dataTransfer.files[0];
    if (dropped) usePicture(dropped, dropped.name);
    else say("drop a PNG or JPEG file on the canvas (this was no file): nothing changed");
  });
  // A file dropped beside the canvas would make the browser open it in place of the page, and lose the
  // drawing and any training: refuse it there and say where to drop.
  document.addEventListener("dragover", (e) => { if (carriesFiles(e)) e.preventDefault(); });
  document.addEventListener("drop", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    say("drop the picture on the drawing canvas (or use “Your picture…”): nothing changed");
  });

  Object.assign(S, {
    preparePicture,
    usePictureBytes(bytes, name) { return usePicture(new Blob([bytes]), name || "picture"); },
  });
})();
