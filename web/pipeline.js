// fer_hub's Predictor, in the browser: RetinaFace's passes, eye levelling and FER-2013 framing,
// the 48x48 crop, the classifier with its own scoring (flip TTA or plain), temperature, class
// bias, "uncertain" threshold, and the face tracker of the live view. Every number it uses comes from
// the bundle's fer_hub.json, which `fer-hub export-web` writes from the Python package, so the
// two pipelines cannot drift apart. Mirrors fer_hub/faces.py, align.py, predict.py, tracking.py.

import { affineGray, resizeArea, resizePil, roundHalfEven, sharpness, shrunkSize, toGray } from "./imageops.js";

// ---------------------------------------------------------------------------------------------
// detection (fer_hub/retinaface.py + faces.RetinaFaceDetector)

const anchorCache = new Map();

function anchors(cfg, width, height) {
  const key = `${width}x${height}`;
  if (anchorCache.has(key)) return anchorCache.get(key);
  const out = [];
  cfg.strides.forEach((stride, k) => {
    const nx = Math.ceil(width / stride);
    const ny = Math.ceil(height / stride);
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++)
        for (const s of cfg.sizes[k])
          out.push([((x + 0.5) * stride) / width, ((y + 0.5) * stride) / height, s / width, s / height]);
  });
  const flat = Float32Array.from(out.flat()); // float32, as Python's anchors are
  if (anchorCache.size > 32) anchorCache.clear();
  anchorCache.set(key, flat);
  return flat;
}

export function nms(boxes, scores, threshold) {
  const order = scores.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0] || b[1] - a[1]).map((p) => p[1]);
  const keep = [];
  let rest = order;
  while (rest.length) {
    const i = rest[0];
    keep.push(i);
    const [x1, y1, w1, h1] = boxes[i];
    rest = rest.slice(1).filter((j) => {
      const [x2, y2, w2, h2] = boxes[j];
      const w = Math.max(0, Math.min(x1 + w1, x2 + w2) - Math.max(x1, x2));
      const h = Math.max(0, Math.min(y1 + h1, y2 + h2) - Math.max(y1, y2));
      const inter = w * h;
      return inter / (w1 * h1 + w2 * h2 - inter + 1e-9) <= threshold;
    });
  }
  return keep;
}

export class RetinaFace {
  constructor(ort, session, cfg) {
    this.ort = ort;
    this.session = session;
    this.cfg = cfg;
  }

  // Faces in an RGB image: [{box: [x, y, w, h], score, landmarks: [[x, y] x 5]}], best first.
  async detect(rgb, scoreThreshold) {
    const { width: w, height: h, data } = rgb;
    const [mb, mg, mr] = this.cfg.mean_bgr;
    const plane = w * h;
    const x = new Float32Array(3 * plane);
    for (let i = 0, p = 0; p < plane; i += 3, p++) {
      x[p] = data[i + 2] - mb;
      x[plane + p] = data[i + 1] - mg;
      x[2 * plane + p] = data[i] - mr;
    }
    const feeds = { [this.session.inputNames[0]]: new this.ort.Tensor("float32", x, [1, 3, h, w]) };
    const out = await this.session.run(feeds);
    const [loc, conf, marks] = this.session.outputNames.map((n) => out[n].data);
    const a = anchors(this.cfg, w, h);
    const [vc, vs] = this.cfg.variance;
    const boxes = [];
    const scores = [];
    const points = [];
    const n = a.length / 4;
    for (let i = 0; i < n; i++) {
      const score = conf[i * 2 + 1];
      if (!(score > scoreThreshold)) continue;
      const [acx, acy, aw, ah] = [a[i * 4], a[i * 4 + 1], a[i * 4 + 2], a[i * 4 + 3]];
      const cx = acx + loc[i * 4] * vc * aw;
      const cy = acy + loc[i * 4 + 1] * vc * ah;
      const bw = aw * Math.exp(loc[i * 4 + 2] * vs);
      const bh = ah * Math.exp(loc[i * 4 + 3] * vs);
      boxes.push([(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]);
      scores.push(score);
      const pts = [];
      for (let k = 0; k < 5; k++)
        pts.push([(acx + marks[i * 10 + 2 * k] * vc * aw) * w, (acy + marks[i * 10 + 2 * k + 1] * vc * ah) * h]);
      points.push(pts);
    }
    return nms(boxes, scores, this.cfg.nms).map((i) => ({ box: boxes[i], score: scores[i], landmarks: points[i] }));
  }
}

function shrinkArea(rgb, size) {
  const [w, h, scale] = shrunkSize(rgb.width, rgb.height, size);
  return scale === 1 ? [rgb, 1] : [resizeArea(rgb, w, h), scale];
}

// A detection on a copy shrunk by `scale`, in the original image's pixels (faces._face).
function toFace(d, scale) {
  const [x, y, w, h] = d.box.map((v) => v / scale);
  return {
    box: [roundHalfEven(x), roundHalfEven(y), roundHalfEven(w), roundHalfEven(h)],
    landmarks: d.landmarks.map(([px, py]) => [px / scale, py / scale]),
    score: d.score,
  };
}

export class FaceDetector {
  constructor(net, cfg) {
    this.net = net;
    this.cfg = cfg;
  }

