import CBLAS
import Foundation

/// Which of the runtime's CPU kernels run: the widest the CPU has, or a narrower path forced with
/// the environment variable `ASSAY_KERNELS` (`avx2`, `portable`; `native` or unset: the CPU's
/// best), so the AVX2 path can be measured and tested on an AVX512 machine and the portable path
/// on any machine. On aarch64 the best is `neon` (Sources/CBLAS/shim_neon.h). Asking for a path the CPU lacks gives the best it has (and says so in
/// `description`). `assay bench runtime` prints the path in use.
public enum KernelPath: String, Sendable, CaseIterable, Comparable {
    /// Plain C and Swift loops (Swift's SIMD types compile to what the build's target allows).
    case portable
    /// Advanced SIMD on aarch64 (always there): the C row kernels of shim_neon.h.
    case neon
    /// AVX2 + FMA + F16C.
    case avx2
    /// AVX512F/BW/VL (and VNNI, BF16 where present).
    case avx512

    public static func < (a: KernelPath, b: KernelPath) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }

    /// The widest path this CPU runs.
    public static let detected: KernelPath = {
        var vnni: Int32 = 0
        if assay_native_level() & ASSAY_LEVEL_NEON != 0 { return .neon }
        if assay_cpu_has_avx2_fma_f16c() == 0 { return .portable }
        return assay_cpu_has_avx512(&vnni) != 0 ? .avx512 : .avx2
    }()

    /// What `ASSAY_KERNELS` asks for (nil: unset or `native`); an unknown value is ignored with a note.
    public static let requested: KernelPath? = {
        guard let text = ProcessInfo.processInfo.environment["ASSAY_KERNELS"]?.lowercased(), !text.isEmpty, text != "native" else { return nil }
        guard let path = KernelPath(rawValue: text) else {
            FileHandle.standardError.write(Data("ASSAY_KERNELS=\(text) is not one of native, avx512, avx2, neon, portable; using the CPU's best\n".utf8))
            return nil
        }
        return path
    }()

    /// The path the kernels take: the requested one, capped at what the CPU runs (an x86 path
    /// asked for on aarch64 gives NEON, NEON asked for on x86 gives the CPU's best).
    public static let active: KernelPath = resolve(requested, detected: detected)

    static func resolve(_ requested: KernelPath?, detected: KernelPath) -> KernelPath {
        guard let requested, runs(requested, on: detected) else { return detected }
        return requested
    }

    /// Whether a CPU whose best is `detected` has `path`'s instructions (portable runs anywhere).
    static func runs(_ path: KernelPath, on detected: KernelPath) -> Bool {
        path == .portable || (path == .neon) == (detected == .neon) && path <= detected
    }

    /// The paths narrower than the best that this CPU also runs (x86 AVX512: avx2 and portable;
    /// aarch64: portable): what the kernel-path tests repeat the goldens on.
    public static var narrower: [KernelPath] { allCases.filter { $0 != detected && runs($0, on: detected) } }

    /// For reports: "avx2 (forced by ASSAY_KERNELS; the CPU has avx512)".
    public static var summary: String {
        var text = active.rawValue
        if let requested, requested != detected {
            text += active == requested ? " (forced by ASSAY_KERNELS; the CPU has \(detected.rawValue))"
                                        : " (ASSAY_KERNELS=\(requested.rawValue) is not on this CPU)"
        }
        if active == .avx512 && assay_cpu_has_avx512_bf16() != 0 { text += ", AVX512-BF16" }
        text += "; OpenBLAS sgemm: \(openBLASCore)"
        if active < detected && openBLASCore.lowercased() != "haswell" && requested != nil {
            // OpenBLAS picks its kernels when the library loads, from the CPU or OPENBLAS_CORETYPE.
            text += " (set OPENBLAS_CORETYPE=Haswell for its AVX2 kernels too)"
        }
        return text
    }

    /// The kernel set OpenBLAS chose at load (`openblas_get_corename`), e.g. "Cooperlake", "Haswell".
    public static let openBLASCore: String = {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }()
}
