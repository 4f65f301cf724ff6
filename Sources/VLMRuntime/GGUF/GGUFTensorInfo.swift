/// One tensor's entry in a GGUF file: name, shape, element type and where its bytes are.
///
/// `dimensions` is in ggml order: `dimensions[0]` is the contiguous row length. A tensor with
/// dimensions `[K, N]` is N rows of K values, i.e. a PyTorch `Linear.weight` of shape (N, K).
public struct GGUFTensorInfo: Sendable, Equatable {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// Extent of each dimension, ggml order (innermost first), 0 to 4 entries.
    public let dimensions: [Int]
    /// Element storage type.
    public let type: GGMLType
    /// Byte offset of the first byte, relative to the start of the data section.
    public let offset: Int
    /// Byte offset of the first byte from the start of the file.
    public let absoluteOffset: Int
    /// Bytes the tensor occupies (a whole number of blocks).
    public let byteCount: Int
    /// Number of elements (product of `dimensions`; 1 for a zero-dimensional tensor).
    public let elementCount: Int

    /// Length of one row, `dimensions[0]` (1 for a zero-dimensional tensor).
    public var rowLength: Int { dimensions.first ?? 1 }
    /// Number of rows: the product of all dimensions but the first.
    public var rowCount: Int { dimensions.dropFirst().reduce(1, *) }
    /// Bytes of one row.
    public var rowBytes: Int { rowLength / type.blockSize * type.blockBytes }

    public init(name: String, dimensions: [Int], type: GGMLType, offset: Int, absoluteOffset: Int,
                byteCount: Int, elementCount: Int) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
        self.absoluteOffset = absoluteOffset
        self.byteCount = byteCount
        self.elementCount = elementCount
    }
}

/// A tensor's info together with its bytes, read in place from the file's storage.
///
/// The view keeps the storage alive, so `bytes` stays valid for as long as the view (or anything
/// built from it, like a `QuantizedMatrix`) exists.
public struct GGUFTensor: @unchecked Sendable {  // @unchecked: `bytes` points into immutable storage held by `storage`
    /// Name, shape, type and placement.
    public let info: GGUFTensorInfo
    /// Exactly `info.byteCount` bytes, starting at the tensor's first block.
    public let bytes: UnsafeRawBufferPointer
    /// The memory `bytes` points into.
    public let storage: GGUFStorage

    /// The tensor as a row-major matrix of `rowCount` rows of `rowLength` values, for the kernels.
    /// Throws when the type has no kernels.
    public func matrix() throws -> QuantizedMatrix {
        try QuantizedMatrix(type: info.type, rows: info.rowCount, columns: info.rowLength,
                            bytes: bytes, owner: storage, name: info.name)
    }

    /// Every element as `Float`, bit-exact with ggml's `dequantize_row_*`.
    public func dequantized() throws -> [Float] {
        try matrix().dequantizeAll()
    }
}
