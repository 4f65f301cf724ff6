#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only bytes that stay valid while this object lives: a memory-mapped file, or a heap copy
/// for GGUF images built in memory.
///
/// Tensor views (`GGUFTensor`, `QuantizedMatrix`) hold a reference to their storage, so weights are
/// read in place from the page cache and the mapping cannot disappear under a running kernel.
public final class GGUFStorage: @unchecked Sendable {  // @unchecked: the bytes are never written after init
    /// First byte.
    public let base: UnsafeRawPointer
    /// Number of bytes.
    public let count: Int
    private let release: Release

    private enum Release {
        case unmap(UnsafeMutableRawPointer, Int)
        case deallocate(UnsafeMutableRawPointer)
    }

    /// Maps `path` read-only. A zero-length file yields zero bytes (the parser reports it).
    public init(mappingFileAt path: String) throws {
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else {
            throw GGUFError.cannotOpen(file: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw GGUFError.cannotOpen(file: path, reason: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw GGUFError.cannotOpen(file: path, reason: "not a regular file")
        }
        let size = Int(info.st_size)
        if size == 0 {
            let empty = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64)
            base = UnsafeRawPointer(empty)
            count = 0
            release = .deallocate(empty)
            return
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
              mapped != UnsafeMutableRawPointer(bitPattern: -1)
        else {
            throw GGUFError.cannotOpen(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
        count = size
        release = .unmap(mapped, size)
    }

    /// Copies `bytes` into 64-byte-aligned memory (as aligned as a page for the kernels' purposes).
    public init(copying bytes: [UInt8]) {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress { memory.copyMemory(from: s, byteCount: src.count) }
        }
        base = UnsafeRawPointer(memory)
        count = bytes.count
        release = .deallocate(memory)
    }

    deinit {
        switch release {
        case let .unmap(p, n): munmap(p, n)
        case let .deallocate(p): p.deallocate()
        }
    }

    /// The whole region.
    public var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}
