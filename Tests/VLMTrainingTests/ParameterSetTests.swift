import XCTest
@testable import VLMTraining

final class ParameterSetTests: XCTestCase {
    func testGlobalNormCountsTrainableParametersOnly() {
        let a = Parameter(name: "a", shape: [2], value: [1, 2]); a.grad = [3, 4]
        let b = Parameter(name: "b", shape: [1], value: [0], trainable: false); b.grad = [100]
        let set = ParameterSet([a, b])
        XCTAssertEqual(set.globalGradientNorm(), 5, accuracy: 1e-12)
        XCTAssertTrue(set["b"] === b)
        set.zeroGradients()
        XCTAssertEqual(a.grad, [0, 0])
    }
}
