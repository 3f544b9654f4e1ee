#!/usr/bin/env bash
# One lease of a lent GPU machine (the device tool), in one call: build vocoder_ext._C for the card there,
# run gpu_checks.py for the CUDA C++ backend and (in parallel, small shapes) for Triton, then time the fused
# discriminators and the GPU inference bench alone. Logs go to $OUT; the last lines are a summary.
#   device run: bash python_tests/gpu_session.sh
set -u
export PYTHONUNBUFFERED=1 MAX_JOBS=16 VOCODER_EXT_CUDA_ARCHS=9.0
export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")}
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
summary=()
deadline=$((SECONDS + ${BUDGET_S:-540}))  # the whole script ends by then (the device call's limit is 600 s)
stage() {  # stage NAME SECONDS CMD...: run with a time limit, log to $OUT/NAME.log, remember the outcome
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS left=$((deadline - SECONDS))
  ((limit > left)) && limit=$left
  if ((limit < 10)); then summary+=("$name: skipped, out of time"); return 124; fi
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  summary+=("$name: rc $rc in $((SECONDS - t0)) s")
  return $rc
}
nvidia-smi -L; nproc
if ls .whl/*.whl >/dev/null 2>&1; then  # wheels carried for what the image lacks (soundfile for train/)
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
if ! stage build 300 python3 -m pip install -q --no-build-isolation --no-deps --no-index -e .; then
  tail -40 "$OUT/build.log"; printf '%s\n' "${summary[@]}"; exit 1
fi
python3 -c "import vocoder_ext; print(vocoder_ext.backends())" | tail -20
# The CUDA C++ kernels (no JIT: quick) and Triton (JIT compiles on the other cores) side by side; Triton
# launches each tile set's first config only (kernels/_launch.py): a correctness run, not a timing one.
stage checks_cuda 200 python3 python_tests/gpu_checks.py --backends cuda &
[ -n "${SKIP_TRITON_CHECKS:-}" ] || VOCODER_EXT_TRITON_FIRST_CONFIG=1 stage checks_triton ${TRITON_CHECKS_S:-300} \
  python3 python_tests/gpu_checks.py --backends triton ${TRITON_CHECKS_FLAGS:-} &
# the pytest tests that run only where CUDA is (export --device cuda, fp16 autocast's fp32_output, ...)
stage pytest_gpu 240 python3 -m pytest -q -rs python_tests/test_export_cli.py python_tests/test_hifigan.py -k cuda &
wait
# (background stages' outcomes are in their logs' last lines)
for f in checks_cuda checks_triton pytest_gpu; do echo "== $f"; tail -15 "$OUT/$f.log" 2>/dev/null; done
VOCODER_EXT_TRITON_FIRST_CONFIG=${DISC_FIRST_CONFIG:-} stage disc_timing ${DISC_S:-120} \
  python3 python_tests/gpu_time_discriminators.py --warmup 2 --repeats 5
cat "$OUT/disc_timing.log"
[ -n "${SKIP_BENCH:-}" ] || stage bench 120 python3 -m vocoder_ext bench --device cuda --configs v1,v2 --batches 1 --seconds 2 \
  --engines eager,fused,cuda --repeats 5 --dtypes fp32,fp16 --out "$OUT/bench"
[ -n "${SKIP_BENCH:-}" ] || tail -25 "$OUT/bench.log"
printf '%s\n' "${summary[@]}"
