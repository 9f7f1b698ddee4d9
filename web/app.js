// The page: loads onnxruntime-web and the models from this folder (nothing from elsewhere), wires
// the photo upload, the webcam and the model menu, and exposes window.ferHub for programs:
//
//   await ferHub.ready
//   await ferHub.analyze(imageOrCanvasOrUrl, { model: "custom-cnn" })   // Python's result JSON
//   await ferHub.analyze(faceCrop, { detect: false })   // the whole image is the face
//   await ferHub.startCamera({ model })  /  ferHub.stopCamera()
//   ferHub.stats()  // { fps, lastMs, detectMs, classifyMs, frames, model, backend }

import { fromRGBA } from "./imageops.js";
import { analyze, Classifier, FaceDetector, FaceTracker, RetinaFace } from "./pipeline.js";

const $ = (id) => document.getElementById(id);
const state = { cfg: null, detector: null, classifiers: new Map(), model: null, backend: "wasm", camera: null };
let ort = null; // onnxruntime-web: its WebGPU build where the bundle has it and the browser a GPU

// WebGPU when the bundle carries its runtime (export-web --webgpu), the browser offers an adapter
// and the page was not asked for ?backend=wasm; else the WASM build (smaller and faster on a CPU).
async function pickRuntime(cfg) {
  const asked = new URLSearchParams(location.search).get("backend");
  if (cfg.runtimes.webgpu && asked !== "wasm" && navigator.gpu) {
    try {
      if (await navigator.gpu.requestAdapter()) return ["webgpu", cfg.runtimes.webgpu];
    } catch {
      // no usable adapter: WASM below
    }
  }
  return ["wasm", cfg.runtimes.wasm];
}

async function loadConfig() {
  const res = await fetch("fer_hub.json");
  if (!res.ok) throw new Error("fer_hub.json is missing: build this folder with `fer-hub export-web`");
  return res.json();
}

// `cpu`: the int8 live models, whose kernels WebGPU lacks, stay on WASM.
async function session(file, { cpu = false } = {}) {
  const providers = state.backend === "webgpu" && !cpu ? ["webgpu", "wasm"] : ["wasm"];
  return ort.InferenceSession.create(file, { executionProviders: providers, graphOptimizationLevel: "all" });
}

async function classifier(name) {
  if (!state.classifiers.has(name)) {
    const meta = state.cfg.models.find((m) => m.name === name);
    if (!meta) throw new Error(`no model "${name}" in this bundle (it has ${state.cfg.models.map((m) => m.name).join(", ")})`);
    state.classifiers.set(
      name,
      session(meta.file).then((s) => new Classifier(ort, s, meta, state.cfg.emotions, state.cfg.normalize)),
    );
  }
  return state.classifiers.get(name);
}

// The live view's classifier: the model's int8 export, scored once a frame (fer_hub.json "live");
// the tracker's moving average over frames stands in for the photo path's mirror image.
async function liveClassifier(name) {
  const key = `${name} (live)`;
  if (!state.classifiers.has(key)) {
    const meta = state.cfg.models.find((m) => m.name === name);
    if (!meta) throw new Error(`no model "${name}" in this bundle`);
    if (!meta.live) return classifier(name);
    const live = { ...meta, tta: meta.live.tta };
    state.classifiers.set(
      key,
      session(meta.live.file, { cpu: true }).then((s) => new Classifier(ort, s, live, state.cfg.emotions, state.cfg.normalize)),
    );
  }
  return state.classifiers.get(key);
}

async function init() {
  state.cfg = await loadConfig();
  const [backend, runtime] = await pickRuntime(state.cfg);
  ort = await import(`./${runtime}`);
  state.backend = backend;
  ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
  // Threads need a cross-origin isolated page (COOP/COEP headers); a plain static host has none.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  const det = state.cfg.detector;
  state.detector = new FaceDetector(new RetinaFace(ort, await session(det.file), det), {
    ...det,
    work_size: state.cfg.work_size,
  });
  state.model = state.cfg.default_model;
  if (state.cfg.space_url) $("space-link").href = state.cfg.space_url;
  else $("space-link").removeAttribute("href");
  await classifier(state.model);
  buildModelMenu();
  $("status").textContent = `Ready. Models run here, in your browser (${state.backend}${
    ort.env.wasm.numThreads > 1 ? `, ${ort.env.wasm.numThreads} threads` : ""
  }): no photo or frame leaves this computer.`;
  document.body.dataset.ready = "true";
}

// ---------------------------------------------------------------------------------------------
// images in: <img>, <canvas>, <video>, ImageBitmap, ImageData, Blob/File, or a URL

