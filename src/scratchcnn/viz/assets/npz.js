// Model files in the browser: NumPy's .npz (a zip of .npy arrays, stored uncompressed) and, on top of it, the
// project's model file (nn/npzfile.py's write_npz: the parameters "<layer index>.<name>" plus a 0-d string
// array "header" holding the JSON that Stack.header() writes). What this writes, scratchcnn load_model,
// `scratchcnn evaluate` and np.load read. It computes and never draws: no DOM, so a page or a worker can load
// it as a classic script; both find it on one global, ScratchFiles (node: module.exports too).
(function (root) {
  "use strict";

  // ---- .npy v1.0: magic, a Python-literal header dict padded to 64 bytes, then little-endian data ----------

  const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];  // "\x93NUMPY"
  const NPY_ALIGN = 64;  // numpy pads the header so that the data starts on a 64-byte boundary
  const FLOATS = { float32: { descr: "<f4", Arr: Float32Array }, float64: { descr: "<f8", Arr: Float64Array } };
  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  // A shape as Python writes a tuple: (), (5,), (3, 4)
  const shapeText = (shape) => "(" + shape.join(", ") + (shape.length === 1 ? ",)" : ")");
  const count = (shape) => shape.reduce((a, b) => a * b, 1);

  function asciiBytes(text) {
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }

  // The 10 fixed bytes and the header text, padded with spaces and ended by "\n" to a multiple of 64 bytes.
  function npyHeader(descr, shape) {
    let dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shapeText(shape) + ", }";
    const fixed = NPY_MAGIC.length + 2 + 2;  // magic, version 1.0, header length (uint16)
    dict += " ".repeat(NPY_ALIGN - ((fixed + dict.length + 1) % NPY_ALIGN)) + "\n";
    if (dict.length > 0xffff) throw new Error("npz: the .npy header of shape " + shapeText(shape) + " is too long");
    const out = new Uint8Array(fixed + dict.length);
    out.set(NPY_MAGIC, 0);
    out[6] = 1; out[7] = 0;  // format version 1.0
    out[8] = dict.length & 0xff; out[9] = dict.length >> 8;
    out.set(asciiBytes(dict), fixed);
    return out;
  }

  // The code points of a string (an astral character is one, not its two UTF-16 halves).
  const codePoints = (text) => Array.from(text, (ch) => ch.codePointAt(0));

  // One member {dtype, shape, data} → .npy bytes. "unicode": a 0-d string array <U{n}, n code points, UTF-32LE.
  function npy(name, member) {
    if (member.dtype === "unicode") {
      if (typeof member.data !== "string") throw new Error("npz: member " + name + " (unicode) needs a string");
      const points = codePoints(member.data);
      const n = Math.max(points.length, 1);  // numpy's dtype for "" is <U1 (one zero code point)
      const head = npyHeader("<U" + n, []);
      const out = new Uint8Array(head.length + 4 * n);
      out.set(head, 0);
      const view = new DataView(out.buffer, head.length);
      points.forEach((p, i) => view.setUint32(4 * i, p, true));
      return out;
    }
    const kind = FLOATS[member.dtype];
    if (!kind) {
      throw new Error("npz: member " + name + " has dtype " + member.dtype + ", not float32, float64 or unicode");
    }
    const shape = Array.from(member.shape || [], Number);
    if (!shape.every((n) => Number.isInteger(n) && n >= 0)) {
      throw new Error("npz: member " + name + " has shape " + JSON.stringify(member.shape));
    }
    if (member.data.length !== count(shape)) {
      throw new Error("npz: member " + name + " holds " + member.data.length + " numbers, its shape " +
        shapeText(shape) + " needs " + count(shape));
    }
    // float64 → float32 rounds to the nearest, as NumPy's astype
    const values = member.data instanceof kind.Arr ? member.data : kind.Arr.from(member.data);
    const head = npyHeader(kind.descr, shape);
    const out = new Uint8Array(head.length + values.byteLength);
    out.set(head, 0);
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), head.length);
    } else {  // a big-endian machine: write each number little-endian
      const view = new DataView(out.buffer, head.length), size = kind.Arr.BYTES_PER_ELEMENT;
      values.forEach((v, i) => (size === 4 ? view.setFloat32(4 * i, v, true) : view.setFloat64(8 * i, v, true)));
    }
    return out;
  }

  // ---- zip, "stored" (no compression): local header + data per member, then the central directory ---------

  const CRC_TABLE = (() => {  // CRC-32 of zip (IEEE 802.3, reflected polynomial 0xEDB88320), one byte at a time
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
    return table;
  })();

  function crc32(bytes) {
    let c = 0xffffffff;
    for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }

  const ZIP_VERSION = 20;  // 2.0: what a reader needs for stored members
  const DOS_DATE = (1 << 5) | 1;  // 1980-01-01, the earliest date zip can say: the file is the same bytes every time
  const UTF8_NAMES = 1 << 11;  // general purpose flag: the name is UTF-8

  // The fields both the local header (30 bytes) and the central directory entry (46 bytes) carry.
  function writeCommon(view, at, entry) {
    view.setUint16(at, ZIP_VERSION, true);  // version needed to extract
    view.setUint16(at + 2, entry.flags, true);
    view.setUint16(at + 4, 0, true);  // method 0: stored
    view.setUint16(at + 6, 0, true);  // time 00:00:00
    view.setUint16(at + 8, DOS_DATE, true);
    view.setUint32(at + 10, entry.crc, true);
    view.setUint32(at + 14, entry.data.length, true);  // compressed size = uncompressed size
    view.setUint32(at + 18, entry.data.length, true);
    view.setUint16(at + 22, entry.name.length, true);
    view.setUint16(at + 24, 0, true);  // no extra field
  }

  // files: [{name, data: Uint8Array}] → the bytes of a zip archive holding them, stored.
  function zip(files) {
    const encoder = new TextEncoder();
    const entries = files.map((f) => ({
      name: encoder.encode(f.name), data: f.data, crc: crc32(f.data),
      flags: /^[\x20-\x7e]*$/.test(f.name) ? 0 : UTF8_NAMES,
    }));
    let size = 22;  // end of central directory record
    for (const e of entries) size += 30 + e.name.length + e.data.length + 46 + e.name.length;
    if (size > 0xffffffff || entries.length > 0xffff) throw new Error("npz: too large for a zip without zip64");
    const out = new Uint8Array(size), view = new DataView(out.buffer);
    let at = 0;
    for (const e of entries) {  // local file header, name, data
      e.offset = at;
      view.setUint32(at, 0x04034b50, true);
      writeCommon(view, at + 4, e);
      out.set(e.name, at + 30);
      out.set(e.data, at + 30 + e.name.length);
      at += 30 + e.name.length + e.data.length;
    }
    const directory = at;
    for (const e of entries) {  // central directory entry: the same fields, plus where the local header is
      view.setUint32(at, 0x02014b50, true);
      view.setUint16(at + 4, ZIP_VERSION, true);  // version made by: 2.0, MS-DOS attributes
      writeCommon(view, at + 6, e);
      view.setUint16(at + 32, 0, true);  // no comment
      view.setUint16(at + 34, 0, true);  // disk 0
      view.setUint16(at + 36, 0, true);  // internal attributes
      view.setUint32(at + 38, 0, true);  // external attributes
      view.setUint32(at + 42, e.offset, true);
      out.set(e.name, at + 46);
      at += 46 + e.name.length;
    }
    view.setUint32(at, 0x06054b50, true);  // end of central directory
    view.setUint16(at + 4, 0, true);  // this disk
    view.setUint16(at + 6, 0, true);  // the disk where the directory starts
    view.setUint16(at + 8, entries.length, true);
    view.setUint16(at + 10, entries.length, true);
    view.setUint32(at + 12, at - directory, true);  // the directory's size
    view.setUint32(at + 16, directory, true);  // ... and where it starts
    view.setUint16(at + 20, 0, true);  // no comment
    return out;
  }

  // members: {name: {dtype: "float32"|"float64"|"unicode", shape, data}} → an .npz as np.savez writes it,
  // uncompressed: one "<name>.npy" per member, in the object's order.
  function npz(members) {
    return zip(Object.keys(members).map((name) => ({ name: name + ".npy", data: npy(name, members[name]) })));
  }

  // ---- the model file ----------------------------------------------------------------------------------

  // header: Stack.header() (format, config, arrays: {"<i>.<name>": shape}, ...); arrays: {"<i>.<name>":
  // Float64Array | Float32Array | numbers}, flat and row-major; dtype: the config's (float64 values are
  // rounded to float32 for a float32 network). The file's parameters are exactly the arrays the header
  // promises, all finite: anything else load_model would refuse, so it is refused here, before writing.
  function modelNpz(header, arrays, dtype) {
    if (!header || typeof header.format !== "string" || !header.arrays || typeof header.arrays !== "object") {
      throw new Error("model file: the header has no format or no arrays section");
    }
    const configured = header.config && header.config.dtype;
    dtype = dtype || configured;
    if (!FLOATS[dtype]) throw new Error("model file: dtype " + dtype + " is not float32 or float64");
    if (configured && configured !== dtype) {
      throw new Error("model file: dtype " + dtype + " disagrees with the header's config (" + configured + ")");
    }
    const wanted = Object.keys(header.arrays), given = Object.keys(arrays);
    const missing = wanted.filter((n) => !(n in arrays)), extra = given.filter((n) => !(n in header.arrays));
    if (missing.length || extra.length) {
      throw new Error("model file: arrays " + JSON.stringify(given.sort()) + ", the header needs " +
        JSON.stringify(wanted.sort()));
    }
    const members = {};
    for (const name of wanted) {
      const data = arrays[name] instanceof FLOATS[dtype].Arr ? arrays[name] : FLOATS[dtype].Arr.from(arrays[name]);
      for (let i = 0; i < data.length; i++) {  // checked as written: 1e39 is finite, but not as a float32
        if (!Number.isFinite(data[i])) throw new Error("model file: array " + name + " holds NaN or infinite values");
      }
      members[name] = { dtype, shape: header.arrays[name], data };
    }
    members.header = { dtype: "unicode", shape: [], data: JSON.stringify(header) };  // the header last, as write_npz
    return npz(members);
  }

  const api = { npz, modelNpz, npy, zip, crc32 };
  root.ScratchFiles = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof self !== "undefined" ? self : globalThis);  // self: the page's window or the worker's global
