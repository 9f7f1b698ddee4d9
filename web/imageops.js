// Pixel operations of fer_hub's Python pipeline, re-implemented so the browser's faces match
// Python's: the same arithmetic as Pillow (grayscale conversion, antialiased resize, affine
// bilinear warp) and OpenCV (area resize). Plain functions on typed arrays, with no DOM, so
// Node can test them against Python (tests/test_web.py).
//
// An image here is {width, height, channels, data: Uint8Array | Uint8ClampedArray}, rows top to
// bottom, channels interleaved (3 = RGB, 1 = gray). Canvas ImageData (RGBA) goes through fromRGBA.

export function fromRGBA(imageData) {
  const { width, height, data } = imageData;
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < data.length; i += 4, j += 3) {
    out[j] = data[i];
    out[j + 1] = data[i + 1];
    out[j + 2] = data[i + 2];
  }
  return { width, height, channels: 3, data: out };
}

// Pillow's convert("L"): ITU-R 601-2 luma in 16-bit fixed point, rounded.
export function toGray(rgb) {
  const { width, height, data } = rgb;
  const out = new Uint8Array(width * height);
  for (let i = 0, j = 0; j < out.length; i += 3, j++) {
    out[j] = (data[i] * 19595 + data[i + 1] * 38470 + data[i + 2] * 7471 + 0x8000) >>> 16;
  }
  return { width, height, channels: 1, data: out };
}

// The (width, height) with the longer side at most `size` (never enlarged), and the scale:
// fer_hub.faces._shrunk_size. Python's round() rounds halves to even.
export function shrunkSize(w, h, size) {
  const scale = Math.min(1, size / Math.max(w, h));
  return [Math.max(1, roundHalfEven(w * scale)), Math.max(1, roundHalfEven(h * scale)), scale];
}

export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ---------------------------------------------------------------------------------------------
// Pillow's resample (libImaging/Resample.c): separable convolution, horizontal pass first, each
// pass rounded to 8 bits, coefficients in fixed point with 22 fractional bits.

const PRECISION_BITS = 32 - 8 - 2;
const FILTERS = {
  box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: { support: 1.0, f: (x) => ((x = Math.abs(x)) < 1 ? 1 - x : 0) },
};

function roundUp(f) {
  return f >= 0 ? Math.trunc(f + 0.5) : Math.trunc(f - 0.5);
}