  async pass(rgb, size, score) {
    const [small, scale] = shrinkArea(rgb, size);
    const found = (await this.net.detect(small, score)).map((d) => toFace(d, scale));
    return found.filter((f) => f.box[2] >= this.cfg.min_box && f.box[3] >= this.cfg.min_box);
  }

  // RetinaFaceDetector.__call__: the fast pass, the larger pass when it is doubtful, rotated
  // copies when still nothing, and (photos only) the photo in tiles.
  // `live`: a camera frame in the live view, where the frame rate matters more than a far face
  // beside a near one: the larger pass runs only when the fast pass finds no face at all.
  async detect(rgb, { stream = false, live = false } = {}) {
    const c = this.cfg;
    const found = await this.pass(rgb, c.detect_size, c.hint);
    let faces = found.filter((f) => f.score >= c.score);
    const doubtful = !faces.length || (!live && faces.length < found.length);
    if (doubtful && c.full_size > c.detect_size && Math.max(rgb.width, rgb.height) > c.detect_size)
      faces = await this.pass(rgb, c.full_size, c.score);
    if (!faces.length && c.tilts.length) faces = await this.tilted(rgb);
    if (!faces.length && c.tiled && !stream && Math.min(Math.max(rgb.width, rgb.height), c.work_size) > c.full_size)
      faces = await this.tiles(rgb);
    return faces.sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3]);
  }

  merged(found, scale) {
    if (!found.length) return [];
    const keep = nms(
      found.map((d) => d.box),
      found.map((d) => d.score),
      this.cfg.nms,
    );
    return keep.map((i) => toFace(found[i], scale));
  }

  async tilted(rgb) {
    const [small, scale] = shrinkArea(rgb, this.cfg.full_size);
    const { width: w, height: h } = small;
    const found = [];
    for (const angle of this.cfg.tilts) {
      // cv2.getRotationMatrix2D((w/2, h/2), angle, 1): positive angles turn counter-clockwise
      const t = (angle * Math.PI) / 180;
      const al = Math.cos(t);
      const be = Math.sin(t);
      const rot = [al, be, (1 - al) * (w / 2) - be * (h / 2), -be, al, be * (w / 2) + (1 - al) * (h / 2)];
      const back = invertAffine(rot);
      for (const d of await this.net.detect(warpReplicate(small, rot), this.cfg.score)) {
        const [x, y, bw, bh] = d.box;
        const [cx, cy] = applyAffine(back, x + bw / 2, y + bh / 2);
        found.push({
          box: [cx - bw / 2, cy - bh / 2, bw, bh],
          score: d.score,
          landmarks: d.landmarks.map(([px, py]) => applyAffine(back, px, py)),
        });
      }
    }
    return this.merged(found, scale);
  }

  async tiles(rgb) {
    const c = this.cfg;
    const [work, scale] = shrinkArea(rgb, c.work_size);
    const rows = tileSpans(work.height, c.full_size, c.tile_overlap);
    const cols = tileSpans(work.width, c.full_size, c.tile_overlap);
    const largest = roundHalfEven(c.full_size * c.tile_overlap);
    const found = [];
    for (const [top, yOwn] of rows)
      for (const [left, xOwn] of cols) {
        const tile = cropRGB(work, left, top, c.full_size, c.full_size);
        for (const d of await this.net.detect(tile, c.score)) {
          const [x, y, bw, bh] = d.box;
          const cx = left + x + bw / 2;
          const cy = top + y + bh / 2;
          if (Math.max(bw, bh) <= largest && xOwn[0] <= cx && cx < xOwn[1] && yOwn[0] <= cy && cy < yOwn[1])
            found.push({
              box: [left + x, top + y, bw, bh],
              score: d.score,
              landmarks: d.landmarks.map(([px, py]) => [px + left, py + top]),
            });
        }
      }
    return this.merged(found, scale);
  }
}

