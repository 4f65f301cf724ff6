import AssayBackends
import AssayCore
import Foundation

/// The key under which a response can be reused: a hash of everything that can change the
/// answer — backend identity (including the checkpoint's content hash), the rendered messages
/// with image bytes hashed, generation parameters, sample index and prompt version.
public enum CacheKey {
    public static func make(
        backend: BackendIdentity, messages: [Message], params: GenerationParams, sampleIndex: Int, promptVersion: String
    ) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Images enter as their content hash only; where the bytes were read from does not matter.
        let contentOnly = messages.map { message in
            Message(role: message.role, content: message.content.map { part in
                if case .image(let ref) = part { return .image(ImageRef(sha256: ref.sha256, byteCount: ref.byteCount, origin: "")) }
                return part
            })
        }
        let rendered = (try? encoder.encode(contentOnly)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        var hasher = SHA256()
        for part in ["assay-cache-v1", backend.canonicalJSON, rendered, params.canonicalJSON, String(sampleIndex), promptVersion] {
            hasher.update(part)
            hasher.update([0])
        }
        return hasher.finalize().hexString
    }
}
