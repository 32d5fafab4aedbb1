#!/usr/bin/env bash
# The demo: installs what is missing, builds, then tours strata on a small transformer that the
# project trains itself (examples/capture/make_demo_model.py). Outputs go to build/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
out=build/demo
mkdir -p "$out"
strata=build/strata
py=/usr/bin/python3

if [ ! -f "$out/demo_gpt.pt" ]; then
  echo "== training the demo transformer (skip counting; about 20 s) =="
  "$py" examples/capture/make_demo_model.py "$out/demo_gpt.pt"
fi
"$py" examples/capture/make_demo_inputs.py "$out/demo_inputs.safetensors"

echo
echo "== strata inspect: the module tree =="
"$strata" inspect "$out/demo_gpt.pt"

echo
echo "== strata stats: activations layer by layer over 512 sequences =="
"$strata" stats "$out/demo_gpt.pt" --input "$out/demo_inputs.safetensors" --batch-size 64 \
  --hooks 'tok_emb,blocks.*,ln_f,head' --json "$out/stats.json"

echo
echo "== strata capture: every hook point of one batch, to a safetensors file =="
"$py" - "$out" <<'PY'
import sys; sys.path.insert(0, "tests/python"); import stio
t, _ = stio.load(sys.argv[1] + "/demo_inputs.safetensors")
stio.save(sys.argv[1] + "/one_batch.safetensors", {"arg0": t["arg0"][:4]})
PY
"$strata" capture "$out/demo_gpt.pt" --input "$out/one_batch.safetensors" \
  --out "$out/activations.safetensors"
"$py" - "$out/activations.safetensors" <<'PY'
import sys; sys.path.insert(0, "tests/python"); import stio
t, meta = stio.load(sys.argv[1])
print(f"read back with Python: {len(t)} tensors, e.g. " +
      ", ".join(f"{k} {list(v.shape)}" for k, v in list(t.items())[:4]))
PY

echo
echo "== examples/capture: capture, then activation patching =="
build/examples/capture/capture_example "$out/demo_gpt.pt"

# The logit lens on a real pretrained model: llama2.c's stories260K (see README, "Models").
shared=../shared/models/stories260K
if [ -f "$shared/stories260K.bin" ] && [ -f "$shared/tok512.bin" ]; then
  echo
  echo "== strata lens: the logit lens on stories260K (llama2.c) =="
  if [ ! -f "$out/stories260K.pt" ]; then
    "$py" tools/llama2c/convert.py "$shared/stories260K.bin" "$out/stories260K.pt"
  fi
  build/examples/logit_lens/logit_lens_example "$out/stories260K.pt" "$shared/tok512.bin" \
    "Once upon a time, there was a little girl named Lily" "$out/lens_example.png"
  "$strata" lens "$out/stories260K.pt" --tokenizer "$shared/tok512.bin" \
    --prompt "Once upon a time, there was a little girl named Lily" --target " Lily" \
    --out "$out/lens.json" --png "$out/lens.png"
else
  echo
  echo "(skipping the logit lens: $shared/stories260K.bin and tok512.bin not found;"
  echo " get them from Hugging Face karpathy/tinyllamas, folder stories260K/ — see README)"
fi
# LRP on a real CNN: face-api's face-expression model (npm @vladmandic/face-api@1.7.15), converted
# to TorchScript and checked against the package's own tfjs run on its demo photos.
echo
echo "== strata lrp: why is this face 'happy'? (face-api's face-expression network) =="
"$py" tools/faceapi/prepare.py "$out/faceapi" --images 3
"$py" - "$out/faceapi" <<'PY'
import sys; sys.path.insert(0, "tests/python"); import stio
t, _ = stio.load(sys.argv[1] + "/faces.safetensors")
stio.save(sys.argv[1] + "/face0.safetensors", {"arg0": t["arg0"][:1], "pixels": t["pixels"][:1]})
PY
"$strata" lrp "$out/faceapi/face_expression.pt" --input "$out/faceapi/face0.safetensors" \
  --target 1 --composite epsilon_gamma_box:-0.49:0.6 --out "$out/lrp.safetensors" \
  --png "$out/lrp_face.png" --json "$out/lrp.json" --quiet
"$py" - "$out/lrp.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"logit 'happy' {r['output_score']:.4f}; relevance reaching the pixels "
      f"{r['input_relevance_sum']:.4f} ({100 * r['conservation_ratio']:.1f}%, the biases hold the "
      f"rest); {len(r['layers'])} hook points in the conservation table")
PY
echo "(conservation table: $out/lrp.json; heatmap: $out/lrp_face.png)"
build/examples/lrp/lrp_example "$out/faceapi/face_expression.pt" "$out/faceapi/faces.safetensors" \
  0 "$out/lrp_example.png"

# Entropy-based modality uncertainty on the project's toy vision-language model: which modality
# it follows when image and text conflict (docs/analyzers/modality_uncertainty.md).
echo
echo "== strata modality: when image and text conflict (toy vision-language model) =="
if [ ! -f "$out/modality_vlm.pt" ]; then
  echo "(training the toy vision-language model: seeded, one thread, about 3 minutes)"
  "$py" examples/modality/modality_toy.py train "$out/modality_vlm.pt"
fi
"$py" examples/modality/modality_toy.py data "$out/modality" --n 2000 --seed 1
# A tiny model: one thread avoids idle thread spinning on a busy machine.
"$strata" --threads 1 modality "$out/modality_vlm.pt" --text "$out/modality/text_inputs.safetensors" \
  --image "$out/modality/image_inputs.safetensors" --joint "$out/modality/joint_inputs.safetensors" \
  --out "$out/modality.json" --png "$out/modality_curve.png"
# Layer-wise linear probes (docs/analyzers/probes.md): where does a latent state become linearly
# decodable? A miniature OthelloGPT: trained only to predict legal moves of a random walk on a
# 4 x 4 grid, probed for the walker's square (never shown after the start) at every position.
echo
echo "== strata probe: where does the grid walk's hidden square become decodable? =="
if [ ! -f "$out/gridwalk.pt" ]; then
  echo "(training the grid-walk transformer: seeded, one thread, about a minute)"
  "$py" examples/probe/gridwalk.py "$out"
fi
# Small matrices: one thread avoids idle thread spinning on a busy machine.
"$strata" --threads 1 probe "$out/gridwalk.pt" --input "$out/gridwalk_probe.safetensors" \
  --layers 'tok_emb,blocks.?,ln_f' --position every --C 1 --out "$out/probe_gridwalk.json" \
  --png "$out/probe_gridwalk.png" --title "grid walk: the walker's square"
# stories260K: three properties computable from the text, with control tasks (the token is the type).
if [ -f "$out/stories260K.pt" ]; then
  echo
  echo "== strata probe: stories260K, text properties layer by layer, with control tasks =="
  if [ ! -f "$out/stories_probe/stories_period.safetensors" ]; then
    "$py" examples/probe/stories_probe_data.py "$out/stories260K.pt" "$shared/tok512.bin" \
      "$out/stories_probe"
  fi
  for prop in newword prev period; do
    echo "-- $prop --"
    "$strata" --threads 1 probe "$out/stories260K.pt" \
      --input "$out/stories_probe/stories_$prop.safetensors" --layers 'tok_embeddings,layers.?' \
      --position every --C 1 --control --out "$out/probe_stories_$prop.json" \
      --png "$out/probe_stories_$prop.png" --title "stories260K: $prop"
  done
fi
echo
echo "demo outputs are in $out/"
