import Foundation
import SandboxVCR
import Testing

@Suite struct SHA256Tests {
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
        #expect(SHA256.hash(Data(input.utf8)).hex == expected)
    }

    @Test func millionAs() {
        #expect(
            SHA256.hash(Data(repeating: UInt8(ascii: "a"), count: 1_000_000)).hex
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func incrementalEqualsOneShot() {
        let data = Data((0..<1000).map { UInt8($0 % 251) })
        for split in [0, 1, 63, 64, 65, 500, 999] {
            var hasher = SHA256()
            hasher.update(data.prefix(split))
            hasher.update(data.dropFirst(split))
            #expect(hasher.finalize() == SHA256.hash(data))
        }
    }

    @Test func hexRoundTrip() throws {
        let digest = SHA256.hash(Data("x".utf8))
        #expect(try #require(SHA256.Digest(hex: digest.hex)) == digest)
        #expect(SHA256.Digest(hex: "zz") == nil)
    }
}
