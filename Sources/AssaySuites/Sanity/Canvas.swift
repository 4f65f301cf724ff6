import Foundation

/// An RGB raster the sanity suite draws its pictures on.
struct Canvas {
    let width: Int
    let height: Int
    private(set) var pixels: [UInt8]

    init(width: Int, height: Int, background: RGB = .white) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = background.r
            pixels[3 * i + 1] = background.g
            pixels[3 * i + 2] = background.b
        }
    }

    struct RGB: Equatable {
        var r, g, b: UInt8
        static let white = RGB(r: 255, g: 255, b: 255)
    }

    /// Fills a shape centred at (cx, cy) whose bounding square has side `2 * radius`.
    mutating func fill(_ kind: SanityShape.Kind, cx: Double, cy: Double, radius: Double, color: RGB) {
        let x0 = max(0, Int((cx - radius).rounded(.down))), x1 = min(width - 1, Int((cx + radius).rounded(.up)))
        let y0 = max(0, Int((cy - radius).rounded(.down))), y1 = min(height - 1, Int((cy + radius).rounded(.up)))
        guard x0 <= x1, y0 <= y1 else { return }
        for y in y0...y1 {
            for x in x0...x1 {
                // Sample at the pixel centre.
                let dx = (Double(x) + 0.5 - cx) / radius, dy = (Double(y) + 0.5 - cy) / radius
                if kind.contains(dx: dx, dy: dy) {
                    let i = 3 * (y * width + x)
                    pixels[i] = color.r
                    pixels[i + 1] = color.g
                    pixels[i + 2] = color.b
                }
            }
        }
    }
}

/// A shape drawn in a sanity picture.
struct SanityShape {
    enum Kind: String, CaseIterable {
        case circle, square, triangle, diamond

        /// Whether the point (dx, dy), in units of the radius from the centre, is inside.
        func contains(dx: Double, dy: Double) -> Bool {
            switch self {
            case .circle: return dx * dx + dy * dy <= 1
            case .square: return abs(dx) <= 0.85 && abs(dy) <= 0.85
            case .diamond: return abs(dx) + abs(dy) <= 1
            case .triangle:
                // Apex up, base at dy = 0.8, apex at dy = -0.9.
                guard dy >= -0.9, dy <= 0.8 else { return false }
                let halfWidth = (dy + 0.9) / 1.7
                return abs(dx) <= halfWidth
            }
        }
    }

    var kind: Kind
    var color: SanityColor
    var cx: Double
    var cy: Double
    var radius: Double
}

/// The named colours of the sanity suite, far apart so the name is never in doubt.
enum SanityColor: String, CaseIterable {
    case red, green, blue, yellow, purple, orange

    var rgb: Canvas.RGB {
        switch self {
        case .red: return .init(r: 220, g: 30, b: 30)
        case .green: return .init(r: 30, g: 170, b: 60)
        case .blue: return .init(r: 30, g: 70, b: 220)
        case .yellow: return .init(r: 245, g: 210, b: 20)
        case .purple: return .init(r: 140, g: 50, b: 170)
        case .orange: return .init(r: 245, g: 130, b: 20)
        }
    }
}
