#if canImport(Glibc)
import Glibc
#endif

/// Small wrappers over socket(2) and setsockopt(2).
enum SocketOptions {
    /// A non-blocking, close-on-exec stream socket of `family`.
    static func makeStreamSocket(family: Int32) throws(TransportError) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .lastError("socket") }
        return fd
    }

    static func set(_ fd: Int32, level: Int32, option: Int32, to value: Int32) -> Bool {
        var value = value
        return setsockopt(fd, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) == 0
    }

    /// Small protocol messages must leave at once, not wait for Nagle.
    static func disableNagle(_ fd: Int32) {
        _ = set(fd, level: Int32(IPPROTO_TCP), option: TCP_NODELAY, to: 1)
    }

    /// The pending error of a socket (used to finish a non-blocking connect).
    static func pendingError(_ fd: Int32) -> Int32 {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 else { return errno }
        return code
    }
}
