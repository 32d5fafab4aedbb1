// Runs @vladmandic/face-api's own code (its bundled tfjs, CPU backend) on decoded demo photos:
// TinyFaceDetector finds the faces, extractFaceTensors crops them, and FaceExpressionNet computes
// the expression logits (runNet) and probabilities (predictExpressions). Writes, per face, the
// exact 112x112 batch tensor the package's network saw and its outputs, as the reference that the
// converted TorchScript model must reproduce.
//
// usage: node reference.mjs PACKAGE_DIR WORK_DIR
//   WORK_DIR/images.json: [{"name", "file" (raw RGB uint8), "width", "height"}]
//   writes WORK_DIR/reference.json and WORK_DIR/<name>_face<k>.f32 (float32 [112, 112, 3])
import fs from 'fs';
import path from 'path';
import { pathToFileURL } from 'url';

const [pkg, work] = process.argv.slice(2);
if (!pkg || !work) {
  console.error('usage: node reference.mjs PACKAGE_DIR WORK_DIR');
  process.exit(2);
}
// The package's browser bundle (face-api.esm.js, tfjs included) stubs out node's 'util', which
// tfjs's node platform needs; letting tfjs take the browser platform (TextEncoder and fetch exist
// in node 20) avoids it. Only tensors are used, so no canvas or DOM is touched.
globalThis.window = globalThis;
globalThis.document = {};
const faceapi = await import(pathToFileURL(path.join(pkg, 'dist', 'face-api.esm.js')).href);
const tf = faceapi.tf;
await tf.setBackend('cpu');
await tf.ready();

async function loadNet(net, name) {
  const dir = path.join(pkg, 'model');
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, `${name}-weights_manifest.json`)));
  const specs = [];
  const buffers = [];
  for (const group of manifest) {
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const ab = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  net.loadFromWeightMap(tf.io.decodeWeights(ab, specs));
}

await loadNet(faceapi.nets.tinyFaceDetector, 'tiny_face_detector_model');
await loadNet(faceapi.nets.faceExpressionNet, 'face_expression_model');

const images = JSON.parse(fs.readFileSync(path.join(work, 'images.json')));
const out = [];
for (const im of images) {
  const raw = fs.readFileSync(path.join(work, im.file));
  const img = tf.tensor3d(new Int32Array(raw), [im.height, im.width, 3], 'int32');
  const dets = await faceapi.detectAllFaces(img,
    new faceapi.TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: 0.5 }));
  dets.sort((a, b) => b.score - a.score);
  const faces = await faceapi.extractFaceTensors(img, dets);
  for (let k = 0; k < faces.length; ++k) {
    const netInput = await faceapi.toNetInput(faces[k]);
    const batch = tf.tidy(() => tf.cast(netInput.toBatchTensor(112, true), 'float32'));
    const logits = faceapi.nets.faceExpressionNet.runNet(netInput);
    const probs = await faceapi.nets.faceExpressionNet.predictExpressions(faces[k]);
    const file = `${im.name}_face${k}.f32`;
    fs.writeFileSync(path.join(work, file), Buffer.from((await batch.data()).buffer));
    const b = dets[k].box;
    out.push({
      image: im.name, face: k, score: dets[k].score, input_file: file,
      box: [b.x, b.y, b.width, b.height],
      logits: Array.from(await logits.data()),
      probabilities: faceapi.FACE_EXPRESSION_LABELS.map((l) => probs[l]),
      labels: faceapi.FACE_EXPRESSION_LABELS,
    });
    tf.dispose([batch, logits, faces[k]]);
  }
  img.dispose();
}
fs.writeFileSync(path.join(work, 'reference.json'), JSON.stringify(out, null, 1));
console.log(`face-api ${faceapi.version}, tfjs backend ${tf.getBackend()}: ${out.length} faces in ${images.length} images`);
