// The page of an exported polyp-sam-hf model: the frame is read, embedded and segmented here, in the
// visitor's browser, with ONNX Runtime Web (bundled beside this file at export, never fetched from a
// CDN). The model's two graphs and the prompt convention are the library's (models/onnx_graphs.py):
// a box is its two corners labelled 2 and 3, clicks are labelled 1 (polyp) and 0 (not), clicks with
// no box end with a padding point labelled -1, and each click is a correction round fed the previous
// round's low-resolution logits (as PolypSegmenter.session_logits prompts the model).
import * as ort from "./ort.wasm.bundle.min.mjs";

ort.env.wasm.numThreads = 1; // no cross-origin isolation needed: a static host serves it as is
ort.env.logLevel = "error"; // the optional inputs' defaults are meant (onnx_graphs.py)
// the .wasm copied beside this file (the bundle holds its own JavaScript glue)
ort.env.wasm.wasmPaths = { wasm: new URL("./ort-wasm-simd-threaded.wasm", import.meta.url).href };

const $ = (id) => document.getElementById(id);
const canvas = $("frame");
const ctx = canvas.getContext("2d");
const state = { config: null, encoder: null, decoder: null, frame: null, embedding: null, positional: null,
                box: null, clicks: [], history: [], rounds: [], mask: null, name: "frame", drag: null };
const timings = { load_s: null, embed_s: null, prompt_ms: [] };

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function loadModel() {
  const started = performance.now();
  const params = new URLSearchParams(location.search);
  const config = await (await fetch("model.json")).json();
  const variant = params.get("dtype") || config.dtype; // fp32 or int8
  const suffix = variant === "int8" ? "_quantized" : "";
  // the model folder: ?model=URL, else the export this page sits in, else (as a static Space) the Hub repo
  const bases = (params.get("model") ? [params.get("model")] : [config.model, config.hub_model]).filter(Boolean)
    .map((base) => new URL(base.replace(/\/?$/, "/"), location.href));
  let base = null;
  for (const candidate of bases) {
    const probe = await fetch(new URL("config.json", candidate), { method: "HEAD" }).catch(() => null);
    if (probe && probe.ok) { base = candidate; break; }
  }
  if (!base) throw new Error(`No model found at ${bases.map(String).join(" or ")}: give ?model=URL of an export.`);
  const open = async (part, inputs) => {
    const url = new URL(`onnx/${part}${suffix}.onnx`, base).href;
    let session;
    try {
      session = await ort.InferenceSession.create(url, { executionProviders: ["wasm"] });
    } catch (error) {
      throw new Error(`${url} could not be loaded as an ONNX graph (${String(error).slice(0, 200)}).`);
    }
    const missing = inputs.filter((name) => !session.inputNames.includes(name));
    if (missing.length) throw new Error(`${url} does not take ${missing.join(", ")}: export the model again.`);
    return session;
  };
  state.config = config;
  state.encoder = await open("vision_encoder", ["pixel_values"]);
  state.decoder = await open("prompt_encoder_mask_decoder",
                             ["image_embeddings", "image_positional_embeddings", "input_points", "input_labels"]);
  timings.load_s = (performance.now() - started) / 1000;
  status(`Model ready (${variant}, ${timings.load_s.toFixed(1)} s). Open a frame.`);
}

// ---------------------------------------------------------------- the frame, as SAM's processor makes it

function resizedShape(height, width, longest) {
  const scale = longest / Math.max(height, width);
  return [Math.floor(height * scale + 0.5), Math.floor(width * scale + 0.5)];
}

// One axis of an antialiased (triangle-filter) resize, as PIL and torchvision resize uint8 frames:
// for each output index, the source indices it reads and their normalised weights.
function resampleWeights(inSize, outSize) {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1);
  const taps = [];
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(Math.floor(centre - support + 0.5), 0);
    const hi = Math.min(Math.floor(centre + support + 0.5), inSize);
    const weights = [];
    let sum = 0;
    for (let j = lo; j < hi; j++) {
      const w = Math.max(0, 1 - Math.abs((j - centre + 0.5) / support));
      weights.push(w);
      sum += w;
    }
    taps.push({ lo, weights: weights.map((w) => w / sum) });
  }
  return taps;
}

