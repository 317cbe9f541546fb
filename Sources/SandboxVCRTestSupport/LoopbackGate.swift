import Foundation

/// A one-shot signal a test opens to let held server responses go (instead of sleeping in the server).
///
/// Server threads wait on it with `poll(2)` beside their socket, so they also notice a client that hangs up.
public final class LoopbackGate: Sendable {
    /// The read end becomes readable (and stays so) once the gate is open.
    let readDescriptor: Int32
    private let writeDescriptor: Int32

    public init() {
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else { fatalError("pipe() failed: errno \(errno)") }
        readDescriptor = descriptors[0]
        writeDescriptor = descriptors[1]
    }

    deinit {
        close(readDescriptor)
        close(writeDescriptor)
    }

    /// Opens the gate: every response held on it goes out now, and later ones are not held.
    public func open() {
        var byte: UInt8 = 1
        _ = write(writeDescriptor, &byte, 1)
    }

    /// Whether ``open()`` was called.
    public var isOpen: Bool {
        var descriptor = pollfd(fd: readDescriptor, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }
}
