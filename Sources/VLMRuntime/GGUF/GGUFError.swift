/// Why a GGUF file could not be read, naming the file and the key or tensor at fault.
///
/// The reader validates every count, length and offset against the file size before it allocates
/// or reads, so a corrupt or hostile file ends here instead of in a crash or a huge allocation.
public enum GGUFError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened or mapped (missing, a directory, unreadable).
    case cannotOpen(file: String, reason: String)
    /// The first four bytes are not `GGUF`.
    case badMagic(file: String, found: [UInt8])
    /// A version other than 2 or 3 (version 1 used 32-bit counts and is not read).
    case unsupportedVersion(file: String, version: UInt32)
    /// The file ends before something it declares: `context` says what was being read.
    case truncated(file: String, context: String, offset: Int, needed: Int, available: Int)
    /// A count (keys, tensors, array elements) that cannot fit in the bytes left in the file.
    case countTooLarge(file: String, context: String, count: UInt64, bytesLeft: Int)
    /// A metadata value type id outside the 13 GGUF value types.
    case unknownValueType(file: String, key: String, rawType: UInt32)
    /// A string that is not valid UTF-8.
    case invalidUTF8(file: String, context: String)
    /// A boolean stored as something other than 0 or 1.
    case invalidBool(file: String, key: String, byte: UInt8)
    /// Arrays nested deeper than the reader allows (a guard against stack exhaustion).
    case nestingTooDeep(file: String, key: String, limit: Int)
    /// The same metadata key twice.
    case duplicateKey(file: String, key: String)
    /// The same tensor name twice.
    case duplicateTensor(file: String, tensor: String)
    /// `general.alignment` that is not a positive power of two (or not an integer).
    case invalidAlignment(file: String, value: String)
    /// Tensor dimensions that are out of range, overflow, or do not fit the type's block size.
    case invalidTensorShape(file: String, tensor: String, reason: String)
    /// A tensor type id that ggml does not define (or has removed).
    case unknownTensorType(file: String, tensor: String, rawType: UInt32)
    /// A tensor whose bytes do not lie inside the data section.
    case tensorOutOfBounds(file: String, tensor: String, offset: UInt64, bytes: Int, dataSectionBytes: Int)
    /// A tensor offset that is not a multiple of the file's alignment.
    case misalignedTensor(file: String, tensor: String, offset: UInt64, alignment: Int)
    /// Two tensors whose byte ranges overlap.
    case overlappingTensors(file: String, first: String, second: String)
    /// A key the caller required is absent.
    case missingKey(file: String, key: String)
    /// A key holds a value of another type than the caller asked for.
    case typeMismatch(file: String, key: String, expected: String, found: String)
    /// A key holds a value of the right type but an unusable content.
    case invalidValue(file: String, key: String, reason: String)
    /// No tensor of that name.
    case tensorNotFound(file: String, tensor: String)

    public var description: String {
        switch self {
        case let .cannotOpen(file, reason):
            return "\(file): cannot open GGUF file: \(reason)"
        case let .badMagic(file, found):
            let hex = found.map { String($0, radix: 16) }.joined(separator: " ")
            return "\(file): not a GGUF file (magic bytes \(hex), expected 47 47 55 46 \"GGUF\")"
        case let .unsupportedVersion(file, version):
            return "\(file): GGUF version \(version) is not supported (only 2 and 3)"
        case let .truncated(file, context, offset, needed, available):
            return "\(file): truncated while reading \(context): needs \(needed) bytes at offset \(offset), only \(available) left"
        case let .countTooLarge(file, context, count, bytesLeft):
            return "\(file): \(context) claims \(count) entries but only \(bytesLeft) bytes are left in the file"
        case let .unknownValueType(file, key, rawType):
            return "\(file): key '\(key)' has unknown GGUF value type \(rawType)"
        case let .invalidUTF8(file, context):
            return "\(file): \(context) is not valid UTF-8"
        case let .invalidBool(file, key, byte):
            return "\(file): key '\(key)' holds boolean byte \(byte) (only 0 or 1 are valid)"
        case let .nestingTooDeep(file, key, limit):
            return "\(file): key '\(key)' nests arrays deeper than \(limit) levels"
        case let .duplicateKey(file, key):
            return "\(file): metadata key '\(key)' appears twice"
        case let .duplicateTensor(file, tensor):
            return "\(file): tensor '\(tensor)' appears twice"
        case let .invalidAlignment(file, value):
            return "\(file): general.alignment \(value) is not a positive power of two"
        case let .invalidTensorShape(file, tensor, reason):
            return "\(file): tensor '\(tensor)': \(reason)"
        case let .unknownTensorType(file, tensor, rawType):
            return "\(file): tensor '\(tensor)' has unknown ggml type id \(rawType)"
        case let .tensorOutOfBounds(file, tensor, offset, bytes, dataSectionBytes):
            return "\(file): tensor '\(tensor)' needs \(bytes) bytes at data offset \(offset), but the data section has only \(dataSectionBytes) bytes (truncated file?)"
        case let .misalignedTensor(file, tensor, offset, alignment):
            return "\(file): tensor '\(tensor)' data offset \(offset) is not a multiple of the alignment \(alignment)"
        case let .overlappingTensors(file, first, second):
            return "\(file): tensors '\(first)' and '\(second)' overlap in the data section"
        case let .missingKey(file, key):
            return "\(file): metadata key '\(key)' is missing"
        case let .typeMismatch(file, key, expected, found):
            return "\(file): key '\(key)' is \(found), expected \(expected)"
        case let .invalidValue(file, key, reason):
            return "\(file): key '\(key)': \(reason)"
        case let .tensorNotFound(file, tensor):
            return "\(file): no tensor named '\(tensor)'"
        }
    }
}