// RGBA (h, w) -> RGB (nh, nw) uint8, horizontal pass then vertical, rounded to uint8 in between.
function resizeRGB(rgba, h, w, nh, nw) {
  const across = resampleWeights(w, nw);
  const down = resampleWeights(h, nh);
  const mid = new Uint8ClampedArray(h * nw * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < nw; x++) {
      const { lo, weights } = across[x];
      for (let c = 0; c < 3; c++) {
        let v = 0;
        for (let k = 0; k < weights.length; k++) v += weights[k] * rgba[(y * w + lo + k) * 4 + c];
        mid[(y * nw + x) * 3 + c] = Math.round(v);
      }
    }
  }
  const out = new Uint8ClampedArray(nh * nw * 3);
  for (let y = 0; y < nh; y++) {
    const { lo, weights } = down[y];
    for (let x = 0; x < nw; x++) {
      for (let c = 0; c < 3; c++) {
        let v = 0;
        for (let k = 0; k < weights.length; k++) v += weights[k] * mid[((lo + k) * nw + x) * 3 + c];
        out[(y * nw + x) * 3 + c] = Math.round(v);
      }
    }
  }
  return out;
}

// (1, 3, P, P) float32: resized, scaled to [0, 1], normalised, zero-padded at the bottom and right.
function pixelValues(rgba, h, w) {
  const { longest_edge: longest, pad_size: pad, mean, std } = state.config;
  const [nh, nw] = resizedShape(h, w, longest);
  const rgb = resizeRGB(rgba, h, w, nh, nw);
  const data = new Float32Array(3 * pad * pad);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < nh; y++) {
      for (let x = 0; x < nw; x++) {
        data[c * pad * pad + y * pad + x] = (rgb[(y * nw + x) * 3 + c] / 255 - mean[c]) / std[c];
      }
    }
  }
  return { tensor: new ort.Tensor("float32", data, [1, 3, pad, pad]), reshaped: [nh, nw] };
}

async function openFrame(file) {
  const { max_side: maxSide, max_pixels: maxPixels } = state.config;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (error) {
    status(`${file.name} is not an image this browser can read.`, true);
    return;
  }
  const { width: w, height: h } = bitmap;
  if (Math.max(w, h) > maxSide || w * h > maxPixels) {
    status(`${file.name} is ${w} x ${h}: larger than this page takes (${maxSide} px a side, ` +
           `${(maxPixels / 1e6).toFixed(0)} megapixels). Scale it down first.`, true);
    return;
  }
  canvas.width = w;
  canvas.height = h;
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  Object.assign(state, { frame: bitmap, rgba, name: file.name.replace(/\.[^.]+$/, ""), box: null, clicks: [],
                         history: [], rounds: [], mask: null });
  status(`Embedding ${file.name} (${w} x ${h})...`);
  await new Promise((done) => setTimeout(done, 0)); // let the status paint
  const started = performance.now();
  const { tensor, reshaped } = pixelValues(rgba, h, w);
  const out = await state.encoder.run({ pixel_values: tensor });
  timings.embed_s = (performance.now() - started) / 1000;
  Object.assign(state, { embedding: out.image_embeddings, positional: out.image_positional_embeddings,
                         original: [h, w], reshaped });
  status(`${file.name}: embedded in ${timings.embed_s.toFixed(2)} s. Drag a box around the polyp.`);
  draw();
  refreshButtons();
}

// ---------------------------------------------------------------- prompts to a mask

function toInput([x, y]) { // frame pixels -> the resized frame's pixels (scale_points)
  const [h, w] = state.original;
  const [nh, nw] = state.reshaped;
  return [x * nw / w, y * nh / h];
}