// A file's pixels, turned upright by its EXIF orientation as Python's load_image turns them.
async function decodeImage(blob, name = "this file") {
  try {
    return await createImageBitmap(blob, { imageOrientation: "from-image" });
  } catch {
    throw new Error(`cannot read ${name} as an image (not a JPEG, PNG, WebP, GIF or BMP the browser can decode)`);
  }
}

async function toRGB(source) {
  if (typeof source === "string" || source instanceof URL) {
    const res = await fetch(source);
    if (!res.ok) throw new Error(`could not fetch ${source}: HTTP ${res.status}`);
    source = await res.blob();
  }
  if (source instanceof Blob) source = await decodeImage(source);
  if (source instanceof ImageData) return fromRGBA(source);
  const w = source.naturalWidth || source.videoWidth || source.width;
  const h = source.naturalHeight || source.videoHeight || source.height;
  if (!w || !h) throw new Error("the image has no pixels (not loaded yet, or empty)");
  const canvas = new OffscreenCanvas(w, h);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0);
  return fromRGBA(ctx.getImageData(0, 0, w, h));
}

async function analyzeImage(source, { model = state.model, detect = true } = {}) {
  await ready;
  const clf = await classifier(model);
  const rgb = await toRGB(source);
  return (await analyze(rgb, state.detector, clf, state.cfg, { detect })).result;
}

// ---------------------------------------------------------------------------------------------
// drawing: boxes with labels on an overlay, and the fixed-order bar chart

function drawFaces(canvas, result, width, height) {
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  const line = Math.max(2, Math.round(Math.max(width, height) / 250));
  ctx.font = `${Math.max(14, line * 7)}px system-ui, sans-serif`;
  for (const f of result.faces) {
    const [x, y, w, h] = f.box;
    const colour = f.uncertain ? "#9ca3af" : "#f97316";
    ctx.lineWidth = line;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x, y, w, h);
    const text = `${f.label}${f.uncertain ? " (uncertain)" : ""} ${Math.round(100 * f.probabilities[f.label])}%`;
    const tw = ctx.measureText(text).width + 8;
    const th = parseInt(ctx.font, 10) + 6;
    const ty = y > th ? y - th : y + h;
    ctx.fillStyle = colour;
    ctx.fillRect(x, ty, tw, th);
    ctx.fillStyle = "#111827";
    ctx.fillText(text, x + 4, ty + th - 6);
  }
}

function drawChart(el, result) {
  const face = result.faces[0];
  el.replaceChildren();
  if (!face) {
    el.textContent = result.face_found === false ? "No face found." : "";
    return;
  }
  const head = document.createElement("div");
  head.className = "headline";
  head.textContent = `${face.label}${face.uncertain ? " (uncertain)" : ""}`;
  if (result.faces.length > 1) {
    // the chart shows the largest face; every face is boxed and labelled on the picture
    const more = document.createElement("span");
    more.className = "more";
    more.textContent = ` the largest of ${result.faces.length} faces`;
    head.append(more);
  }
  el.append(head);
  for (const e of state.cfg.emotions) {
    const p = face.probabilities[e];
    const row = document.createElement("div");
    row.className = "bar" + (e === face.label ? " top" : "");
    row.innerHTML = `<span class="name">${e}</span><span class="track"><span class="fill" style="width:${(100 * p).toFixed(1)}%"></span></span><span class="pct">${(100 * p).toFixed(0)}%</span>`;
    el.append(row);
  }
}

// ---------------------------------------------------------------------------------------------
// photo

async function showPhoto(file) {
  const img = $("photo-img");
  const url = URL.createObjectURL(file);
  $("photo-error").textContent = "";
  try {
    const bitmap = await decodeImage(file, file.name);
    const result = await analyzeImage(bitmap);
    img.src = url;
    await img.decode();
    drawFaces($("photo-overlay"), result, bitmap.width, bitmap.height);
    drawChart($("photo-chart"), result);
    $("photo-json").textContent = JSON.stringify(result, null, 2);
  } catch (err) {
    img.removeAttribute("src");
    $("photo-overlay").getContext("2d").clearRect(0, 0, 1e5, 1e5);
    $("photo-chart").replaceChildren();
    $("photo-json").textContent = "";
    $("photo-error").textContent = err.message;
  }
}

// ---------------------------------------------------------------------------------------------
// live camera: each frame is analysed as soon as the previous one is done, tracked and smoothed