function tileSpans(length, tile, overlapShare) {
  const overlap = roundHalfEven(tile * overlapShare);
  const n = length <= tile ? 1 : Math.ceil((length - overlap) / (tile - overlap));
  const starts = n > 1 ? [...Array(n).keys()].map((i) => roundHalfEven((i * (length - tile)) / (n - 1))) : [0];
  const cuts = [-Infinity, ...starts.slice(1).map((b, i) => (b + starts[i] + tile) / 2), Infinity];
  return starts.map((s, i) => [s, [cuts[i], cuts[i + 1]]]);
}

function cropRGB(img, left, top, w, h) {
  w = Math.min(w, img.width - left);
  h = Math.min(h, img.height - top);
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    out.set(img.data.subarray(((top + y) * img.width + left) * 3, ((top + y) * img.width + left + w) * 3), y * w * 3);
  return { width: w, height: h, channels: 3, data: out };
}

function invertAffine([a, b, c, d, e, f]) {
  const det = a * e - b * d;
  return [e / det, -b / det, (b * f - c * e) / det, -d / det, a / det, (c * d - a * f) / det];
}

function applyAffine([a, b, c, d, e, f], x, y) {
  return [a * x + b * y + c, d * x + e * y + f];
}

// cv2.warpAffine(src, M, (w, h), INTER_LINEAR, BORDER_REPLICATE): dst(x, y) = src(M^-1 (x, y)).
function warpReplicate(img, m) {
  const { width: w, height: h, data } = img;
  const inv = invertAffine(m);
  const out = new Uint8Array(w * h * 3);
  const clampX = (v) => Math.min(Math.max(v, 0), w - 1);
  const clampY = (v) => Math.min(Math.max(v, 0), h - 1);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [sx, sy] = applyAffine(inv, x, y);
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const xa = clampX(x0);
      const xb = clampX(x0 + 1);
      const ya = clampY(y0);
      const yb = clampY(y0 + 1);
      for (let ch = 0; ch < 3; ch++) {
        const top = data[(ya * w + xa) * 3 + ch] * (1 - fx) + data[(ya * w + xb) * 3 + ch] * fx;
        const bot = data[(yb * w + xa) * 3 + ch] * (1 - fx) + data[(yb * w + xb) * 3 + ch] * fx;
        out[(y * w + x) * 3 + ch] = Math.round(top * (1 - fy) + bot * fy);
      }
    }
  return { width: w, height: h, channels: 3, data: out };
}

// ---------------------------------------------------------------------------------------------
// framing (fer_hub/align.py) and the 48x48 crop (fer_hub/preprocess.to_gray48)

export function alignedSquare(landmarks, framing) {
  const [l, r] = landmarks;
  const eyes = [(l[0] + r[0]) / 2, (l[1] + r[1]) / 2];
  const dist = Math.hypot(r[0] - l[0], r[1] - l[1]);
  const angle = Math.atan2(r[1] - l[1], r[0] - l[0]);
  const side = Math.max(dist, 1) / framing.eye_distance;
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const off = [(0.5 - framing.eye_x) * side, (0.5 - framing.eye_y) * side];
  return { centre: [eyes[0] + c * off[0] - s * off[1], eyes[1] + s * off[0] + c * off[1]], side, angle };
}

export function cropAligned(gray, landmarks, framing) {
  const { centre, side, angle } = alignedSquare(landmarks, framing);
  const out = Math.trunc(Math.min(Math.max(roundHalfEven(side), 48), framing.max_size));
  const k = side / out;
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const [a, b, d, e] = [c * k, -s * k, s * k, c * k];
  const cx = centre[0] - ((a + b) * out) / 2;
  const cy = centre[1] - ((d + e) * out) / 2;
  return affineGray(gray, out, out, [a, b, cx, d, e, cy]);
}

export function gray48(crop, size) {
  let img = crop;
  if (img.width !== img.height) {
    const s = Math.min(img.width, img.height);
    const left = Math.trunc((img.width - s) / 2);
    const top = Math.trunc((img.height - s) / 2);
    const data = new Uint8Array(s * s);
    for (let y = 0; y < s; y++) data.set(img.data.subarray((top + y) * img.width + left, (top + y) * img.width + left + s), y * s);
    img = { width: s, height: s, channels: 1, data };
  }
  if (img.width !== size) img = resizePil(img, size, size, img.width > size ? "box" : "bilinear");
  return img.data;
}

