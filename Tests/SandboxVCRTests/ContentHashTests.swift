import Foundation
import SandboxVCR
import Testing

/// SHA-256 through OpenSSL's libcrypto: FIPS 180-4 test vectors, and the digest value type.
@Suite struct ContentHashTests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
        (
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
        ),
    ])
    func standardVectors(input: String, expected: String) {
        #expect(ContentHash.sha256(Data(input.utf8)).hex == expected)
    }

    @Test func millionAs() {
        #expect(
            ContentHash.sha256(Data(repeating: UInt8(ascii: "a"), count: 1_000_000)).hex
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func bytesDataAndEmptyAgree() {
        let data = Data((0..<1000).map { UInt8($0 % 251) })
        #expect(ContentHash.sha256(Array(data)) == ContentHash.sha256(data))
        #expect(ContentHash.sha256(data.dropFirst(10)) == ContentHash.sha256(Array(data.dropFirst(10))))
        #expect(ContentHash.sha256([]).hex == ContentHash.sha256(Data()).hex)
        #expect(ContentHash.sha256(data).bytes.count == 32)
        #expect(ContentHash(bytes: ContentHash.sha256(data).bytes) == ContentHash.sha256(data))
    }

    @Test func hexRoundTrip() throws {
        let digest = ContentHash.sha256(Data("x".utf8))
        #expect(try #require(ContentHash(hex: digest.hex)) == digest)
        #expect(ContentHash(hex: "zz") == nil)
    }
}