async function startCamera({ model = state.model } = {}) {
  await ready;
  stopCamera();
  setModel(model);
  await liveClassifier(model);
  const video = $("camera-video");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    throw new Error(`no camera: ${err.message || err.name} (allow the camera for this page, or use a photo)`);
  }
  video.srcObject = stream;
  await video.play();
  const cam = {
    stream,
    running: true,
    tracker: new FaceTracker(state.cfg.tracking),
    frames: 0,
    times: [],
    lastMs: 0,
    detectMs: 0,
    classifyMs: 0,
  };
  state.camera = cam;
  $("camera-button").textContent = "Stop camera";
  const canvas = new OffscreenCanvas(video.videoWidth, video.videoHeight);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  // The newest camera frame's number, kept by the browser's per-frame callback: the loop takes
  // the next frame as soon as it is done with one, and waits only when it has caught up.
  const frames = { latest: 0, waiting: [] };
  const onFrame = (_now, meta) => {
    frames.latest = meta.presentedFrames;
    frames.waiting.splice(0).forEach((resolve) => resolve());
    if (cam.running) video.requestVideoFrameCallback(onFrame);
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onFrame);
  const detectEvery = state.cfg.live.detect_every;
  let faces = null;
  const loop = async () => {
    while (cam.running) {
      const t0 = performance.now();
      const shown = frames.latest;
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      const rgb = fromRGBA(ctx.getImageData(0, 0, canvas.width, canvas.height));
      const clf = await liveClassifier(state.model);
      // detect on every detectEvery-th frame, and on every frame while no face is in view
      const reuse = faces && faces.length && cam.frames % detectEvery !== 0 ? faces : null;
      const out = await analyze(rgb, state.detector, clf, state.cfg, { live: true, faces: reuse });
      const { result, timings } = out;
      faces = out.faces;
      if (!cam.running) break;
      const smoothed = cam.tracker.smooth(result, state.cfg.emotions, clf.meta.uncertain_below);
      drawFaces($("camera-overlay"), smoothed, canvas.width, canvas.height);
      drawChart($("camera-chart"), smoothed);
      const t1 = performance.now();
      cam.frames += 1;
      cam.lastMs = t1 - t0;
      if (!reuse) cam.detectMs = timings.detectMs;
      cam.classifyMs = timings.classifyMs;
      cam.classifierFile = clf.meta.live ? clf.meta.live.file : clf.meta.file;
      cam.times.push(t1);
      while (cam.times.length && cam.times[0] < t1 - 2000) cam.times.shift();
      $("camera-stats").textContent = `${stats().fps.toFixed(1)} frames/s, ${cam.lastMs.toFixed(0)} ms a frame`;
      if (frames.latest === shown) await nextFrame(video, frames); // caught up: wait for a new frame
    }
  };
  cam.done = loop();
}

// The camera's next frame: analysing one frame twice would count toward the rate and show
// nothing new. Browsers without requestVideoFrameCallback wait for the next paint instead.
function nextFrame(video, frames) {
  return new Promise((resolve) =>
    video.requestVideoFrameCallback ? frames.waiting.push(resolve) : requestAnimationFrame(resolve),
  );
}

function stopCamera() {
  const cam = state.camera;
  if (!cam) return;
  cam.running = false;
  cam.stream.getTracks().forEach((t) => t.stop());
  state.camera = null;
  $("camera-button").textContent = "Start camera";
}

function stats() {
  const cam = state.camera;
  const times = cam ? cam.times : [];
  const span = times.length > 1 ? (times[times.length - 1] - times[0]) / 1000 : 0;
  return {
    fps: span > 0 ? (times.length - 1) / span : 0,
    lastMs: cam ? cam.lastMs : 0,
    detectMs: cam ? cam.detectMs : 0,
    classifyMs: cam ? cam.classifyMs : 0,
    frames: cam ? cam.frames : 0,
    model: state.model,
    classifier: cam ? cam.classifierFile : null,
    backend: state.backend,
    threads: ort ? ort.env.wasm.numThreads : 0,
  };
}

// ---------------------------------------------------------------------------------------------
// the model menu

function buildModelMenu() {
  const menu = $("model");
  menu.replaceChildren(
    ...state.cfg.models.map((m) => {
      const o = document.createElement("option");
      o.value = m.name;
      o.textContent = `${m.title} (${m.name})`;
      return o;
    }),
  );
  menu.value = state.model;
  menu.onchange = () => setModel(menu.value);
}

function setModel(name) {
  if (!state.cfg.models.some((m) => m.name === name)) throw new Error(`no model "${name}" in this bundle`);
  state.model = name;
  $("model").value = name;
  classifier(name); // start loading it now
  if (state.camera) {
    liveClassifier(name);
    state.camera.tracker = new FaceTracker(state.cfg.tracking); // a new model's probabilities
  }
}

const ready = init();
ready.catch((err) => {
  $("status").textContent = `Could not start: ${err.message}`;
  document.body.dataset.ready = "error";
});

window.ferHub = { ready, analyze: analyzeImage, startCamera, stopCamera, stats };

$("photo-input").addEventListener("change", (e) => e.target.files[0] && showPhoto(e.target.files[0]));
$("camera-button").addEventListener("click", () => {
  if (state.camera) stopCamera();
  else startCamera().catch((err) => ($("camera-stats").textContent = err.message));
});
