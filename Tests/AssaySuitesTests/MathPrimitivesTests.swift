import AssayCore
import Foundation
import XCTest

/// `LatexArithmetic` and `MathAnswer`, the stand-ins for `latex2sympy` + `eval` in the math suites.
final class MathPrimitivesTests: XCTestCase {
    func value(_ text: String) -> Double? { LatexArithmetic.evaluate(text)?.double }

    func testArithmeticOfLatexAnswers() throws {
        XCTAssertEqual(LatexArithmetic.evaluate("\\frac{4}{2}"), .rational(2, 1))
        XCTAssertEqual(LatexArithmetic.evaluate("\\sqrt{4}"), .rational(2, 1))
        XCTAssertEqual(LatexArithmetic.evaluate("2^{-1}"), .rational(1, 2))
        XCTAssertEqual(LatexArithmetic.evaluate("2^10"), .rational(1024, 1))
        XCTAssertEqual(LatexArithmetic.evaluate("\\frac12"), .rational(1, 2))
        XCTAssertEqual(try XCTUnwrap(value("$\\frac{3 \\sqrt{3}}{2}$")), 3 * 3.0.squareRoot() / 2, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(value("9(\\pi-2)")), 9 * (Double.pi - 2), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(value("4\\pi(3-2 \\sqrt{2})")), 4 * Double.pi * (3 - 2 * 2.0.squareRoot()), accuracy: 1e-12)
        XCTAssertEqual(value("6 \\times 6 \\times 6 \\times 6"), 1296)
        XCTAssertEqual(value("3: 2"), 1.5)
        XCTAssertEqual(value("5-2-3-1-4"), -5)
        XCTAssertEqual(value("\\left(\\dfrac{1}{2}\\right)^{2}"), 0.25)
        XCTAssertEqual(value("\\sqrt[3]{8}"), 2)
        XCTAssertEqual(value("-\\frac{21}{29}"), -21.0 / 29)
        XCTAssertEqual(value(".5"), 0.5)
        XCTAssertEqual(LatexArithmetic.evaluate("2.0"), .real(2))
    }

    func testNonArithmeticGivesNoValue() {
        for text in ["x", "e", "\\infty", "60^\\circ", "1,000", "(2,3)", "\\frac{1}{0}", "2^{99999}", "3^{1009}", "\\sqrt{-4}",
                     "(-8)^{1/3}", "import os", "__import__('os').system('ls')", "", "()", "\\frac{1}", "2 +", "\\sqrt[0]{4}"] {
            XCTAssertNil(LatexArithmetic.evaluate(text), text)
        }
        // Values at the edge of Int continue as floats instead of trapping.
        XCTAssertEqual(value("-9223372036854775808 * 1"), -9223372036854775808.0)
        XCTAssertEqual(value("\\sqrt[1]{9223372036854775807}"), 9223372036854775807.0)
        XCTAssertEqual(value("(-4611686018427387904 * 2) / 3"), -9223372036854775808.0 / 3)
    }

    func testRoundedTextLikePython() {
        XCTAssertEqual(MathValue.rational(2, 1).roundedTwoPlacesText, "2")
        XCTAssertEqual(MathValue.real(2).roundedTwoPlacesText, "2.0")
        XCTAssertEqual(MathValue.rational(1, 3).roundedTwoPlacesText, "0.33")
        XCTAssertEqual(MathAnswer.evaluateTuple("(2*3, 5+2)"), "(6,7)")
        XCTAssertEqual(MathAnswer.evaluateTuple("[\\frac{1}{2},a]"), "[0.5,a]")
        XCTAssertEqual(MathAnswer.evaluateTuple("(x,1)"), "(x,1)")
    }

    func testFindMathAnswerNormalisation() {
        XCTAssertEqual(MathAnswer.normalize("The answer is \\boxed{\\dfrac{1}{2}}."), "\\frac{1}{2}")
        XCTAssertEqual(MathAnswer.normalize("$x = 45^{\\circ}$"), "45")
        XCTAssertEqual(MathAnswer.normalize("3/4"), "\\frac{3}{4}")
        XCTAssertEqual(MathAnswer.normalize("0.5"), "\\frac{1}{2}")
        XCTAssertEqual(MathAnswer.normalize("\\sqrt3"), "\\sqrt{3}")
        XCTAssertEqual(MathAnswer.normalize("\\sqrt{2}\\frac12"), "\\sqrt{2}\\frac{1}{2}")
        XCTAssertEqual(MathAnswer.normalize("12 km"), "12")
        XCTAssertTrue(MathAnswer.isEquivalent("1:1", "1"))
        XCTAssertFalse(MathAnswer.isEquivalent("", ""))
    }
}
