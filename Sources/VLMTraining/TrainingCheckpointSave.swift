import Foundation
import VLMRuntime

/// Saving trained parameters in the image of the checkpoint they were loaded from.
extension TrainingCheckpoint {
    /// The marker file every save writes last; its presence makes an existing output folder
    /// replaceable by the next save.
    public static let markerFileName = "assay-checkpoint.json"

    /// Test hook: called with a stage name ("tensors-written", "before-rename", and "rename" —
    /// between moving a previous save aside and renaming the new one in) during `save`; a throw
    /// simulates an interrupted save or a failed rename.
    nonisolated(unsafe) static var faultInjection: ((String) throws -> Void)?

    /// Writes `parameters` as a checkpoint in `out`.
    ///
    /// - Folder source: `out` mirrors it — the same shard file names, stored tensor names, dtypes,
    ///   shapes and header bytes (bf16 rounded to nearest even, f16 likewise, mlx's channels-last
    ///   patch embedding converted back), `model.safetensors.index.json` regenerated when the
    ///   source has one, tensors that are not parameters copied unchanged, every other file of the
    ///   folder copied byte for byte. Unchanged parameters give byte-identical safetensors files.
    /// - GGUF source: a Hugging Face folder (config.json, generation_config.json, f32
    ///   model.safetensors under Hub names, tokenizer.json, tokenizer_config.json,
    ///   special_tokens_map.json) that transformers and the runtime both load.
    ///
    /// Everything is written into a hidden sibling `.<name>.partial-<random>` and renamed into
    /// place at the end, so `out` is either absent, the previous save, or complete. `out` must not
    /// be the source; an existing non-empty `out` must be a previous save (it holds
    /// `assay-checkpoint.json`), which is then replaced atomically.
    public static func save(_ parameters: ParameterSet, loadedFrom loaded: LoadedWeights, to out: String,
                            log: (String) -> Void = TrainingCheckpoint.standardErrorLog) throws {
        let fm = FileManager.default
        let outPath = URL(fileURLWithPath: out).standardizedFileURL.path
        let target = resolved(outPath)
        let source = resolved(URL(fileURLWithPath: loaded.source.path).standardizedFileURL.path)
        if target == source || target.hasPrefix(source + "/") || source.hasPrefix(target + "/") {
            throw TrainingCheckpointError.outputIsSource(path: out)
        }
        let replacing = try checkOutput(outPath)
        let parent = (outPath as NSString).deletingLastPathComponent
        let name = (outPath as NSString).lastPathComponent
        do { try fm.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
            throw TrainingCheckpointError.writeFailed(path: parent, reason: "\(error)")
        }
        let partial = (parent as NSString).appendingPathComponent(".\(name).partial-\(randomSuffix())")
        do { try fm.createDirectory(atPath: partial, withIntermediateDirectories: false) } catch {
            throw TrainingCheckpointError.writeFailed(path: partial, reason: "\(error)")
        }
        do {
            switch loaded.source {
            case let .folder(directory, shards, hasIndex, tensors):
                try saveFolder(parameters, config: loaded.config, directory: directory, shards: shards, hasIndex: hasIndex,
                               tensors: tensors, into: partial)
            case let .gguf(path, _, _, _):
                try saveHuggingFace(parameters, config: loaded.config, gguf: path, into: partial)
            }
            try faultInjection?("tensors-written")
            try writeMarker(parameters, source: loaded.source, into: partial)
            try faultInjection?("before-rename")
            try moveIntoPlace(partial, out: outPath, replacing: replacing)
        } catch {
            try? fm.removeItem(atPath: partial)
            throw error
        }
        log("saved \(parameters.parameters.count) parameters (\(parameters.elementCount) values) to \(outPath)")
    }

    /// The path with symlinks resolved as far as it exists.
    static func resolved(_ path: String) -> String {
        URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
    }

