import AssayTestSupport
import Foundation
import XCTest
@testable import VLMRuntime
#if canImport(Glibc)
import Glibc
#endif

/// The hostile-input corpus: generated mutations of real checkpoints' config.json,
/// preprocessor_config.json, safetensors header and GGUF metadata, each loaded by the `assay`
/// binary in a child process (`assay generate`, with a picture for the vision models). Any
/// mutation may be refused — with an error — but none may kill the process with a signal
/// (a Swift trap is SIGILL/SIGTRAP, an allocation failure SIGABRT/SIGKILL), reach a peak
/// resident size over 1 GB, or run past 30 s.
final class HostileCorpusTests: XCTestCase {
    static let rssLimitKiB = 1 << 20
    static let secondsLimit = 30.0
    /// Integers a hostile file uses: a negative, zero, a plausible wrong size, and one whose products overflow.
    static let hostileInts: [Int] = [-2, 0, 3, 1 << 62]

    struct Case {
        var name: String
        var modelPath: String
        var image: String?
    }

    struct Outcome {
        var name: String
        var status: Int32       // exit status, or the signal when `signal`
        var signal: Bool
        var maxRSSKiB: Int
        var seconds: Double
        var timedOut: Bool
    }

    func testMutatedCheckpointsNeverCrashBloatOrHang() throws {
        let assay = try Self.assayExecutable()
        let dir = try AssayTestSupport.Fixtures.temporaryDirectory(for: self)
        var cases: [Case] = []
        let image = dir.appendingPathComponent("picture.png")
        try Data(base64Encoded: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")!.write(to: image)

        // A tiny Llama (safetensors folder and GGUF), built here: needs nothing outside the repo.
        let llama = try TinyLlama.randomFolder(in: dir.appendingPathComponent("llama"))
        cases += try Self.configMutations(of: llama, in: dir.appendingPathComponent("llama-config"), image: nil)
        cases += try Self.safetensorsMutations(of: llama, in: dir.appendingPathComponent("llama-st"))
        let gguf = dir.appendingPathComponent("tiny.gguf")
        try TinyLlama.gguf(from: llama, to: gguf)
        cases += try Self.ggufMutations(of: gguf, in: dir.appendingPathComponent("gguf"))

        // The tiny Qwen2-VL / Qwen2.5-VL checkpoints of ../shared, with a picture, when present.
        var visionFolders: [URL] = []
        for name in ["qwen2_5_vl_tiny", "qwen2_vl_tiny"] {
            let folder = AssayTestSupport.Fixtures.sharedRoot.appendingPathComponent("fixtures/goldens/\(name)/checkpoint")
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path) { visionFolders.append(folder) }
        }
        if visionFolders.isEmpty {
            print("HostileCorpusTests: ../shared/fixtures/goldens absent; the vision checkpoints' mutations are skipped")
        }
        for folder in visionFolders {
            let name = folder.deletingLastPathComponent().lastPathComponent
            cases += try Self.configMutations(of: folder, in: dir.appendingPathComponent("\(name)-config"), image: image.path)
            cases += try Self.processorMutations(of: folder, in: dir.appendingPathComponent("\(name)-proc"), image: image.path)
            cases += try Self.safetensorsMutations(of: folder, in: dir.appendingPathComponent("\(name)-st"))
        }
        XCTAssertGreaterThanOrEqual(cases.count, visionFolders.isEmpty ? 100 : 400)

        let started = Date()
        let outcomes = Self.runAll(cases, assay: assay, parallel: 2)
        var refused = 0
        for o in outcomes {
            if o.signal { XCTFail("\(o.name): killed by signal \(o.status)") }
            if o.timedOut { XCTFail("\(o.name): still running after \(Int(Self.secondsLimit)) s") }
            if o.maxRSSKiB > Self.rssLimitKiB { XCTFail("\(o.name): peak RSS \(o.maxRSSKiB / 1024) MiB") }
            if !o.signal && o.status != 0 { refused += 1 }
        }
        let peak = outcomes.map(\.maxRSSKiB).max() ?? 0
        print(String(format: "HostileCorpusTests: %d cases (%d refused with an error, %d loaded and answered) in %.0f s; slowest %.1f s, peak RSS %d MiB",
                     outcomes.count, refused, outcomes.count - refused, Date().timeIntervalSince(started),
                     outcomes.map(\.seconds).max() ?? 0, peak / 1024))
        // The corpus must bite: most mutations are refused, and the unmutated inputs were fine.
        XCTAssertGreaterThan(refused, outcomes.count / 3)
    }

    // MARK: Mutations

