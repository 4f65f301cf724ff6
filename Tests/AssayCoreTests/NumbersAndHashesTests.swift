import AssayCore
import Foundation
import XCTest

final class PythonNumberTests: XCTestCase {
    func testFloatParsingFollowsPython() {
        XCTAssertEqual(PythonNumber.parseFloat(" 1.5 "), 1.5)
        XCTAssertEqual(PythonNumber.parseFloat("1_000"), 1000)
        XCTAssertEqual(PythonNumber.parseFloat("-2e3"), -2000)
        XCTAssertEqual(PythonNumber.parseFloat(".5"), 0.5)
        XCTAssertEqual(PythonNumber.parseFloat("5."), 5)
        XCTAssertEqual(PythonNumber.parseFloat("inf"), .infinity)
        XCTAssertNil(PythonNumber.parseFloat("1,000"))
        XCTAssertNil(PythonNumber.parseFloat("1__0"))
        XCTAssertNil(PythonNumber.parseFloat("0x10"))
        XCTAssertNil(PythonNumber.parseFloat("5 cm"))
        XCTAssertNil(PythonNumber.parseFloat(""))
    }

    func testIntOfFloat() {
        XCTAssertEqual(PythonNumber.integerString("1.5"), "1")
        XCTAssertEqual(PythonNumber.integerString("-1.5"), "-1")
        XCTAssertEqual(PythonNumber.integerString("3"), "3")
        XCTAssertNil(PythonNumber.integerString("inf"))
        XCTAssertNil(PythonNumber.integerString("three"))
    }

    func testRoundMatchesPythonIncludingBinaryTies() {
        // Values checked against CPython's round().
        XCTAssertEqual(PythonNumber.round(2.675, digits: 2), 2.67)  // 2.675 is stored below the tie
        XCTAssertEqual(PythonNumber.round(0.125, digits: 2), 0.12)  // exact tie: to even
        XCTAssertEqual(PythonNumber.round(0.375, digits: 2), 0.38)
        XCTAssertEqual(PythonNumber.round(1.25, digits: 1), 1.2)
        XCTAssertEqual(PythonNumber.round(0.114, digits: 1), 0.1)
        XCTAssertEqual(PythonNumber.round(-1.55, digits: 1), -1.6)  // -1.55 is stored beyond the tie
    }

    func testReprMatchesPython() {
        XCTAssertEqual(PythonNumber.repr(1.2), "1.2")
        XCTAssertEqual(PythonNumber.repr(100), "100.0")
        XCTAssertEqual(PythonNumber.repr(0.0001), "0.0001")
        XCTAssertEqual(PythonNumber.repr(0.00001), "1e-05")
        XCTAssertEqual(PythonNumber.repr(1e16), "1e+16")
        XCTAssertEqual(PythonNumber.repr(123456789012345.0), "123456789012345.0")
        XCTAssertEqual(PythonNumber.repr(0.1 + 0.2), "0.30000000000000004")
    }

    func testNumericMatch() {
        XCTAssertEqual(NumericMatch.parse("1,234.5"), 1234.5)
        XCTAssertEqual(NumericMatch.parse("45%"), 45)
        XCTAssertEqual(NumericMatch.parse("$12."), 12)
        XCTAssertNil(NumericMatch.parse("twelve"))
        XCTAssertTrue(NumericMatch.relaxedEqual("104", "100"))
        XCTAssertFalse(NumericMatch.relaxedEqual("106", "100"))
        XCTAssertTrue(NumericMatch.relaxedEqual("Yes", "yes"))
        XCTAssertTrue(NumericMatch.equalAtPrecision(3.14159, 3.14, digits: 2))
    }

    func testLevenshtein() {
        XCTAssertEqual(TextMatching.levenshtein("kitten", "sitting"), 3)
        XCTAssertEqual(TextMatching.levenshtein("", "abc"), 3)
        XCTAssertEqual(TextMatching.levenshtein("145°", "140°"), 1)
        XCTAssertEqual(TextMatching.normalize("The  Cat, sat!"), "cat sat")
    }
}

final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(
            SHA256.hex(Data(repeating: 0x61, count: 1_000_000)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testStreamingEqualsOneShot() {
        let data = Data((0..<1000).map { UInt8($0 % 251) })
        var hasher = SHA256()
        hasher.update(data.prefix(3))
        hasher.update(data.dropFirst(3).prefix(100))
        hasher.update(Data(data.dropFirst(103)))
        XCTAssertEqual(hasher.finalize().hexString, SHA256.hex(data))
    }
}
