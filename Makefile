# make demo   - vocode the bundled validation utterances, fused vs eager (wavs + table in out/demo)
# make test   - the whole test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export CUDA_HOME ?= /usr/local/cuda
CSRC := $(wildcard csrc/*.cpp csrc/*/*.cpp csrc/*/*.cu csrc/*/*.h csrc/*.h)

.PHONY: all install demo test cmake-check clean

all: install

$(VENV)/.requirements: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# The extension is rebuilt whenever a C++/CUDA source or setup.py changes.
$(VENV)/.built: $(VENV)/.requirements setup.py $(CSRC)
	$(PY) -m pip install -q --no-build-isolation -e .
	touch $@

install: $(VENV)/.built

demo: install
	$(PY) -m vocoder_ext demo --out out/demo

test: install
	$(PY) -m pytest python_tests -q

# CMakeLists.txt builds the same csrc/ into a library for libtorch users; build it (with the CUDA kernels,
# for sm_90 only, to keep CI short: setup.py's build covers every arch) and load it.
# Every schema of csrc/schemas.h registered, each with a CUDA kernel; besides them cpu_isa (csrc/cpu/isa.cpp), the
# CPU kernels' ISA level: a query without tensors, so no CUDA kernel.
cmake-check: install
	TORCH_CUDA_ARCH_LIST="9.0" cmake -S . -B cmake-build \
	  -DVOCODER_EXT_CUDA=ON -DCMAKE_CUDA_COMPILER=$(CUDA_HOME)/bin/nvcc \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
	  -DCUDA_TOOLKIT_ROOT_DIR=$(CUDA_HOME) \
	  -DCUDA_nvrtc_LIBRARY="$$($(PY) -c 'import glob, nvidia; print(glob.glob(nvidia.__path__[0] + "/cu13/lib/libnvrtc.so*")[0])')" \
	  > cmake-build.log 2>&1 || (cat cmake-build.log; exit 1)
	cmake --build cmake-build -j2
	$(PY) -c "import torch; torch.ops.load_library('cmake-build/libvocoder_ext_ops.so'); \
	  names = [s.name for s in torch._C._jit_get_all_schemas() if s.name.startswith('vocoder_ext::')]; \
	  assert 'vocoder_ext::cpu_isa' in names, names; \
	  ops = sorted(n for n in names if n != 'vocoder_ext::cpu_isa'); \
	  want = open('csrc/schemas.h').read().count('m.def('); \
	  assert len(ops) == want, (ops, want); print('cmake library registers', ops); \
	  no_cuda = [o for o in ops if not torch._C._dispatch_has_kernel_for_dispatch_key(o, 'CUDA')]; \
	  assert not no_cuda, ('no CUDA kernel', no_cuda); print('each with a CUDA kernel')"
	$(PY) examples/vocode/check.py cmake-build/vocode

clean:
	rm -rf build cmake-build cmake-build.log out vocoder_ext/_C*.so *.egg-info
