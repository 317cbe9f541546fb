import Foundation
import Testing

@testable import SandboxVCR

/// The digest cache behind request keys: exact hits from borrowed bytes, never a neighbour's digest.
@Suite("Part digest cache")
struct PartDigestCacheTests {
    @Test func hitsAreExactEvenWhenTheEdgesAgree() {
        let cache = PartDigestCache()
        let edge = String(repeating: "e", count: 100)
        let first = edge + String(repeating: "a", count: 5000) + edge
        let second = edge + String(repeating: "a", count: 2500) + "b" + String(repeating: "a", count: 2499) + edge
        #expect(first.utf8.count == second.utf8.count)
        for _ in 0..<2 {
            #expect(cache.digest(of: first) == ContentHash.sha256(Data(first.utf8)))
            #expect(cache.digest(of: second) == ContentHash.sha256(Data(second.utf8)))
            #expect(cache.digest(of: Data(first.utf8)) == ContentHash.sha256(Data(first.utf8)))
        }
        let short = "short text"
        #expect(cache.digest(of: short) == ContentHash.sha256(Data(short.utf8)))
    }

    @Test func aFullCacheStartsAgain() {
        let cache = PartDigestCache(capacity: 4, byteCapacity: 1 << 20)
        let texts = (0..<20).map { String(repeating: "\($0 % 10)", count: 3000) + "\($0)" }
        for _ in 0..<2 {
            for text in texts { #expect(cache.digest(of: text) == ContentHash.sha256(Data(text.utf8))) }
        }
    }
}