// ---------------------------------------------------------------------------------------------
// classification (fer_hub/predict.Predictor.score)

export class Classifier {
  constructor(ort, session, meta, emotions, norm) {
    this.ort = ort;
    this.session = session;
    this.meta = meta; // labels, temperature, class_bias, uncertain_below, sharpness_range, tta, name
    this.order = emotions.map((e) => meta.labels.indexOf(e)); // by name, never by position
    this.bias = meta.labels.map((label) => (meta.class_bias ? meta.class_bias[label] : 0)); // output order
    this.norm = norm;
  }

  // Predictor.score: for N 48x48 gray crops (Uint8Array each), per crop its probabilities in
  // EMOTIONS order and whether it is unfamiliar (its sharpness outside the range fitted on
  // validation; no range: never).
  async score(crops, { tta = this.meta.tta } = {}) {
    if (!crops.length) return [];
    const size = this.norm.size;
    const per = size * size;
    const n = crops.length;
    const batch = tta ? 2 * n : n;
    const x = new Float32Array(batch * per);
    const { mean, std } = this.norm;
    crops.forEach((crop, i) => {
      for (let p = 0; p < per; p++) x[i * per + p] = (crop[p] / 255 - mean) / std;
      if (tta)
        for (let y = 0; y < size; y++)
          for (let col = 0; col < size; col++)
            x[(n + i) * per + y * size + col] = (crop[y * size + (size - 1 - col)] / 255 - mean) / std;
    });
    const feeds = { [this.session.inputNames[0]]: new this.ort.Tensor("float32", x, [batch, 1, size, size]) };
    const logits = (await this.session.run(feeds))[this.session.outputNames[0]].data;
    const k = this.meta.labels.length;
    const range = this.meta.sharpness_range;
    const out = [];
    for (let i = 0; i < n; i++) {
      const z = [];
      for (let j = 0; j < k; j++) {
        const v = tta ? (logits[i * k + j] + logits[(n + i) * k + j]) / 2 : logits[i * k + j];
        z.push(v / this.meta.temperature + this.bias[j]); // fer_hub.scaling
      }
      const m = Math.max(...z);
      const ex = z.map((v) => Math.exp(v - m));
      const sum = ex.reduce((s, v) => s + v, 0);
      const sharp = sharpness(crops[i], size);
      out.push({
        probabilities: this.order.map((j) => ex[j] / sum),
        unfamiliar: range != null && (sharp < range[0] || sharp > range[1]),
      });
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// the whole analysis of one image (Predictor.__call__), in Python's result schema

// `detect: false`: the whole image is the one face (a crop the caller vouches for), as with
// Predictor(..., detect=False).
// `faces`: detections to reuse (from the `faces` an earlier call returned) instead of detecting:
// the live view detects every few frames and keeps the faces in between.
export async function analyze(
  rgb,
  detector,
  classifier,
  cfg,
  { stream = false, live = false, detect = true, faces: known = null } = {},
) {
  if (!detect) {
    const t0 = performance.now();
    const [p] = await classifier.score([gray48(toGray(rgb), cfg.image_size)]);
    return {
      result: { model: classifier.meta.name, face_found: true, faces: [faceResult([0, 0, rgb.width, rgb.height], p, cfg, classifier)] },
      timings: { detectMs: 0, classifyMs: performance.now() - t0 },
    };
  }
  let work = rgb;
  let scale = 1;
  const [ww, wh, shrink] = shrunkSize(rgb.width, rgb.height, cfg.work_size);
  if (shrink !== 1) {
    work = resizePil(rgb, ww, wh, "bilinear");
    scale = 1 / shrink;
  }
  const t0 = performance.now();
  const faces = known || (await detector.detect(work, { stream: stream || live, live }));
  const t1 = performance.now();
  const gray = toGray(work);
  const crops = faces.map((f) => gray48(cropAligned(gray, f.landmarks, cfg.framing), cfg.image_size));
  const probs = await classifier.score(crops);
  const t2 = performance.now();
  const result = {
    model: classifier.meta.name,
    face_found: faces.length > 0,
    faces: faces.map((f, i) => faceResult(scale === 1 ? f.box : f.box.map((v) => roundHalfEven(v * scale)), probs[i], cfg, classifier)),
  };
  return { result, faces, timings: { detectMs: known ? 0 : t1 - t0, classifyMs: t2 - t1 } };
}

function faceResult(box, { probabilities: p, unfamiliar }, cfg, classifier) {
  const top = p.indexOf(Math.max(...p));
  return {
    box,
    label: cfg.emotions[top],
    probabilities: Object.fromEntries(cfg.emotions.map((e, j) => [e, p[j]])),
    uncertain: p[top] < classifier.meta.uncertain_below || unfamiliar,
    unfamiliar,
  };
}

// ---------------------------------------------------------------------------------------------
// the live view's tracker (fer_hub/tracking.FaceTracker)

export function iou(a, b) {
  const iw = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  const union = a[2] * a[3] + b[2] * b[3] - inter;
  return union > 0 ? inter / union : 0;
}

export class FaceTracker {
  constructor({ iou_threshold, max_missed, smoothing, reach }) {
    Object.assign(this, { iouThreshold: iou_threshold, maxMissed: max_missed, smoothing, reach });
    this.tracks = [];
    this.nextId = 1;
    this.updates = 0;
  }

  quality(t, box, now) {
    const dt = now - t.seenAt;
    const guess = [t.box[0] + t.velocity[0] * dt, t.box[1] + t.velocity[1] * dt, t.box[2], t.box[3]];
    const overlap = iou(guess, box);
    if (overlap >= this.iouThreshold) return overlap;
    const limit = Math.min(2, this.reach * Math.max(1, dt)) * Math.max(guess[2], guess[3], 1);
    const distance = Math.hypot(guess[0] + guess[2] / 2 - (box[0] + box[2] / 2), guess[1] + guess[3] / 2 - (box[1] + box[3] / 2));
    return distance < limit ? this.iouThreshold * (1 - distance / limit) : -1;
  }

  update(boxes, probs) {
    const now = ++this.updates;
    const pairs = [];
    this.tracks.forEach((t, ti) => boxes.forEach((b, bi) => pairs.push([this.quality(t, b, now), ti, bi])));
    pairs.sort((p, q) => q[0] - p[0] || q[1] - p[1] || q[2] - p[2]);
    const assigned = new Map();
    const used = new Set();
    for (const [q, ti, bi] of pairs) {
      if (q < 0) break;
      if (used.has(ti) || assigned.has(bi)) continue;
      const t = this.tracks[ti];
      const elapsed = Math.max(now - t.seenAt, 1e-9);
      const step = [
        (boxes[bi][0] + boxes[bi][2] / 2 - (t.box[0] + t.box[2] / 2)) / elapsed,
        (boxes[bi][1] + boxes[bi][3] / 2 - (t.box[1] + t.box[3] / 2)) / elapsed,
      ];
      t.velocity = t.hits === 1 ? step : [0.5 * t.velocity[0] + 0.5 * step[0], 0.5 * t.velocity[1] + 0.5 * step[1]];
      Object.assign(t, { box: boxes[bi].slice(), missed: 0, hits: t.hits + 1, seenAt: now });
      t.probs = t.probs.map((v, j) => this.smoothing * v + (1 - this.smoothing) * probs[bi][j]);
      assigned.set(bi, t);
      used.add(ti);
    }
    this.tracks.forEach((t, ti) => {
      if (!used.has(ti)) t.missed += 1;
    });
    this.tracks = this.tracks.filter((t) => t.missed <= this.maxMissed);
    boxes.forEach((b, bi) => {
      if (assigned.has(bi)) return;
      const t = { id: this.nextId++, box: b.slice(), probs: probs[bi].slice(), missed: 0, hits: 1, seenAt: now, velocity: [0, 0] };
      this.tracks.push(t);
      assigned.set(bi, t);
    });
    return boxes.map((_, bi) => assigned.get(bi));
  }

  // FaceTracker.smooth: each face's probabilities become its track's moving average; a face
  // unfamiliar in this frame stays uncertain.
  smooth(result, emotions, uncertainBelow) {
    const probs = result.faces.map((f) => emotions.map((e) => f.probabilities[e]));
    const tracks = this.update(
      result.faces.map((f) => f.box),
      probs,
    );
    return {
      ...result,
      faces: result.faces.map((f, i) => {
        const sum = tracks[i].probs.reduce((s, v) => s + v, 0);
        const p = tracks[i].probs.map((v) => v / sum);
        const top = p.indexOf(Math.max(...p));
        return {
          ...f,
          track: tracks[i].id,
          label: emotions[top],
          probabilities: Object.fromEntries(emotions.map((e, j) => [e, p[j]])),
          uncertain: p[top] < uncertainBelow || Boolean(f.unfamiliar),
        };
      }),
    };
  }
}