function coefficients(inSize, in0, in1, outSize, filter) {
  const scale = (in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.f((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      kk[xx * ksize + x] = roundUp((ww !== 0 ? k[x] / ww : k[x]) * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v) {
  v = Math.floor(v / (1 << PRECISION_BITS)); // an arithmetic shift, without 32-bit overflow
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function resamplePass(src, outSize, horizontal, filter) {
  const { width, height, channels: c, data } = src;
  const inSize = horizontal ? width : height;
  const { ksize, bounds, kk } = coefficients(inSize, 0, inSize, outSize, filter);
  const ow = horizontal ? outSize : width;
  const oh = horizontal ? height : outSize;
  const out = new Uint8Array(ow * oh * c);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const i = horizontal ? x : y;
      const xmin = bounds[i * 2];
      const n = bounds[i * 2 + 1];
      for (let ch = 0; ch < c; ch++) {
        let ss = half;
        for (let t = 0; t < n; t++) {
          const p = horizontal ? data[(y * width + xmin + t) * c + ch] : data[((xmin + t) * width + x) * c + ch];
          ss += p * kk[i * ksize + t];
        }
        out[(y * ow + x) * c + ch] = clip8(ss);
      }
    }
  }
  return { width: ow, height: oh, channels: c, data: out };
}

// Pillow's Image.resize(size, BOX | BILINEAR) without reducing_gap.
export function resizePil(img, w, h, kind) {
  const filter = FILTERS[kind];
  let out = img;
  if (w !== img.width) out = resamplePass(out, w, true, filter);
  if (h !== img.height) out = resamplePass(out, h, false, filter);
  return out === img ? { ...img, data: img.data.slice() } : out;
}

// ---------------------------------------------------------------------------------------------
// OpenCV's cv2.resize(INTER_AREA) for shrinking: each output pixel is the mean of the input
// area it covers (pixels cut by its edge weighted by the part inside), rounded. An integer
// factor takes OpenCV's fast path (a plain block mean, rounded half up).

export function resizeArea(img, w, h) {
  const { width, height, channels: c, data } = img;
  const sx = width / w;
  const sy = height / h;
  const out = new Uint8Array(w * h * c);
  if (Number.isInteger(sx) && Number.isInteger(sy)) {
    const n = sx * sy;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let dy = 0; dy < sy; dy++)
            for (let dx = 0; dx < sx; dx++) s += data[((y * sy + dy) * width + x * sx + dx) * c + ch];
          out[(y * w + x) * c + ch] = Math.floor((s + n / 2) / n);
        }
    return { width: w, height: h, channels: c, data: out };
  }
  const xs = areaWeights(width, w, sx);
  const ys = areaWeights(height, h, sy);
  const row = new Float64Array(w * c);
  for (let y = 0; y < h; y++) {
    const acc = new Float64Array(w * c);
    for (const [sy0, wy] of ys[y]) {
      row.fill(0);
      for (let x = 0; x < w; x++)
        for (const [sx0, wx] of xs[x])
          for (let ch = 0; ch < c; ch++) row[x * c + ch] += data[(sy0 * width + sx0) * c + ch] * wx;
      for (let i = 0; i < acc.length; i++) acc[i] += row[i] * wy;
    }
    for (let i = 0; i < acc.length; i++) out[y * w * c + i] = Math.min(255, Math.max(0, roundHalfEven(acc[i])));
  }
  return { width: w, height: h, channels: c, data: out };
}

function areaWeights(inSize, outSize, scale) {
  const all = [];
  for (let o = 0; o < outSize; o++) {
    const f0 = o * scale;
    const f1 = f0 + scale;
    const list = [];
    for (let s = Math.floor(f0); s < Math.min(inSize, Math.ceil(f1)); s++) {
      const part = Math.min(f1, s + 1) - Math.max(f0, s);
      if (part > 1e-12) list.push([s, part / scale]);
    }
    all.push(list);
  }
  return all;
}

// ---------------------------------------------------------------------------------------------
// Pillow's Image.transform(size, AFFINE, (a, b, c, d, e, f), BILINEAR) on a gray image: output
// pixel (u, v) samples input (a (u + .5) + b (v + .5) + c, d (u + .5) + e (v + .5) + f); a
// sample outside the image is black; the value is truncated to 8 bits, as Pillow does.

export function affineGray(gray, outW, outH, m) {
  const { width, height, data } = gray;
  const [a, b, c, d, e, f] = m;
  const out = new Uint8Array(outW * outH);
  for (let v = 0; v < outH; v++) {
    for (let u = 0; u < outW; u++) {
      let xin = a * (u + 0.5) + b * (v + 0.5) + c;
      let yin = d * (u + 0.5) + e * (v + 0.5) + f;
      if (xin < 0 || xin >= width || yin < 0 || yin >= height) continue;
      xin -= 0.5;
      yin -= 0.5;
      const x = Math.floor(xin);
      const y = Math.floor(yin);
      const dx = xin - x;
      const dy = yin - y;
      const x0 = Math.min(Math.max(x, 0), width - 1);
      const x1 = Math.min(Math.max(x + 1, 0), width - 1);
      const yc = Math.min(Math.max(y, 0), height - 1);
      let v1 = data[yc * width + x0] + (data[yc * width + x1] - data[yc * width + x0]) * dx;
      let v2 = v1;
      if (y + 1 >= 0 && y + 1 < height) {
        const r = (y + 1) * width;
        v2 = data[r + x0] + (data[r + x1] - data[r + x0]) * dx;
      }
      v1 = v1 + (v2 - v1) * dy;
      out[v * outW + u] = v1 < 0 ? 0 : v1 > 255 ? 255 : Math.trunc(v1);
    }
  }
  return { width: outW, height: outH, channels: 1, data: out };
}

// fer_hub/quality.sharpness: log(var(Laplacian of the inside pixels) / var(pixels)) of a
// size x size gray crop; a flat crop is -Infinity.
export function sharpness(crop, size) {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < size * size; i++) {
    s += crop[i];
    s2 += crop[i] * crop[i];
  }
  const n = size * size;
  const pixels = s2 / n - (s / n) ** 2;
  let l = 0;
  let l2 = 0;
  for (let y = 1; y < size - 1; y++)
    for (let x = 1; x < size - 1; x++) {
      const i = y * size + x;
      const v = crop[i - size] + crop[i + size] + crop[i - 1] + crop[i + 1] - 4 * crop[i];
      l += v;
      l2 += v * v;
    }
  const m = (size - 2) * (size - 2);
  const ratio = (l2 / m - (l / m) ** 2) / pixels;
  return Number.isFinite(ratio) ? Math.log(ratio) : -Infinity;
}
