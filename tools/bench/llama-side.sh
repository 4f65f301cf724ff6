# Sourced by the scripts that run Assay beside llama.cpp: picks the kernel path of both sides,
# installs llama-cpp-python built for it, builds Assay for it, and sets ASSAY (the binary) and VENV.
#
# PATH_KIND=native (default): both sides as this CPU allows: Assay built with -target-cpu native
#   and its widest kernels, llama.cpp with its default -march=native (/tmp/assay-llama-venv).
# PATH_KIND=avx2: an AVX2 CPU's figures on any x86 machine (an AVX512 one included): Assay's Swift
#   code built for AVX2_CPU (znver3), its kernels forced with ASSAY_KERNELS=avx2 and OpenBLAS's with
#   OPENBLAS_CORETYPE=Haswell; llama.cpp compiled with GGML_NATIVE and every AVX512/AMX/VNNI option
#   off (/tmp/assay-llama-avx2-venv).
# The first use of a path compiles llama.cpp (about 15 minutes on 2 cores).
PATH_KIND=${PATH_KIND:-native}
AVX2_CPU=${AVX2_CPU:-znver3}
case "$PATH_KIND" in
  avx2)
    VENV=${ASSAY_LLAMA_VENV:-/tmp/assay-llama-avx2-venv}
    LLAMA_CMAKE="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    SWIFT_CPU=$AVX2_CPU
    SCRATCH=${ASSAY_AVX2_BUILD:-/tmp/assay-build-$AVX2_CPU}
    export ASSAY_KERNELS=avx2
    export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
    ;;
  native)
    VENV=${ASSAY_LLAMA_VENV:-/tmp/assay-llama-venv}
    LLAMA_CMAKE=""
    SWIFT_CPU=native
    SCRATCH=.build
    ;;
  *) echo "PATH_KIND is native or avx2, not $PATH_KIND" >&2; exit 2 ;;
esac
if ! "$VENV/bin/python" -c "import llama_cpp.server, numpy" 2>/dev/null; then
  echo "installing llama-cpp-python[server] into $VENV (compiles llama.cpp: about 15 minutes)…" >&2
  python3 -m venv "$VENV"
  CMAKE_ARGS="$LLAMA_CMAKE" "$VENV/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check 'llama-cpp-python[server]' numpy
fi
LLAMA_VERSION=$("$VENV/bin/python" -c "import llama_cpp; print(llama_cpp.__version__)")
swift build -c release -Xswiftc -target-cpu -Xswiftc "$SWIFT_CPU" --scratch-path "$SCRATCH" --product assay >&2
ASSAY=$(swift build -c release -Xswiftc -target-cpu -Xswiftc "$SWIFT_CPU" --scratch-path "$SCRATCH" --show-bin-path)/assay
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(grep -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' '); path: $PATH_KIND" >&2
echo "llama.cpp: llama-cpp-python $LLAMA_VERSION, $("$VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.llama_print_system_info().decode().strip())')" >&2