    static func randomSuffix() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    /// Whether `out` holds a previous save to replace (false: absent or an empty folder).
    static func checkOutput(_ out: String) throws -> Bool {
        var info = stat()
        guard lstat(out, &info) == 0 else { return false }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw TrainingCheckpointError.outputExists(path: out, reason: "it is not a folder")
        }
        let listing = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        if listing.isEmpty { return false }
        let marker = (out as NSString).appendingPathComponent(markerFileName)
        guard let data = FileManager.default.contents(atPath: marker),
              let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              obj["format"] as? String == "assay-training-checkpoint" else {
            throw TrainingCheckpointError.outputExists(path: out, reason: "a non-empty folder that is not a previous save (no \(markerFileName))")
        }
        return true
    }

    /// Renames `partial` to `out`; a previous save is renamed aside first and deleted after.
    static func moveIntoPlace(_ partial: String, out: String, replacing: Bool) throws {
        let fm = FileManager.default
        if !replacing {
            // An empty folder at `out` is replaced by rename(2) itself.
            guard rename(partial, out) == 0 else {
                throw TrainingCheckpointError.writeFailed(path: out, reason: "rename: \(String(cString: strerror(errno)))")
            }
            return
        }
        let parent = (out as NSString).deletingLastPathComponent
        let old = (parent as NSString).appendingPathComponent(".\((out as NSString).lastPathComponent).old-\(randomSuffix())")
        guard rename(out, old) == 0 else {
            throw TrainingCheckpointError.writeFailed(path: out, reason: "moving the previous save aside: \(String(cString: strerror(errno)))")
        }
        do {
            try faultInjection?("rename")
        } catch {
            _ = rename(old, out)
            throw error
        }
        guard rename(partial, out) == 0 else {
            let reason = String(cString: strerror(errno))
            _ = rename(old, out)
            throw TrainingCheckpointError.writeFailed(path: out, reason: "rename: \(reason)")
        }
        try? fm.removeItem(atPath: old)
    }

    /// `assay-checkpoint.json`: format, source, and the parameters' count and FNV-1a fingerprint.
    static func writeMarker(_ parameters: ParameterSet, source: CheckpointSource, into dir: String) throws {
        var kind = "folder"
        if case .gguf = source { kind = "gguf" }
        let marker: [String: Any] = [
            "format": "assay-training-checkpoint", "version": 1, "source": source.path, "source_kind": kind,
            "parameter_count": parameters.parameters.count, "element_count": parameters.elementCount,
            "parameters_fnv1a64": String(format: "%016llx", fingerprint(parameters)),
        ]
        try writeJSON(marker, to: (dir as NSString).appendingPathComponent(markerFileName))
    }

    /// FNV-1a (64-bit) over every parameter's name, shape and value bits, in order.
    public static func fingerprint(_ parameters: ParameterSet) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        @inline(__always) func add(_ v: UInt64) { h = (h ^ v) &* 0x0000_0100_0000_01B3 }
        for p in parameters.parameters {
            for b in p.name.utf8 { add(UInt64(b)) }
            for d in p.shape { add(UInt64(truncatingIfNeeded: d)) }
            p.value.withUnsafeBufferPointer { for v in $0 { add(UInt64(v.bitPattern)) } }
        }
        return h
    }

    static func writeJSON(_ object: Any, to path: String) throws {
        do {
            var data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            data.append(0x0A)
            try data.write(to: URL(fileURLWithPath: path))
        } catch {
            throw TrainingCheckpointError.writeFailed(path: path, reason: "\(error)")
        }
    }

    /// Copies a file or folder byte for byte (with ordinary permissions, not the source's).
    static func copyTree(_ src: String, _ dst: String) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: src, isDirectory: &isDir) else { return }
        do {
            if isDir.boolValue {
                try fm.createDirectory(atPath: dst, withIntermediateDirectories: false)
                for name in try fm.contentsOfDirectory(atPath: src) {
                    try copyTree((src as NSString).appendingPathComponent(name), (dst as NSString).appendingPathComponent(name))
                }
            } else {
                try Data(contentsOf: URL(fileURLWithPath: src)).write(to: URL(fileURLWithPath: dst))
            }
        } catch let e as TrainingCheckpointError {
            throw e
        } catch {
            throw TrainingCheckpointError.writeFailed(path: dst, reason: "copying \(src): \(error)")
        }
    }

    // MARK: - Folder source

    static func saveFolder(_ parameters: ParameterSet, config: ModelConfig, directory: String, shards: [String], hasIndex: Bool,
                           tensors: [StoredTensor], into out: String) throws {
        // Every parameter must have a place in the source.
        let stored = Set(tensors.compactMap(\.canonicalName))
        for p in parameters.parameters where !stored.contains(p.name) {
            throw TrainingCheckpointError.unsupportedForExport(file: directory, what: "parameter '\(p.name)'",
                                                               reason: "the source folder has no tensor for it")
        }
        for p in parameters.parameters where p.value.count != p.shape.reduce(1, *) {
            throw TrainingCheckpointError.shapeMismatch(file: directory, tensor: p.name, expected: p.shape, actual: [p.value.count])
        }
        var weightMap: [String: String] = [:]
        var totalSize = 0
        for shard in shards {
            let srcPath = (directory as NSString).appendingPathComponent(shard)
            let file = try SafeTensorsFile(path: srcPath)
            let recorded = tensors.filter { $0.file == shard }
            guard recorded.count == file.entries.count else {
                throw TrainingCheckpointError.sourceChanged(file: srcPath, reason: "\(file.entries.count) tensors, \(recorded.count) when loaded")
            }
            for t in recorded {
                guard let e = file.entries[t.storedName], e.dtype == t.dtype, e.shape == t.shape else {
                    throw TrainingCheckpointError.sourceChanged(file: srcPath, reason: "tensor '\(t.storedName)' differs from the loaded one")
                }
                weightMap[t.storedName] = shard
                totalSize += e.byteCount
            }
            try writeShard(file, recorded: recorded, parameters: parameters, config: config,
                           to: (out as NSString).appendingPathComponent(shard))
        }
        if hasIndex {
            let indexName = "model.safetensors.index.json"
            var metadata: [String: Any] = [:]
            if let data = FileManager.default.contents(atPath: (directory as NSString).appendingPathComponent(indexName)),
               let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let m = obj["metadata"] as? [String: Any] {
                metadata = m
            }
            metadata["total_size"] = totalSize
            try writeJSON(["metadata": metadata, "weight_map": weightMap], to: (out as NSString).appendingPathComponent(indexName))
        }
        let skip = Set(shards + ["model.safetensors.index.json", markerFileName])
        let listing: [String]
        do { listing = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw TrainingCheckpointError.sourceChanged(file: directory, reason: "\(error)")
        }
        for name in listing.sorted() where !skip.contains(name) {
            try copyTree((directory as NSString).appendingPathComponent(name), (out as NSString).appendingPathComponent(name))
        }
    }

    /// One shard: the source's header bytes verbatim (same names, dtypes, shapes and offsets),
    /// then each tensor's bytes — encoded from its parameter, or copied.
    static func writeShard(_ file: SafeTensorsFile, recorded: [StoredTensor], parameters: ParameterSet, config: ModelConfig,
                           to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw TrainingCheckpointError.writeFailed(path: path, reason: "cannot create file")
        }
        defer { try? handle.close() }
        let base = file.file.base
        let entries = file.entries.values.sorted { ($0.offset, $0.name) < ($1.offset, $1.name) }
        let byName = Dictionary(recorded.map { ($0.storedName, $0) }, uniquingKeysWith: { a, _ in a })
        func copy(_ from: Int, _ to: Int) throws {
            guard to > from else { return }
            try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base + from), count: to - from, deallocator: .none))
        }
        do {
            let headerLength = Int(base.loadUnaligned(as: UInt64.self).littleEndian)
            var cursor = 0
            try copy(0, 8 + headerLength)
            cursor = 8 + headerLength
            for e in entries {
                try copy(cursor, e.offset)
                cursor = max(cursor, e.offset)
                if let values = try parameterValues(for: e, stored: byName[e.name], parameters: parameters, config: config, file: file.path) {
                    try handle.write(contentsOf: encode(values, as: e.dtype))
                } else {
                    try copy(e.offset, e.offset + e.byteCount)
                }
                cursor = e.offset + e.byteCount
            }
            try copy(cursor, file.file.size)
        } catch let e as TrainingCheckpointError {
            throw e
        } catch {
            throw TrainingCheckpointError.writeFailed(path: path, reason: "\(error)")
        }
    }

    /// The values to store for `e` in its file layout, or nil to copy it unchanged.
    static func parameterValues(for e: TensorEntry, stored: StoredTensor?, parameters: ParameterSet, config: ModelConfig,
                                file: String) throws -> [Float]? {
        guard let canonical = stored?.canonicalName else { return nil }
        if canonical == "lm_head.weight", config.tieWordEmbeddings, parameters["lm_head.weight"] == nil {
            // A tied head stored anyway follows the embedding.
            guard let embed = parameters["model.embed_tokens.weight"], embed.shape == e.shape else { return nil }
            return embed.value
        }
        guard let p = parameters[canonical] else { return nil }
        if stored?.channelsLast == true {
            let s = p.shape
            guard s.count == 5, e.shape == [s[0], s[2], s[3], s[4], s[1]] else {
                throw TrainingCheckpointError.shapeMismatch(file: file, tensor: e.name, expected: e.shape, actual: p.shape)
            }
            return torchToChannelsLast(p.value, out: s[0], channels: s[1], temporal: s[2], patch: s[3])
        }
        guard p.shape == e.shape else {
            throw TrainingCheckpointError.shapeMismatch(file: file, tensor: e.name, expected: e.shape, actual: p.shape)
        }
        guard [.f32, .bf16, .f16, .f64].contains(e.dtype) else {
            throw TrainingCheckpointError.unsupportedDType(file: file, tensor: e.name, dtype: e.dtype.rawValue)
        }
        return p.value
    }

    /// f32 values in a stored float dtype, little-endian (bf16 and f16 round to nearest even).
    static func encode(_ values: [Float], as dtype: DType) -> Data {
        switch dtype {
        case .bf16:
            let out = values.map { floatToBF16($0).littleEndian }
            return out.withUnsafeBytes { Data($0) }
        case .f16:
            let out = values.map { Float16($0).bitPattern.littleEndian }
            return out.withUnsafeBytes { Data($0) }
        case .f64:
            let out = values.map { Double($0).bitPattern.littleEndian }
            return out.withUnsafeBytes { Data($0) }
        default:
            return values.withUnsafeBytes { Data($0) }
        }
    }
}
