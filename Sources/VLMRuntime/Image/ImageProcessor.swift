import Foundation

/// Patches of one or more images ready for the vision tower.
public struct ProcessedImages: Sendable {
    /// [rows, channels · temporal · patch · patch], rows in merge-block order.
    public var pixelValues: [Float]
    public var rowLength: Int
    /// (t, h, w) in patches, per image.
    public var grids: [ImageGrid]
    public var rows: Int { grids.reduce(0) { $0 + $1.patches } }

    public init(pixelValues: [Float], rowLength: Int, grids: [ImageGrid]) {
        self.pixelValues = pixelValues
        self.rowLength = rowLength
        self.grids = grids
    }
}

/// An image's extent in patches.
public struct ImageGrid: Sendable, Hashable {
    public var t: Int
    public var h: Int
    public var w: Int
    public init(t: Int, h: Int, w: Int) { self.t = t; self.h = h; self.w = w }
    public var patches: Int { t * h * w }
    /// LM tokens after the 2×2 merge.
    public func tokens(merge: Int) -> Int { t * (h / merge) * (w / merge) }
}

/// The Qwen2-VL image processor (the PIL path of transformers): smart_resize, Pillow bicubic,
/// rescale, CLIP normalisation, temporal repeat and patchify.
public struct ImageProcessor: Sendable {
    public var config: ProcessorConfig

    public init(config: ProcessorConfig) { self.config = config }

    public var factor: Int { config.patchSize * config.mergeSize }

    /// transformers v5 `smart_resize`: round to multiples of `factor` with Python's round
    /// (half to even), then scale into [min_pixels, max_pixels]. Rejects aspect ratios above 200.
    public static func smartResize(height: Int, width: Int, factor: Int, minPixels: Int, maxPixels: Int, name: String = "image") throws -> (height: Int, width: Int) {
        guard height > 0, width > 0 else { throw ImageError.badSize(file: name, reason: "image has size \(width)x\(height)") }
        let ratio = Double(max(height, width)) / Double(min(height, width))
        guard ratio <= 200 else {
            throw ImageError.badSize(file: name, reason: "absolute aspect ratio must be smaller than 200, got \(ratio)")
        }
        let f = Double(factor)
        var hb = Int((Double(height) / f).rounded(.toNearestOrEven)) * factor
        var wb = Int((Double(width) / f).rounded(.toNearestOrEven)) * factor
        if hb * wb > maxPixels {
            let beta = (Double(height * width) / Double(maxPixels)).squareRoot()
            hb = max(factor, Int((Double(height) / beta / f).rounded(.down)) * factor)
            wb = max(factor, Int((Double(width) / beta / f).rounded(.down)) * factor)
        } else if hb * wb < minPixels {
            let beta = (Double(minPixels) / Double(height * width)).squareRoot()
            hb = Int((Double(height) * beta / f).rounded(.up)) * factor
            wb = Int((Double(width) * beta / f).rounded(.up)) * factor
        }
        // A pixel budget from a hostile preprocessor config must not size a multi-GB patch tensor.
        guard hb > 0, wb > 0, hb.multipliedReportingOverflow(by: wb).partialValue <= 2 * ConfigLimits.pixels,
              hb <= ConfigLimits.pixels, wb <= ConfigLimits.pixels else {
            throw ImageError.tooLarge(file: name, reason: "resized to \(wb)x\(hb), more than \(2 * ConfigLimits.pixels) pixels")
        }
        return (hb, wb)
    }

    public func targetSize(of img: PixelImage, name: String = "image") throws -> (height: Int, width: Int) {
        try Self.smartResize(height: img.height, width: img.width, factor: factor, minPixels: config.minPixels, maxPixels: config.maxPixels, name: name)
    }

    /// RGB image → resized RGB (uint8), exactly as Pillow's BICUBIC.
    public func resize(_ img: PixelImage, name: String = "image") throws -> PixelImage {
        let rgb = ImageDecoder.convertToRGB(img)
        let (h, w) = try targetSize(of: rgb, name: name)
        return BicubicResampler.resize(rgb, width: w, height: h)
    }

    /// Normalised patches of an already-resized RGB image (height, width multiples of `factor`).
    public func patchify(_ img: PixelImage) -> (values: [Float], grid: ImageGrid) {
        let p = config.patchSize, m = config.mergeSize, tp = config.temporalPatchSize
        let gh = img.height / p, gw = img.width / p
        let rowLen = 3 * tp * p * p
        // float32(float64(u8) · (1/255)), then (x − mean) / std in float32, as the processor does.
        var lut = [[Float]](repeating: [Float](repeating: 0, count: 256), count: 3)
        for c in 0..<3 {
            for v in 0..<256 {
                let x = Float(Double(v) * (1.0 / 255.0))
                lut[c][v] = (x - config.imageMean[c]) / config.imageStd[c]
            }
        }
        var out = [Float](repeating: 0, count: gh * gw * rowLen)
        var row = 0
        for bh in 0..<(gh / m) {
            for bw in 0..<(gw / m) {
                for mh in 0..<m {
                    for mw in 0..<m {
                        let r = bh * m + mh, cc = bw * m + mw
                        let base = row * rowLen
                        for c in 0..<3 {
                            for t in 0..<tp {
                                for py in 0..<p {
                                    for px in 0..<p {
                                        let y = r * p + py, x = cc * p + px
                                        let v = img.pixels[(y * img.width + x) * 3 + c]
                                        out[base + ((c * tp + t) * p + py) * p + px] = lut[c][Int(v)]
                                    }
                                }
                            }
                        }
                        row += 1
                    }
                }
            }
        }
        return (out, ImageGrid(t: 1, h: gh, w: gw))
    }

    /// Decoded images (any channel count) → concatenated patches and grids.
    public func process(_ images: [PixelImage], names: [String]? = nil) throws -> ProcessedImages {
        var values: [Float] = []
        var grids: [ImageGrid] = []
        for (i, img) in images.enumerated() {
            let resized = try resize(img, name: names?[i] ?? "image \(i + 1)")
            let (v, g) = patchify(resized)
            values.append(contentsOf: v)
            grids.append(g)
        }
        return ProcessedImages(pixelValues: values, rowLength: 3 * config.temporalPatchSize * config.patchSize * config.patchSize, grids: grids)
    }
}
