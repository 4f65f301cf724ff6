import CBLAS
import XCTest

/// The OpenBLAS system library is found, linked and computes: the runtime's matrix products
/// stand on it.
final class BLASLinkTests: XCTestCase {
    func testSgemmMultipliesRowMajorMatrices() {
        // [1 2 3; 4 5 6] × [7 8; 9 10; 11 12] = [58 64; 139 154]
        let a: [Float] = [1, 2, 3, 4, 5, 6]
        let b: [Float] = [7, 8, 9, 10, 11, 12]
        var c = [Float](repeating: 0, count: 4)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 3, 1, a, 3, b, 2, 0, &c, 2)
        XCTAssertEqual(c, [58, 64, 139, 154])
    }
}
