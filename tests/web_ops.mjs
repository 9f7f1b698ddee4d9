// Runs web/imageops.js on the cases tests/test_web.py writes (JSON in, JSON out), so the
// browser's pixel arithmetic is checked against Pillow and OpenCV without a browser.
import fs from "node:fs";
import * as ops from "../web/imageops.js";

const cases = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const results = cases.map((c) => {
  const img = { width: c.w, height: c.h, channels: c.ch, data: Uint8Array.from(c.data) };
  const run = {
    gray: () => ops.toGray(img),
    pil: () => ops.resizePil(img, c.ow, c.oh, c.kind),
    area: () => ops.resizeArea(img, c.ow, c.oh),
    affine: () => ops.affineGray(img, c.ow, c.oh, c.m),
    sharpness: () => ({ data: [ops.sharpness(img.data, c.w)] }), // -Infinity comes back as null
  }[c.op];
  return Array.from(run().data);
});
fs.writeFileSync(process.argv[3], JSON.stringify(results));
