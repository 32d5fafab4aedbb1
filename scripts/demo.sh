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
echo
echo "demo outputs are in $out/"