    /// Every integer in config.json (nested objects and lists included) set to each hostile value.
    static func configMutations(of folder: URL, in dir: URL, image: String?) throws -> [Case] {
        let data = try Data(contentsOf: folder.appendingPathComponent("config.json"))
        let object = try JSONSerialization.jsonObject(with: data)
        var cases: [Case] = []
        for path in integerPaths(object, prefix: []) {
            for value in hostileInts {
                let mutated = replacing(object, at: path, with: value)
                let copy = try copyFolder(folder, to: dir.appendingPathComponent("c\(cases.count)"))
                try replace(copy.appendingPathComponent("config.json"), with: JSONSerialization.data(withJSONObject: mutated))
                cases.append(Case(name: "\(folder.lastPathComponent) config.json \(path.joined(separator: ".")) = \(value)",
                                  modelPath: copy.path, image: image))
            }
        }
        return cases
    }

    static func processorMutations(of folder: URL, in dir: URL, image: String?) throws -> [Case] {
        var cases: [Case] = []
        for key in ["min_pixels", "max_pixels", "patch_size", "merge_size", "temporal_patch_size"] {
            for value in hostileInts {
                let copy = try copyFolder(folder, to: dir.appendingPathComponent("p\(cases.count)"))
                try? FileManager.default.removeItem(at: copy.appendingPathComponent("processor_config.json"))
                var object: [String: Any] = ["min_pixels": 3136, "max_pixels": 12544]
                object[key] = value
                try replace(copy.appendingPathComponent("preprocessor_config.json"), with: JSONSerialization.data(withJSONObject: object))
                cases.append(Case(name: "\(folder.lastPathComponent) preprocessor_config.json \(key) = \(value)", modelPath: copy.path, image: image))
            }
        }
        return cases
    }