// One round: the clicks so far (and the box's corners, or a padding point), the previous logits.
async function decodeRound(clicks, previous) {
  const points = [];
  const labels = [];
  for (const [x, y, label] of clicks) { points.push(...toInput([x, y])); labels.push(label); }
  if (state.box) {
    const [x0, y0, x1, y1] = state.box;
    points.push(...toInput([x0, y0]), ...toInput([x1, y1]));
    labels.push(2, 3);
  } else {
    points.push(0, 0);
    labels.push(-1);
  }
  const n = labels.length;
  const feed = {
    image_embeddings: state.embedding,
    image_positional_embeddings: state.positional,
    input_points: new ort.Tensor("float32", Float32Array.from(points), [1, 1, n, 2]),
    input_labels: new ort.Tensor("int64", BigInt64Array.from(labels.map(BigInt)), [1, 1, n]),
  };
  if (previous) {
    const grid = state.config.grid;
    feed.input_masks = new ort.Tensor("float32", previous, [1, 1, grid, grid]);
    feed.has_input_masks = new ort.Tensor("float32", Float32Array.from([1]), [1]);
  }
  const out = await state.decoder.run(feed);
  return out.pred_masks.data; // (1, 1, 1, grid, grid)
}

// The rounds of the session, recomputing only those a new click adds (one decoder call per click).
async function segment() {
  if (!state.embedding || (!state.box && !state.clicks.length)) return;
  const started = performance.now();
  const first = state.box ? 0 : 1; // with a box, round 0 is the box alone
  for (let j = first + state.rounds.length; j <= state.clicks.length; j++) {
    const previous = state.rounds.length ? state.rounds[state.rounds.length - 1] : null;
    state.rounds.push(await decodeRound(state.clicks.slice(0, j), previous));
  }
  state.mask = toFrame(state.rounds[state.rounds.length - 1]);
  timings.prompt_ms.push(performance.now() - started);
  draw();
  refreshButtons();
  const area = state.mask.reduce((a, b) => a + b, 0);
  status(`Mask of ${area} pixels (${timings.prompt_ms[timings.prompt_ms.length - 1].toFixed(0)} ms). ` +
         "Click to correct it, or save it.");
  $("timings").textContent = `embedding ${timings.embed_s.toFixed(2)} s; prompt ` +
    `${timings.prompt_ms[timings.prompt_ms.length - 1].toFixed(0)} ms (ONNX Runtime Web, WebAssembly, 1 thread)`;
}