    /// The header's dimensions and offsets of the first tensors, and its length field.
    static func safetensorsMutations(of folder: URL, in dir: URL) throws -> [Case] {
        let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent("model.safetensors")))
        let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        guard var header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any] else {
            throw XCTSkip("not a safetensors header")
        }
        let body = Array(bytes[(8 + length)...])
        var cases: [Case] = []
        func write(_ header: [String: Any], lengthField: UInt64? = nil, name: String) throws {
            let json = try JSONSerialization.data(withJSONObject: header)
            let field = lengthField ?? UInt64(json.count)
            var out = withUnsafeBytes(of: field.littleEndian) { Array($0) } + [UInt8](json) + body
            if lengthField != nil { out = withUnsafeBytes(of: field.littleEndian) { Array($0) } + Array(out[8...]) }
            let copy = try copyFolder(folder, to: dir.appendingPathComponent("s\(cases.count)"))
            try replace(copy.appendingPathComponent("model.safetensors"), with: Data(out))
            cases.append(Case(name: "\(folder.lastPathComponent) model.safetensors \(name)", modelPath: copy.path, image: nil))
        }
        let names = header.keys.filter { $0 != "__metadata__" }.sorted().prefix(4)
        for tensor in names {
            guard var entry = header[tensor] as? [String: Any], let shape = entry["shape"] as? [Int],
                  let offsets = entry["data_offsets"] as? [Int] else { continue }
            for value in hostileInts {
                var s = shape
                if !s.isEmpty { s[0] = value }
                entry["shape"] = s
                entry["data_offsets"] = offsets
                header[tensor] = entry
                try write(header, name: "\(tensor) shape[0] = \(value)")
                entry["shape"] = shape
                entry["data_offsets"] = [offsets[0], value]
                header[tensor] = entry
                try write(header, name: "\(tensor) data_offsets end = \(value)")
            }
            // Overlapping the next tensor's bytes with the same length.
            entry["data_offsets"] = [max(0, offsets[0] - 4), offsets[1] - 4]
            header[tensor] = entry
            try write(header, name: "\(tensor) data_offsets shifted into its neighbour")
            entry["data_offsets"] = offsets
            header[tensor] = entry
        }
        for field in [UInt64(0), 7, UInt64(1) << 40, UInt64.max] {
            try write(header, lengthField: field, name: "header length \(field)")
        }
        return cases
    }

    /// Every integer metadata key of the GGUF set to each hostile value (as INT64).
    static func ggufMutations(of path: URL, in dir: URL) throws -> [Case] {
        let file = try GGUFFile(path: path.path)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var cases: [Case] = []
        let keys = file.metadata.entries.filter { $0.value.intValue != nil }.map(\.key).sorted()
        for key in keys {
            for value in hostileInts {
                var meta = file.metadata
                meta.set(key, .int64(Int64(value)))
                var writer = GGUFWriter(metadata: meta)
                for t in file.tensors {
                    try writer.addTensor(name: t.name, dimensions: t.dimensions, type: t.type, data: Array(try file.tensor(named: t.name).bytes))
                }
                let out = dir.appendingPathComponent("g\(cases.count).gguf")
                try writer.write(to: out.path)
                cases.append(Case(name: "tiny.gguf \(key) = \(value)", modelPath: out.path, image: nil))
            }
        }
        return cases
    }

    static func integerPaths(_ value: Any, prefix: [String]) -> [[String]] {
        if let object = value as? [String: Any] {
            return object.keys.sorted().flatMap { integerPaths(object[$0]!, prefix: prefix + [$0]) }
        }
        if let list = value as? [Any] {
            return list.indices.flatMap { integerPaths(list[$0], prefix: prefix + ["\($0)"]) }
        }
        if let number = value as? NSNumber, number.doubleValue == number.doubleValue.rounded(),
           !(number.stringValue.contains(".") || number.stringValue.contains("e")) {
            return [prefix]
        }
        return []
    }

    static func replacing(_ value: Any, at path: [String], with new: Int) -> Any {
        guard let head = path.first else { return new }
        if var object = value as? [String: Any], let child = object[head] {
            object[head] = replacing(child, at: Array(path.dropFirst()), with: new)
            return object
        }
        if var list = value as? [Any], let i = Int(head), list.indices.contains(i) {
            list[i] = replacing(list[i], at: Array(path.dropFirst()), with: new)
            return list
        }
        return value
    }

    /// Writes `data` as a new file at `url`, removing the symlink there first: writing through
    /// the link would change the original.
    static func replace(_ url: URL, with data: Data) throws {
        try? FileManager.default.removeItem(at: url)
        try data.write(to: url)
    }

    /// A folder of symlinks to the originals (the weights are not copied), so a mutated file can
    /// replace its link.
    static func copyFolder(_ folder: URL, to copy: URL) throws -> URL {
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            try FileManager.default.createSymbolicLink(at: copy.appendingPathComponent(name),
                                                       withDestinationURL: folder.appendingPathComponent(name))
        }
        return copy
    }

    // MARK: Child processes

    static func assayExecutable() throws -> URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("assay")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory.deleteLastPathComponent()
        }
        throw XCTSkip("the assay executable is not built beside the tests (build with --build-tests)")
    }

    /// The peak resident set of a child, in KiB. `wait4`'s `ru_maxrss` alone cannot say it: posix_spawn
    /// starts the child in this process's address space, and Linux carries that address space's
    /// high-water mark into the child's at exec, so after a test that used 2 GB in this process every
    /// child "peaks" at 2 GB. The child's own address space is read from /proc while it runs
    /// (`VmHWM`), and `ru_maxrss` counts only when it exceeds this process's own peak.
    static func childPeakKiB(polled: Int, usage: rusage) -> Int {
        var me = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &me)
        let reported = Int(usage.ru_maxrss)
        return max(polled, reported > Int(me.ru_maxrss) ? reported : 0)
    }

    /// `VmHWM` of a running process, in KiB (0 when it has exited or /proc is not there).
    static func highWaterKiB(_ pid: pid_t) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    /// Runs every case, `parallel` at a time, each bounded by `secondsLimit`.
    static func runAll(_ cases: [Case], assay: URL, parallel: Int) -> [Outcome] {
        var outcomes: [Outcome] = []
        var running: [(pid: pid_t, index: Int, started: Date, peak: Int)] = []
        var next = 0
        while next < cases.count || !running.isEmpty {
            while running.count < parallel, next < cases.count {
                let c = cases[next]
                var args = ["generate", "--model-path", c.modelPath, "--prompt", "hi", "--max-tokens", "2"]
                if let image = c.image { args += ["--image", image] }
                if let pid = spawn(assay.path, args) {
                    running.append((pid, next, Date(), 0))
                } else {
                    outcomes.append(Outcome(name: c.name, status: -1, signal: true, maxRSSKiB: 0, seconds: 0, timedOut: false))
                }
                next += 1
            }
            var still: [(pid: pid_t, index: Int, started: Date, peak: Int)] = []
            for var r in running {
                r.peak = max(r.peak, highWaterKiB(r.pid))
                var status: Int32 = 0
                var usage = rusage()
                let done = wait4(r.pid, &status, WNOHANG, &usage)
                let elapsed = Date().timeIntervalSince(r.started)
                if done == r.pid {
                    let signalled = (status & 0x7F) != 0 && (status & 0x7F) != 0x7F
                    outcomes.append(Outcome(name: cases[r.index].name, status: signalled ? status & 0x7F : (status >> 8) & 0xFF,
                                            signal: signalled, maxRSSKiB: childPeakKiB(polled: r.peak, usage: usage), seconds: elapsed, timedOut: false))
                } else if elapsed > secondsLimit {
                    kill(r.pid, SIGKILL)
                    _ = wait4(r.pid, &status, 0, &usage)
                    outcomes.append(Outcome(name: cases[r.index].name, status: 0, signal: false,
                                            maxRSSKiB: childPeakKiB(polled: r.peak, usage: usage), seconds: elapsed, timedOut: true))
                } else {
                    still.append(r)
                }
            }
            running = still
            if !running.isEmpty { usleep(5_000) }
        }
        return outcomes
    }

    /// posix_spawn with stdout and stderr to /dev/null (the errors are not what is tested).
    static func spawn(_ path: String, _ arguments: [String]) -> pid_t? {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        return rc == 0 ? pid : nil
    }
}