// Bilinear resize of a float plane (align_corners false, as torch's interpolate), reading only the
// (rows, cols) corner of the source that `region` keeps.
function bilinear(src, sh, sw, dh, dw, scaleY, scaleX) {
  const out = new Float32Array(dh * dw);
  for (let y = 0; y < dh; y++) {
    const sy = Math.max((y + 0.5) * scaleY - 0.5, 0);
    const y0 = Math.min(Math.floor(sy), sh - 1);
    const y1 = Math.min(y0 + 1, sh - 1);
    const fy = sy - y0;
    for (let x = 0; x < dw; x++) {
      const sx = Math.max((x + 0.5) * scaleX - 0.5, 0);
      const x0 = Math.min(Math.floor(sx), sw - 1);
      const x1 = Math.min(x0 + 1, sw - 1);
      const fx = sx - x0;
      const top = src[y0 * sw + x0] * (1 - fx) + src[y0 * sw + x1] * fx;
      const bottom = src[y1 * sw + x0] * (1 - fx) + src[y1 * sw + x1] * fx;
      out[y * dw + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

// Low-resolution logits -> the frame's mask, as segmenter.to_original: upsampled to the padded input,
// the padding cropped, resized to the frame, logits above 0.
function toFrame(lowRes) {
  const { grid, pad_size: pad } = state.config;
  const [nh, nw] = state.reshaped;
  const [h, w] = state.original;
  const input = bilinear(lowRes, grid, grid, nh, nw, grid / pad, grid / pad); // the crop of the upsampled grid
  const frame = bilinear(input, nh, nw, h, w, nh / h, nw / w);
  return Uint8Array.from(frame, (v) => (v > 0 ? 1 : 0));
}

// ---------------------------------------------------------------- drawing and the controls

function draw() {
  if (!state.frame) return;
  ctx.drawImage(state.frame, 0, 0);
  const [h, w] = state.original;
  if (state.mask) {
    const overlay = ctx.getImageData(0, 0, w, h);
    for (let i = 0; i < state.mask.length; i++) {
      if (!state.mask[i]) continue;
      overlay.data[i * 4] = overlay.data[i * 4] * 0.5;
      overlay.data[i * 4 + 1] = overlay.data[i * 4 + 1] * 0.5 + 127;
      overlay.data[i * 4 + 2] = overlay.data[i * 4 + 2] * 0.5;
    }
    ctx.putImageData(overlay, 0, 0);
  }
  const box = state.drag || state.box;
  if (box) {
    ctx.strokeStyle = "#ffd400";
    ctx.lineWidth = Math.max(2, w / 300);
    ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
  }
  for (const [x, y, label] of state.clicks) {
    ctx.beginPath();
    ctx.arc(x, y, Math.max(5, w / 120), 0, 2 * Math.PI);
    ctx.fillStyle = label ? "rgb(0,200,0)" : "rgb(230,0,0)";
    ctx.fill();
    ctx.strokeStyle = "white";
    ctx.stroke();
  }
}

function refreshButtons() {
  $("undo").disabled = !state.history.length;
  $("clear").disabled = !state.history.length;
  $("save").disabled = !state.mask;
}

function framePoint(event) {
  const rect = canvas.getBoundingClientRect();
  return [(event.clientX - rect.left) * canvas.width / rect.width,
          (event.clientY - rect.top) * canvas.height / rect.height];
}

function kind() { return document.querySelector('input[name="kind"]:checked').value; }

canvas.addEventListener("pointerdown", (event) => {
  if (!state.embedding) return;
  const [x, y] = framePoint(event);
  if (kind() === "box") {
    state.drag = [x, y, x, y];
    canvas.setPointerCapture(event.pointerId);
    return;
  }
  state.clicks.push([x, y, Number(kind())]);
  state.history.push("click");
  segment();
});

canvas.addEventListener("pointermove", (event) => {
  if (!state.drag) return;
  const [x, y] = framePoint(event);
  state.drag = [state.drag[0], state.drag[1], x, y];
  draw();
});

canvas.addEventListener("pointerup", (event) => {
  if (!state.drag) return;
  const [ax, ay, bx, by] = state.drag;
  state.drag = null;
  const box = [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
  if (box[2] - box[0] < 2 || box[3] - box[1] < 2) { draw(); return; } // a click, not a box
  Object.assign(state, { box, clicks: [], rounds: [] });
  state.history.push("box");
  segment();
});

$("undo").addEventListener("click", () => {
  const last = state.history.pop();
  if (last === "click") {
    state.clicks.pop();
    state.rounds.pop();
  } else {
    Object.assign(state, { box: null, clicks: [], rounds: [], history: [] });
  }
  state.mask = null;
  if (state.rounds.length) state.mask = toFrame(state.rounds[state.rounds.length - 1]);
  draw();
  refreshButtons();
});

$("clear").addEventListener("click", () => {
  Object.assign(state, { box: null, clicks: [], rounds: [], history: [], mask: null });
  draw();
  refreshButtons();
  status("Cleared. Drag a box around the polyp.");
});

$("save").addEventListener("click", () => {
  const [h, w] = state.original;
  const out = document.createElement("canvas");
  out.width = w;
  out.height = h;
  const image = out.getContext("2d").createImageData(w, h);
  for (let i = 0; i < state.mask.length; i++) {
    const v = state.mask[i] ? 255 : 0;
    image.data.set([v, v, v, 255], i * 4);
  }
  out.getContext("2d").putImageData(image, 0, 0);
  out.toBlob((blob) => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${state.name}_mask.png`;
    link.click();
  }, "image/png");
});

$("file").addEventListener("change", (event) => {
  if (event.target.files.length) openFrame(event.target.files[0]);
});

// what the page's test reads: ready once the model loads; the timings of this visit
window.polypSam = { timings, state, ready: loadModel().catch((error) => { status(String(error.message), true); throw error; }) };
